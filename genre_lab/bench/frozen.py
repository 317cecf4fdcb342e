"""A frozen backbone's epochs with and without its embeddings cached
(`genre_lab.training.frozen_cache`): `model.freeze=backbone` trained a few epochs on the same
data, once recomputing the frozen part every epoch (`model.frozen_cache_mb=0`) and once
caching it; the rate is epochs per second after the first (the first epoch fills the cache
and is reported beside it)."""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Sequence

import lightning.pytorch as pl
from hydra.utils import instantiate

from genre_lab.bench.common import Result
from genre_lab.config import compose
from genre_lab.training.fit import build


class EpochTimer(pl.Callback):
    """Seconds of every training epoch, its validation included."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self._start = 0.0

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.seconds.append(time.perf_counter() - self._start)


def epoch_seconds(overrides: Sequence[str], epochs: int) -> tuple[list[float], float]:
    """Per-epoch seconds of `epochs` epochs of the composed config (no logging or checkpoints),
    and the last validation's track accuracy."""
    with tempfile.TemporaryDirectory() as out:
        cfg = compose(list(overrides), output_dir=out)
        pl.seed_everything(int(cfg.seed), workers=True)
        datamodule, model = build(cfg)
        timer = EpochTimer()
        trainer: pl.Trainer = instantiate(
            cfg.trainer, max_epochs=epochs, logger=False, enable_checkpointing=False, enable_progress_bar=False,
            enable_model_summary=False, num_sanity_val_steps=0, callbacks=[timer])
        trainer.fit(model, datamodule=datamodule)
        return timer.seconds, float(trainer.callback_metrics.get("val/track_acc", float("nan")))


def run(models: Sequence[str] = ("musicnn", "cnn"), epochs: int = 4, extra: Sequence[str] = ()) -> list[Result]:
    """Per model: `frozen_<model>_recompute` (baseline) and `frozen_<model>_cached`, in epochs/s
    after the first epoch (median)."""
    results = []
    for name in models:
        common = [f"model={name}", "model.freeze=backbone", *(["model.weights=none"] if name == "musicnn" else []), *extra]
        base = f"frozen_{name}_recompute"
        for label, setting in ((base, "model.frozen_cache_mb=0"), (f"frozen_{name}_cached", "model.frozen_cache_mb=512")):
            seconds, acc = epoch_seconds([*common, setting], epochs)
            later = statistics.median(seconds[1:])
            results.append(Result(label, 1.0 / later, "epochs/s", None if label == base else base,
                                  extra={"first_epoch_s": seconds[0], "later_epoch_s": later, "val_track_acc": acc}))
    return results
