"""Training speed per model: steps and clips per second, and the share of each step spent
waiting for data (the time between one batch ending and the next one arriving)."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import soundfile as sf

import lightning.pytorch as pl
from hydra.utils import instantiate

from genre_lab.config import compose
from genre_lab.data.synthetic import GENRES, render_clip
from genre_lab.training.fit import build
from genre_lab.bench.common import Result


class StepTimer(pl.Callback):
    """Records, per training step, the data wait before it and the compute inside it."""

    def __init__(self, skip: int = 2) -> None:
        self.skip = skip  # first steps include lazy initialisation
        self.waits: list[float] = []
        self.computes: list[float] = []
        self._last_end: float | None = None
        self._start = 0.0
        self._seen = 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._start = time.perf_counter()
        if self._last_end is not None and self._seen >= self.skip:
            self.waits.append(self._start - self._last_end)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._last_end = time.perf_counter()
        if self._seen >= self.skip:
            self.computes.append(self._last_end - self._start)
        self._seen += 1


def measure(overrides: Sequence[str], steps: int) -> dict[str, float]:
    """Train `steps` steps of the composed config (no validation, logging or checkpoints)."""
    with tempfile.TemporaryDirectory() as out:
        cfg = compose(list(overrides), output_dir=out)
        datamodule, model = build(cfg)
        timer = StepTimer()
        trainer: pl.Trainer = instantiate(
            cfg.trainer, max_epochs=-1, max_steps=steps, limit_val_batches=0, logger=False,
            enable_checkpointing=False, enable_progress_bar=False, callbacks=[timer],
        )
        trainer.fit(model, datamodule=datamodule)
    wait, compute = sum(timer.waits), sum(timer.computes)
    n = len(timer.computes)
    step_time = (wait + compute) / max(n, 1)
    return {
        "steps_per_s": 1.0 / step_time,
        "clips_per_s": cfg.data.batch_size / step_time,
        "data_wait_share": wait / max(wait + compute, 1e-9),
        "steps_timed": float(n),
    }


def loader_only(overrides: Sequence[str], steps: int) -> float:
    """Clips per second the training DataLoader alone delivers: the ceiling for training."""
    with tempfile.TemporaryDirectory() as out:
        cfg = compose(list(overrides), output_dir=out)
        datamodule, _ = build(cfg)
        loader = datamodule.train_dataloader()
        batches = 0
        t0 = time.perf_counter()
        while batches < steps:
            for _ in loader:
                batches += 1
                if batches >= steps:
                    break
        return steps * cfg.data.batch_size / (time.perf_counter() - t0)


def write_folder_dataset(root: Path, clips_per_genre: int, seconds: float = 30.0, sample_rate: int = 22050) -> Path:
    """A GTZAN-shaped folder of wav files (one subfolder per genre) for the cached-data variant."""
    for g, genre in enumerate(GENRES):
        (root / genre).mkdir(parents=True, exist_ok=True)
        for i in range(clips_per_genre):
            sf.write(str(root / genre / f"{genre}.{i:05d}.wav"), render_clip(genre, 1000 * g + i, seconds, sample_rate), sample_rate)
    return root


def run(
    models: Sequence[str] = ("cnn", "rnn", "crnn"),
    steps: int = 30,
    extra: Sequence[str] = (),
    folder_clips_per_genre: int = 0,
    folder_seconds: float = 30.0,
    num_workers: Sequence[int] = (0, 1, 2),
) -> list[Result]:
    """Each model on the default (in-memory synthetic) data; then, when `folder_clips_per_genre`
    > 0, each model on a GTZAN-like folder of `folder_seconds` wav clips read through a warm
    decode cache, with every DataLoader `num_workers`: clips/s and the share of step time spent
    waiting for data."""
    base = "loader_only"
    results = [Result(base, loader_only(list(extra), steps), "clips/s")]
    for name in models:
        m = measure([f"model={name}", *extra], steps)
        results.append(Result(f"train_{name}", m["clips_per_s"], "clips/s", base, extra=m))
    if folder_clips_per_genre:
        with tempfile.TemporaryDirectory() as tmp:
            results += _folder(Path(tmp), models, steps, folder_clips_per_genre, folder_seconds, num_workers)
    return results


def _folder(tmp: Path, models: Sequence[str], steps: int, clips_per_genre: int, seconds: float,
            num_workers: Sequence[int]) -> list[Result]:
    root = write_folder_dataset(tmp / "songs", clips_per_genre, seconds)
    # At least one clip per genre in val and test, whatever the folder size.
    share = max(0.1, 1.0 / clips_per_genre)
    folder = ["data=folder", f"data.root={root}", f"data.cache_dir={tmp}/cache",
              f"data.val_fraction={share}", f"data.test_fraction={share}"]
    build(compose(folder, output_dir=str(tmp)))  # first pass decodes and fills the cache
    base = "loader_only_folder_cached"
    results = [Result(base, loader_only(folder, steps), "clips/s", extra={"clip_seconds": seconds})]
    for name in models:
        for workers in num_workers:
            m = measure([f"model={name}", *folder, f"data.num_workers={workers}"], steps)
            results.append(Result(f"train_{name}_folder_w{workers}", m["clips_per_s"], "clips/s", base,
                                  extra={**m, "num_workers": float(workers), "clip_seconds": seconds}))
    return results
