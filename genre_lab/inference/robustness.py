"""Robustness evaluation: a trained model scored on its evaluation split perturbed at every level
of every asked kind (`evaluate perturb=time_stretch|pitch_shift|compression|white_noise|all`;
the perturbations: `genre_lab.audio.perturb`), as Won et al. (2020) report it.

Each clip is perturbed whole, before it is cut into windows, exactly as a perturbed recording
would arrive; a clip a stretch made shorter than one window is padded like a short song. Level 0
of every kind is the audio unchanged, so its metrics are the plain evaluation's. Metrics are
logged as `perturb/<kind>/<level>/<metric>`, with a degradation-curve figure per run
(`perturb/degradation.png`) and the numbers behind it (`perturb/curves.json`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from genre_lab.audio.perturb import Perturbation, level_name
from genre_lab.data import AudioSplit

#: The metrics of each level that are logged and drawn (the split's prefix removed).
CURVE_METRICS = ("track_acc", "track_f1", "chunk_acc")


@dataclass
class Curve:
    """One kind's metrics per level, in level order (the first level is no perturbation)."""

    kind: str
    unit: str
    levels: list[float]
    metrics: dict[str, list[float]] = field(default_factory=dict)


def perturbed_split(split: AudioSplit, perturbation: Perturbation, level: float, sample_rate: int,
                    seed: int = 0) -> AudioSplit:
    """`split` with every clip perturbed at `level` (noise seeded per clip from `seed`)."""
    waves = [perturbation.apply(np.asarray(w), sample_rate, level, seed + i) for i, w in enumerate(split.waves)]
    return AudioSplit(list(split.ids), list(split.labels), waves, list(split.skipped), split.tags)


def curves(split: AudioSplit, perturbations: Sequence[Perturbation], sample_rate: int,
           score: Callable[[AudioSplit], dict[str, float]], seed: int = 0,
           progress: Callable[[str], None] | None = None) -> list[Curve]:
    """Score the split at every level of every perturbation; `score` maps a split to metrics
    named without the split prefix (`track_acc`, ...)."""
    out = []
    for p in perturbations:
        curve = Curve(p.kind, p.unit, list(p.levels), {m: [] for m in CURVE_METRICS})
        for level in p.levels:
            if progress:
                progress(f"{p.kind} {level_name(level)} {p.unit}")
            metrics = score(perturbed_split(split, p, level, sample_rate, seed))
            for m in CURVE_METRICS:
                curve.metrics[m].append(float(metrics.get(m, float("nan"))))
        out.append(curve)
    return out


def metric_items(found: Sequence[Curve]) -> dict[str, float]:
    """`perturb/<kind>/<level>/<metric>` -> value, for MLflow."""
    return {f"perturb/{c.kind}/{level_name(level)}/{m}": values[i]
            for c in found for m, values in c.metrics.items() for i, level in enumerate(c.levels)}


def as_json(found: Sequence[Curve]) -> dict:
    return {c.kind: {"unit": c.unit, "levels": [level_name(v) for v in c.levels], **c.metrics} for c in found}
