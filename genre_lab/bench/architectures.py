"""Speed of every backbone with its paper's input: training windows per second (the train
benchmark's `measure`) and tagging, seconds of audio the inference network labels per second
(its windows at the evaluation hop, batches of 16, one thread, the CPU inference copy), each
against the default CNN measured in the same run."""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch

from genre_lab.bench.common import Result
from genre_lab.bench.train import measure
from genre_lab.config import compose
from genre_lab.models.network import for_inference
from genre_lab.training.lightning_module import GenreClassifier

#: The models of `experiment=zoo`, the default CNN first (the baseline).
ZOO = ("cnn", "crnn", "musicnn", "fcn", "shortchunk", "shortchunk_res", "samplecnn", "samplecnn_se", "harmoniccnn",
       "cnnsa", "ast")


def tagging_rate(model: str, seconds: float, extra: Sequence[str] = ()) -> float:
    """Audio seconds per second through the model's inference copy, on random audio cut into
    its own windows at its evaluation hop (decoding excluded: the same for every model)."""
    cfg = compose([f"model={model}", *(["model.weights=none"] if model == "musicnn" else []), *extra])
    net = for_inference(GenreClassifier.from_config(cfg, [str(i) for i in range(10)]).net, torch.device("cpu"))
    rate, chunk = int(cfg.data.sample_rate), int(cfg.data.chunk_seconds * cfg.data.sample_rate)
    hop = int((cfg.data.get("eval_hop_seconds") or cfg.data.chunk_seconds) * rate)
    song = torch.randn(int(seconds * rate)) * 0.1
    windows = song.unfold(0, chunk, hop) if len(song) >= chunk else torch.nn.functional.pad(song, (0, chunk - len(song)))[None]
    with torch.inference_mode():
        net(windows[:2])  # warm-up
        start = time.perf_counter()
        for batch in windows.split(16):
            net(batch)
        return seconds / (time.perf_counter() - start)


def run(models: Sequence[str] = ZOO, steps: int = 10, song_seconds: float = 60.0, extra: Sequence[str] = ()) -> list[Result]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    results: list[Result] = []
    try:
        for i, name in enumerate(models):
            weights = ["model.weights=none"] if name == "musicnn" else []
            m = measure([f"model={name}", *weights, *extra], steps)
            results.append(Result(f"train_{name}", m["clips_per_s"], "clips/s", None if i == 0 else f"train_{models[0]}",
                                  extra=m))
            results.append(Result(f"tag_{name}", tagging_rate(name, song_seconds, extra), "audio s/s",
                                  None if i == 0 else f"tag_{models[0]}"))
    finally:
        torch.set_num_threads(threads)
    return results
