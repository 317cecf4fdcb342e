"""How fast a front end turns audio into features, in seconds of audio per second."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch

from genre_lab.features.frontend import FrontEnd


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_seconds(fn: Callable[[], object], repeats: int, warmup: int = 1, device: str | torch.device = "cpu") -> float:
    """Median wall time of `fn()` over `repeats` calls, after `warmup` untimed calls; waits for
    queued CUDA work so GPU timings are real."""
    device = torch.device(device)
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


@torch.inference_mode()
def frontend_throughput(
    frontend: FrontEnd,
    batch_size: int = 32,
    chunk_seconds: float = 3.0,
    repeats: int = 5,
    device: torch.device | str = "cpu",
) -> float:
    """Median audio-seconds per wall-second over `repeats` timed batches, after one warm-up."""
    device = torch.device(device)
    frontend = frontend.to(device).eval()
    wave = torch.randn(batch_size, int(chunk_seconds * frontend.sample_rate), device=device)
    return batch_size * chunk_seconds / median_seconds(lambda: frontend(wave), repeats, device=device)
