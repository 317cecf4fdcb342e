"""How fast a front end turns audio into features, in seconds of audio per second."""

from __future__ import annotations

import time

import torch

from .frontend import FrontEnd


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


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
    frontend(wave)
    _sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        frontend(wave)
        _sync(device)
        times.append(time.perf_counter() - t0)
    return batch_size * chunk_seconds / sorted(times)[len(times) // 2]
