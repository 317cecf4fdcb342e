"""Test-time choices of the track decision, measured: a small model trained on the synthetic
genres (several seeds), its test-split windows pooled by each of `genre_lab.audio.windows`'
poolings, with and without shifted windows (`tta_shifts`), scored with the metrics training and
`evaluate` report. The contender's value is the track accuracy (mean over seeds); macro-F1, log
loss and calibration error ride along. Not a timing: the baseline is the default, mean pooling
of the unshifted windows."""

from __future__ import annotations

import statistics
import tempfile
from collections import defaultdict
from collections.abc import Sequence

import lightning.pytorch as pl
import torch
from hydra.utils import instantiate
from torch.utils.data import DataLoader

from genre_lab.audio.windows import POOLINGS, track_probabilities
from genre_lab.bench.common import Result
from genre_lab.config import compose
from genre_lab.data.datamodule import TrackChunks
from genre_lab.training.fit import build
from genre_lab.training.metrics import classification_metrics

BASELINE = "mean_tta1"


def trained(overrides: Sequence[str], seed: int, epochs: int) -> tuple[pl.LightningModule, object]:
    """The composed config's model after `epochs` epochs from `seed` (no logging or checkpoints)."""
    with tempfile.TemporaryDirectory() as out:
        cfg = compose([*overrides, f"seed={seed}"], output_dir=out)
        pl.seed_everything(seed, workers=True)
        datamodule, model = build(cfg)
        trainer: pl.Trainer = instantiate(cfg.trainer, max_epochs=epochs, logger=False, enable_checkpointing=False,
                                          enable_progress_bar=False, enable_model_summary=False, callbacks=[])
        trainer.fit(model, datamodule=datamodule)
    return model.eval(), datamodule


@torch.inference_mode()
def window_probabilities(model, datamodule, shifts: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(probabilities, labels, clip ids) of every test window, the grid shifted `shifts` ways."""
    windows = TrackChunks(datamodule.splits["test"], datamodule.chunk, datamodule.hop, shifts=shifts)
    out = [(model.probabilities(model(w)), y, c) for w, y, c in DataLoader(windows, batch_size=64)]
    return tuple(torch.cat(t) for t in zip(*out))  # type: ignore[return-value]


def run(seeds: Sequence[int] = (0, 1, 2), epochs: int = 8, shifts: Sequence[int] = (1, 2),
        extra: Sequence[str] = ()) -> list[Result]:
    scores: dict[str, list[dict[str, float]]] = defaultdict(list)
    overrides = ["model=cnn", "callbacks.early_stopping=null", *extra]
    for seed in seeds:
        model, datamodule = trained(overrides, seed, epochs)
        n = len(model.classes)
        for k in shifts:
            probs, labels, clips = window_probabilities(model, datamodule, k)
            for pooling in POOLINGS:
                track, track_labels = track_probabilities(probs, labels, clips, pooling)
                metrics = classification_metrics(n, "")(track, track_labels)
                scores[f"{pooling}_tta{k}"].append({key: float(v) for key, v in metrics.items()})
    results = []
    for name, runs in scores.items():
        mean = {key: statistics.fmean(r[key] for r in runs) for key in runs[0]}
        extra_values = {key: mean[key] for key in ("f1", "log_loss", "ece")}
        extra_values["acc_min"] = min(r["acc"] for r in runs)
        results.append(Result(name, mean["acc"], "track acc", None if name == BASELINE else BASELINE, extra=extra_values))
    return results
