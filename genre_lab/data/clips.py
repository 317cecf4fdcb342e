"""What every dataset hands the DataModule: decoded mono clips with labels, per split.

A dataset config names a `ClipSource`; its `load()` returns train/val/test `AudioSplit`s of
audio already at the training sample rate. Sources differ only in where the audio comes from
(generated, a GTZAN tree, a folder, a CSV manifest), so chunking, batching and track-level
evaluation are written once, in `datamodule.py`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

SPLITS = ("train", "val", "test")


class DataConfigError(ValueError):
    """A dataset setting that points at no usable data (a folder or manifest that is missing,
    empty or unreadable), or a task the dataset's labels do not fit (`task=multiclass` on clips
    carrying several tags); the message names the setting (`data.root=...`, `task=...`), so the
    commands print it as their one-line error."""


@dataclass
class AudioSplit:
    """Clips of one partition. `waves[i]` is float32 mono: in memory, or a `cache.CachedWave`
    (a reference to its decode-cache entry that reads the samples asked for; `len`, slicing and
    `np.asarray` work on both)."""

    ids: list[str]
    labels: list[int]
    waves: list[np.ndarray]
    #: Files that were assigned to this split but could not be used: (path or id, reason).
    skipped: list[tuple[str, str]] = field(default_factory=list)
    #: Multi-label datasets: every class index of each clip (`labels[i]` is the first of them,
    #: used for stratified splits); None when each clip has one label.
    tags: list[tuple[int, ...]] | None = None
    #: Each clip's artist, where the source knows it (GTZAN's artist list, a manifest's
    #: `artist` column, a loader's metadata); None when it knows none. `genre-lab audit`
    #: reports artists found in two splits.
    artists: list[str | None] | None = None

    def __post_init__(self) -> None:
        if not (len(self.ids) == len(self.labels) == len(self.waves)):
            raise ValueError("AudioSplit needs one id, label and wave per clip")
        if self.tags is not None and len(self.tags) != len(self.ids):
            raise ValueError("AudioSplit needs one tag set per clip")
        if self.artists is not None and len(self.artists) != len(self.ids):
            raise ValueError("AudioSplit needs one artist (or None) per clip")

    def tag_sets(self) -> list[tuple[int, ...]]:
        """Every clip's class indices (one each for a single-label dataset)."""
        return list(self.tags) if self.tags is not None else [(label,) for label in self.labels]

    def __len__(self) -> int:
        return len(self.ids)


class ClipSource(ABC):
    """A dataset: class names plus a way to produce the three splits at a sample rate."""

    #: Human-readable dataset name, used for MLflow tags.
    name: str = "dataset"
    #: The user-facing `data.*` settings of this dataset (`data.root`, ...). The data configs
    #: keep them at the top of the group and interpolate them into `source:`; the DataModule
    #: refuses any other key it is handed.
    settings: ClassVar[tuple[str, ...]] = ()
    #: Files found but left out before any split was made (path, reason); filled by `load`.
    unassigned: Sequence[tuple[str, str]] = ()
    #: Pairs of files holding identical decoded audio, with their splits (`leakage.py`): a
    #: warning in the scan report; filled by `load`.
    identical: Sequence[dict] = ()

    @property
    @abstractmethod
    def classes(self) -> list[str]: ...

    @abstractmethod
    def load(self, sample_rate: int, min_samples: int = 0) -> dict[str, AudioSplit]:
        """Return {"train": ..., "val": ..., "test": ...} decoded at `sample_rate`.

        Sources that split after decoding leave clips shorter than `min_samples` out before
        splitting (and report them); the DataModule applies `data.short_clips` to the rest."""
