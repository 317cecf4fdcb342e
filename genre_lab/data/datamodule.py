"""One LightningDataModule for every dataset: random chunks to train, every chunk to evaluate.

Training draws `train_chunks_per_clip` random fixed-length windows per clip per epoch.
Validation and test cut each clip into consecutive windows (`eval_hop_seconds` apart, the
last one aligned to the clip's end) and yield each window with the index of its clip, so the
LightningModule can average chunk probabilities into one prediction per track.
"""

from __future__ import annotations

import logging
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from .clips import SPLITS, AudioSplit, ClipSource

log = logging.getLogger(__name__)


class RandomChunks(Dataset):
    """`per_clip` random windows of `chunk` samples from each clip, re-drawn every epoch."""

    def __init__(self, split: AudioSplit, chunk: int, per_clip: int = 1) -> None:
        self.split, self.chunk, self.per_clip = split, chunk, per_clip

    def __len__(self) -> int:
        return len(self.split) * self.per_clip

    def __getitem__(self, idx: int) -> tuple[torch.Tensor, int]:
        i = idx % len(self.split)
        wave = self.split.waves[i]
        # torch's RNG, not numpy's: Lightning seeds it per worker, so runs are reproducible.
        start = int(torch.randint(0, len(wave) - self.chunk + 1, ()).item())
        return torch.from_numpy(np.array(wave[start : start + self.chunk])), self.split.labels[i]


def chunk_starts(length: int, chunk: int, hop: int) -> list[int]:
    """Window starts covering a clip of `length` samples; the last window ends at the clip's end."""
    starts = list(range(0, length - chunk + 1, hop)) or [0]  # a short clip: one (padded) window
    if starts[-1] + chunk < length:
        starts.append(length - chunk)
    return starts


class TrackChunks(Dataset):
    """Every window of every clip, as (chunk, label, clip index)."""

    def __init__(self, split: AudioSplit, chunk: int, hop: int) -> None:
        self.split, self.chunk = split, chunk
        self.index = [
            (i, s) for i, w in enumerate(split.waves) for s in chunk_starts(len(w), chunk, hop)
        ]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, idx: int) -> tuple[torch.Tensor, int, int]:
        i, s = self.index[idx]
        chunk = np.array(self.split.waves[i][s : s + self.chunk])
        return torch.from_numpy(chunk), self.split.labels[i], i


class GenreDataModule(pl.LightningDataModule):
    def __init__(
        self,
        source: ClipSource,
        sample_rate: int = 16000,
        chunk_seconds: float = 3.0,
        eval_hop_seconds: float | None = None,
        train_chunks_per_clip: int = 1,
        batch_size: int = 32,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        **source_settings: Any,
    ) -> None:
        """`source_settings` are the dataset's user-facing settings (`data.root`, `data.split`,
        ...): the data configs keep them at the top of the group and interpolate them into
        `source:`, so the source has already received them and they are not used here.
        (Hydra rejects unknown `data.*` overrides before this point.)"""
        super().__init__()
        if int(sample_rate) < 4000:
            raise ValueError(f"data.sample_rate must be an integer >= 4000 Hz, got {sample_rate}")
        if chunk_seconds <= 0:
            raise ValueError(f"data.chunk_seconds must be positive, got {chunk_seconds}")
        if eval_hop_seconds is not None and eval_hop_seconds <= 0:
            raise ValueError(f"data.eval_hop_seconds must be positive, got {eval_hop_seconds}")
        if batch_size < 1:
            raise ValueError(f"data.batch_size must be >= 1, got {batch_size}")
        self.source = source
        self.sample_rate = int(sample_rate)
        self.chunk = int(round(chunk_seconds * self.sample_rate))
        self.hop = int(round((eval_hop_seconds or chunk_seconds) * self.sample_rate))
        self.train_chunks_per_clip = int(train_chunks_per_clip)
        self.batch_size = int(batch_size)
        self.eval_batch_size = int(eval_batch_size or batch_size)
        self.num_workers = int(num_workers)
        self.splits: dict[str, AudioSplit] | None = None

    @property
    def classes(self) -> list[str]:
        return self.source.classes

    def setup(self, stage: str | None = None) -> None:
        # Idempotent: train.py calls it early so bad settings fail before any run starts,
        # and Lightning calls it again from fit/test.
        if self.splits is not None:
            return
        splits = self.source.load(self.sample_rate)
        for name in SPLITS:
            split = splits[name]
            if len(split) == 0:
                raise ValueError(f"dataset '{self.source.name}' has no usable clips in split '{name}'")
            clip_id, n = split.shortest()
            if n < self.chunk:
                raise ValueError(
                    f"data.chunk_seconds={self.chunk / self.sample_rate:g} is longer than clip "
                    f"'{clip_id}' ({n / self.sample_rate:.2f} s) in split '{name}'"
                )
        self.splits = splits

    def train_dataloader(self) -> DataLoader:
        ds = RandomChunks(self._split("train"), self.chunk, self.train_chunks_per_clip)
        return self._loader(ds, self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(TrackChunks(self._split("val"), self.chunk, self.hop), self.eval_batch_size)

    def test_dataloader(self) -> DataLoader:
        return self._loader(TrackChunks(self._split("test"), self.chunk, self.hop), self.eval_batch_size)

    def _split(self, name: str) -> AudioSplit:
        if self.splits is None:
            self.setup()
        assert self.splits is not None
        return self.splits[name]

    def _loader(self, ds: Dataset, batch_size: int, shuffle: bool = False) -> DataLoader:
        return DataLoader(
            ds,
            batch_size=batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            drop_last=shuffle and len(ds) > batch_size,
        )
