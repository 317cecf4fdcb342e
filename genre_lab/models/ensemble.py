"""Several trained models as one: the weighted mean of their window probabilities.

Members may differ in architecture, front end and sample rate. The ensemble takes audio at the
highest member rate (so each file is decoded once) and resamples each window inside `forward`
to every member's own rate. Classes are aligned by name; members must share the class set.
`forward` returns the log of the mean probabilities, so `softmax` of its output is the mean
and the Tagger, evaluation and serving use an ensemble exactly like one model.

Its file (weights-only, every member validated like a single network's) is read and written by
`genre_lab.models.model_file` (`parse_ensemble`, `write_ensemble`), like every model file.

Each member carries a label (`sources`): the name of the run it came from (the `ensemble`
command chooses it), which names the member in the ensemble run's params and in the metrics
`evaluate` logs per member. Labels are read from files and stores, so they are made safe
(`member_labels`) whatever they came as.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from genre_lab.audio.decode import resample
from genre_lab.models.model_file import MAX_ENSEMBLE_MEMBERS, EnsembleMember, write_ensemble
from genre_lab.models.network import GenreNet


class EnsembleError(ValueError):
    """Members that cannot form an ensemble; the message names the members or classes."""


#: The longest member label: a metric key `<label>/<split>/track_acc` stays short.
MAX_LABEL_CHARS = 60
#: What a label may not hold: MLflow metric keys allow letters, digits, `_ - . / ` and space;
#: `/` and space are left out too, so that a label is one segment of a key.
_NOT_IN_LABEL = re.compile(r"[^A-Za-z0-9_.-]+")


def member_labels(names: Sequence[str | None]) -> list[str]:
    """One label per member, safe as a metric-key segment and a param name: runs of other
    characters become `_`, leading and trailing `._-` go (no `.` or `..` segment), at most
    `MAX_LABEL_CHARS`; an empty one becomes `member<i>`, and a label already taken gets `-2`,
    `-3`, ... so that no two members share one."""
    labels: list[str] = []
    for i, name in enumerate(names):
        text = str(name or "")[: 4 * MAX_LABEL_CHARS]  # bounded before any work on store text
        label = _NOT_IN_LABEL.sub("_", text).strip("._-")[:MAX_LABEL_CHARS].rstrip("._-") or f"member{i}"
        unique, n = label, 2
        while unique in labels:
            suffix = f"-{n}"
            unique, n = label[: MAX_LABEL_CHARS - len(suffix)] + suffix, n + 1
        labels.append(unique)
    return labels


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
        if not 2 <= len(members) <= MAX_ENSEMBLE_MEMBERS:
            raise EnsembleError(f"an ensemble needs 2 to {MAX_ENSEMBLE_MEMBERS} members, got {len(members)}")
        #: Member labels (`member_labels`): safe and unique, in member order.
        given = list(sources or [])[: len(members)]
        self.sources = member_labels([*given, *[None] * (len(members) - len(given))])
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
    @classmethod
    def from_members(cls, members: Sequence[EnsembleMember], weights: Sequence[float]) -> EnsembleClassifier:
        """Rebuild a saved ensemble from its file's members (`checkpoint.parse_ensemble`), each
        network portable, on the CPU, in eval mode."""
        networks = []
        for member in members:
            network = GenreNet.from_spec(member.spec)
            network.load_state_dict(dict(member.weights))
            networks.append(network.eval())
        return cls(networks, weights, [m.source for m in members], [m.run_id for m in members])

    def save(self, path: str | Path) -> None:
        """Write the ensemble file (`checkpoint.write_ensemble`)."""
        members = [EnsembleMember(m.spec, m.state_dict(), s, r) for s, r, m in zip(self.sources, self.run_ids, self.members)]
        write_ensemble(path, members, self.weights.tolist())
