"""Several trained models as one: the weighted mean of their window probabilities.

Members may differ in architecture, front end and sample rate. The ensemble takes audio at the
highest member rate (so each file is decoded once) and resamples each window inside `forward`
to every member's own rate. Classes are aligned by name; members must share the class set.
`forward` returns the log of the mean probabilities, so `softmax` of its output is the mean
and the Tagger, evaluation and serving use an ensemble exactly like one model.

The file format is weights-only: `{ENSEMBLE_KEY: {classes, weights, members: [{source, run_id,
genre_lab: <member spec>, state_dict}]}}`, each member spec and state dict validated like any
checkpoint's (`genre_lab.checkpoint`: sizes in range, every weight finite).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..audio import resample
from ..checkpoint import CONFIG_KEY, CheckpointError, ModelSpec, check_weights
from ..network import GenreNet

#: Key of an ensemble file (a checkpoint has `CONFIG_KEY` instead).
ENSEMBLE_KEY = "genre_lab_ensemble"
MAX_MEMBERS = 64


class EnsembleError(ValueError):
    """Members that cannot form an ensemble; the message names the members or classes."""


@dataclass(frozen=True)
class EnsembleSpec:
    """The audio contract of an ensemble, as `ModelSpec` gives it for one model."""

    classes: tuple[str, ...]
    sample_rate: int
    chunk_seconds: float
    eval_hop_seconds: float
    name: str = "ensemble"
    features_name: str = "mixed"


class EnsembleClassifier(nn.Module):
    """(batch, samples at `sample_rate`) -> (batch, classes) log mean probabilities."""

    def __init__(self, members: Sequence[GenreNet], weights: Sequence[float] | None = None,
                 sources: Sequence[str] | None = None, run_ids: Sequence[str | None] | None = None) -> None:
        super().__init__()
        if not 2 <= len(members) <= MAX_MEMBERS:
            raise EnsembleError(f"an ensemble needs 2 to {MAX_MEMBERS} members, got {len(members)}")
        self.sources = list(sources or [f"member {i}" for i in range(len(members))])
        self.run_ids = list(run_ids or [None] * len(members))
        specs = [m.spec for m in members]
        self.classes = list(specs[0].classes)
        for source, spec in zip(self.sources, specs):
            if set(spec.classes) != set(self.classes):
                raise EnsembleError(
                    f"{source} has classes {sorted(spec.classes)}, but {self.sources[0]} has {sorted(self.classes)}: "
                    "ensemble members must share one class set")
        chunks = {round(s.chunk_seconds, 6) for s in specs}
        if len(chunks) > 1:
            raise EnsembleError(f"members use different window lengths {sorted(chunks)} s "
                                f"({', '.join(self.sources)}): their track means would not be comparable")
        w = torch.tensor([1.0] * len(members) if weights is None else [float(x) for x in weights])
        if len(w) != len(members) or not torch.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
            raise EnsembleError(f"weights must be {len(members)} non-negative numbers with a positive sum, got {list(weights or [])}")
        self.register_buffer("weights", w / w.sum())
        self.members = nn.ModuleList(members)
        self.rates = [s.sample_rate for s in specs]
        # Each member's columns in the ensemble's class order.
        self.orders = [[list(s.classes).index(c) for c in self.classes] for s in specs]
        self.spec = EnsembleSpec(tuple(self.classes), max(self.rates), specs[0].chunk_seconds,
                                 min(s.eval_hop_seconds for s in specs))
        self.config = {"data": {"sample_rate": self.spec.sample_rate, "chunk_seconds": self.spec.chunk_seconds,
                                "eval_hop_seconds": self.spec.eval_hop_seconds},
                       "model": {"name": "ensemble"}, "features": {"name": "mixed"}, "classes": self.classes}

    def member_probabilities(self, wave: torch.Tensor) -> list[torch.Tensor]:
        """Per member: (batch, classes) probabilities in the ensemble's class order."""
        out = []
        for member, rate, order in zip(self.members, self.rates, self.orders):
            # torchaudio's resampler: batched, on the model's device, differentiable.
            x = wave if rate == self.spec.sample_rate else resample(wave, self.spec.sample_rate, rate, "torchaudio")
            out.append(member(x).float().softmax(1)[:, order])
        return out

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        probs = torch.stack(self.member_probabilities(wave))  # (members, batch, classes)
        mean = torch.einsum("m,mbc->bc", self.weights.to(probs.dtype), probs)
        return mean.clamp_min(1e-12).log()

    # -- the file ---------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        members = [{"source": s, "run_id": r, CONFIG_KEY: m.spec.to_dict(), "state_dict": m.state_dict()}
                   for s, r, m in zip(self.sources, self.run_ids, self.members)]
        torch.save({ENSEMBLE_KEY: {"classes": self.classes, "weights": self.weights.tolist(), "members": members}}, path)


def is_ensemble(state: Any) -> bool:
    return isinstance(state, dict) and ENSEMBLE_KEY in state


def from_state(state: dict[str, Any], path: str | Path) -> EnsembleClassifier:
    """Rebuild an ensemble from a loaded (weights-only) ensemble file, each member validated."""
    body = state[ENSEMBLE_KEY]
    if not isinstance(body, dict) or not isinstance(body.get("members"), list):
        raise CheckpointError(f"{path} is not a genre_lab ensemble (no members list)")
    members, sources, run_ids = [], [], []
    for i, entry in enumerate(body["members"][: MAX_MEMBERS + 1]):
        if not isinstance(entry, dict) or not isinstance(entry.get("state_dict"), dict):
            raise CheckpointError(f"{path}: member {i} has no state_dict")
        spec = ModelSpec.from_dict(entry.get(CONFIG_KEY), f"member {i} of ensemble {path}")
        check_weights(entry["state_dict"], f"member {i} of ensemble {path}")
        model = GenreNet.from_spec(spec)
        model.load_state_dict(entry["state_dict"])
        members.append(model.eval())
        source, run_id = entry.get("source"), entry.get("run_id")
        sources.append(source if isinstance(source, str) else f"member {i}")
        run_ids.append(run_id if isinstance(run_id, str) else None)
    weights = body.get("weights")
    if not (isinstance(weights, list) and all(isinstance(w, (int, float)) for w in weights)):
        raise CheckpointError(f"{path}: ensemble weights must be a list of numbers")
    try:
        return EnsembleClassifier(members, weights, sources, run_ids)
    except EnsembleError as err:
        raise CheckpointError(f"{path}: {err}") from err
