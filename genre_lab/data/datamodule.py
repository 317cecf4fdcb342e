"""One LightningDataModule for every dataset: random chunks to train, every chunk to evaluate.

Training draws `train_chunks_per_clip` random fixed-length windows per clip per epoch.
Validation and test cut each clip into consecutive windows (`eval_hop_seconds` apart, the
last one aligned to the clip's end) and yield each window with the index of its clip, so the
LightningModule can average chunk probabilities into one prediction per track.

With `fixed_train_windows` set (the LightningModule sets it when `model.freeze=backbone` caches
the frozen part's embeddings, `genre_lab.training.frozen_cache`), training instead draws its
`train_chunks_per_clip` starts per clip once, from a generator seeded with the run's seed, and
yields the same windows every epoch (in a new order), each with its clip index and start sample,
as do the validation windows: the keys of the cache.

A clip shorter than one window is handled by `data.short_clips`: `skip` (default) leaves it out
and reports it, `pad` zero-pads its window at the end (as the tagger pads a short song),
`error` stops with its name. Every class needs a usable clip in every split. Files with
identical decoded audio in two splits are handled by `data.on_leak` (`leakage.check_leaks`):
`warn` (default) logs one line, `error` stops naming both files and splits.

With `task="multilabel"` every label is a multi-hot float row over the classes (a clip may
carry several tags, see `manifest.py`); with the default `multiclass`, a clip listed with
several labels is an error naming it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from genre_lab.audio.windows import chunk_starts, samples, shifted_starts, window  # noqa: F401 (chunk_starts: tests import it here)
from genre_lab.data.clips import SPLITS, AudioSplit, ClipSource, DataConfigError
from genre_lab.data.leakage import ON_LEAK, check_leaks
from genre_lab.data.screen import SHORT_REASON, short_reason
from genre_lab.data.unreadable import UnreadableClips

log = logging.getLogger(__name__)

SHORT_CLIPS = ("pad", "skip", "error")
TASKS = ("multiclass", "multilabel")


def targets(split: AudioSplit, n_classes: int, multilabel: bool) -> list[Any]:
    """Per clip: its class index, or (multi-label) its multi-hot float tags."""
    if not multilabel:
        return list(split.labels)
    out = []
    for tags in split.tag_sets():
        row = torch.zeros(n_classes)
        row[list(tags)] = 1.0
        out.append(row)
    return out


class RandomChunks(Dataset):
    """`per_clip` random windows of `chunk` samples from each clip, re-drawn every epoch; with
    `fixed_seed`, drawn once from that seed and the same every epoch, yielded as (window,
    label, clip index, start sample)."""

    def __init__(self, split: AudioSplit, chunk: int, per_clip: int = 1, labels: list[Any] | None = None,
                 fixed_seed: int | None = None) -> None:
        self.split, self.chunk, self.per_clip = split, chunk, per_clip
        self.labels = split.labels if labels is None else labels
        self.unreadable = UnreadableClips(split)
        #: Per clip, its fixed starts (`fixed_seed`), else None: drawn at each access.
        self.fixed: list[list[int]] | None = None
        if fixed_seed is not None:
            gen = torch.Generator().manual_seed(int(fixed_seed))
            self.fixed = [torch.randint(0, max(len(w) - chunk, 0) + 1, (per_clip,), generator=gen).tolist()
                          for w in split.waves]

    def __len__(self) -> int:
        return len(self.split) * self.per_clip

    def __getitem__(self, idx: int) -> tuple[torch.Tensor, int] | tuple[torch.Tensor, Any, int, int]:
        # A clip whose audio became unreadable during the run gives way to the next readable one.
        i, (chunk, start) = self.unreadable.first_readable(idx % len(self.split), len(self.split),
                                                           lambda i: self._cut(i, idx // len(self.split)))
        if self.fixed is not None:
            return chunk, self.labels[i], i, start
        return chunk, self.labels[i]

    def _cut(self, i: int, k: int) -> tuple[torch.Tensor, int]:
        """Clip `i`'s window (its `k`-th fixed one, or a random one) and its start; only those
        samples are read."""
        wave = self.split.waves[i]
        if self.fixed is not None:
            start = self.fixed[i][k]
        else:
            # torch's RNG, not numpy's: Lightning seeds it per worker, so runs are reproducible.
            start = int(torch.randint(0, max(len(wave) - self.chunk, 0) + 1, ()).item())
        return window(wave, start, self.chunk), start


class TrackChunks(Dataset):
    """Every window of every clip, as (chunk, label, clip index), or with `with_start` as
    (chunk, label, clip index, start sample). `shifts` > 1 adds the windows of the hop grid
    shifted by hop/shifts, 2 hop/shifts, ... (test-time augmentation, `shifted_starts`)."""

    def __init__(self, split: AudioSplit, chunk: int, hop: int, labels: list[Any] | None = None,
                 shifts: int = 1, with_start: bool = False) -> None:
        self.split, self.chunk, self.with_start = split, chunk, with_start
        self.labels = split.labels if labels is None else labels
        self.index = [
            (i, s) for i, w in enumerate(split.waves) for s in shifted_starts(len(w), chunk, hop, shifts)
        ]
        self.unreadable = UnreadableClips(split)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, idx: int) -> tuple:
        # A window of a clip that became unreadable during the run gives way to the next
        # readable window (of another clip, under that clip's own index and label).
        idx, chunk = self.unreadable.first_readable(
            idx, len(self.index), lambda p: window(self.split.waves[self.index[p][0]], self.index[p][1], self.chunk),
            lambda p: self.index[p][0])
        i, s = self.index[idx]
        item = chunk, self.labels[i], i
        return (*item, s) if self.with_start else item


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
        short_clips: str = "skip",
        task: str = "multiclass",
        on_leak: str = "warn",
        dataset_task: str = "multiclass",
        **dataset_settings: Any,
    ) -> None:
        """`dataset_settings` are the dataset's user-facing settings (`data.root`, ...): the
        data configs keep them at the top of the group and interpolate them into `source:`, so
        the source has them already. Each must be one the source declares (`source.settings`);
        any other key is an error naming it, so a misspelt setting is never silently ignored.
        `dataset_task` is the task the dataset's labels call for (its config's
        `data.dataset_task`): `multilabel` refuses `task=multiclass` at setup."""
        super().__init__()
        unknown = [key for key in dataset_settings if key not in type(source).settings]
        if unknown:
            declared = ", ".join(f"data.{k}" for k in type(source).settings) or "none"
            raise ValueError(
                f"data.{unknown[0]} is not a setting of the '{source.name}' dataset (its settings: {declared})"
            )
        if short_clips not in SHORT_CLIPS:
            raise ValueError(f"data.short_clips must be one of {', '.join(SHORT_CLIPS)}, got {short_clips!r}")
        if on_leak not in ON_LEAK:
            raise ValueError(f"data.on_leak must be one of {', '.join(ON_LEAK)}, got {on_leak!r}")
        if task not in TASKS:
            raise ValueError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
        if dataset_task not in TASKS:
            raise ValueError(f"data.dataset_task must be one of {', '.join(TASKS)}, got {dataset_task!r}")
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
        self.chunk = samples(chunk_seconds, self.sample_rate)
        self.hop = samples(eval_hop_seconds or chunk_seconds, self.sample_rate)
        self.train_chunks_per_clip = int(train_chunks_per_clip)
        self.batch_size = int(batch_size)
        self.eval_batch_size = int(eval_batch_size or batch_size)
        self.num_workers = int(num_workers)
        self.short_clips = short_clips
        self.task = task
        self.dataset_task = dataset_task
        self.on_leak = on_leak
        self.splits: dict[str, AudioSplit] | None = None
        #: Files the source left out before making the splits (path, reason).
        self.unassigned: list[tuple[str, str]] = []
        #: Pairs of files with identical decoded audio and their splits (a warning).
        self.identical: list[dict] = []
        #: Fixed training windows and keyed validation windows (set by the LightningModule
        #: caching a frozen backbone's embeddings; see the module docstring).
        self.fixed_train_windows = False

    @property
    def classes(self) -> list[str]:
        return self.source.classes

    def setup(self, stage: str | None = None) -> None:
        # Idempotent: train.py calls it early so bad settings fail before any run starts,
        # and Lightning calls it again from fit/test.
        if self.splits is not None:
            return
        # Sources that split after decoding drop short clips before splitting, so that the
        # split is made from usable clips; the rest are handled per split below.
        splits = self.source.load(self.sample_rate, min_samples=self.chunk if self.short_clips == "skip" else 0)
        check_leaks(f"dataset '{self.source.name}'", self.source.identical, self.on_leak)
        splits = {name: self._handle_short(name, splits[name]) for name in SPLITS}
        unassigned = list(self.source.unassigned)
        reasons = [reason for _, reason in [*unassigned, *(e for s in splits.values() for e in s.skipped)]]
        for name, split in splits.items():
            if len(split) == 0:
                short = sum(reason.startswith(SHORT_REASON) for reason in reasons)
                hint = f", {short} of them shorter than data.chunk_seconds={self.chunk / self.sample_rate:g}" if short else ""
                raise ValueError(
                    f"dataset '{self.source.name}' has no usable clips in split '{name}' "
                    f"({len(reasons)} file(s) skipped{hint}, each logged above with its reason)"
                )
        self._check_task(splits)
        self._check_classes(splits, len(reasons))
        self.splits, self.unassigned = splits, unassigned
        self.identical = list(self.source.identical)

    def _handle_short(self, name: str, split: AudioSplit) -> AudioSplit:
        """`split` without its clips shorter than one window (`skip`), as it is (`pad`), or an
        error naming the first one (`error`)."""
        short = [i for i, w in enumerate(split.waves) if len(w) < self.chunk]
        if not short or self.short_clips == "pad":
            return split
        seconds = self.chunk / self.sample_rate
        if self.short_clips == "error":
            i = short[0]
            raise ValueError(
                f"data.chunk_seconds={seconds:g} is longer than clip '{split.ids[i]}' "
                f"({len(split.waves[i]) / self.sample_rate:.2f} s) in split '{name}' "
                "(data.short_clips=error; skip or pad keeps the run going)"
            )
        keep = sorted(set(range(len(split))) - set(short))
        lost = [(split.ids[i], short_reason(len(split.waves[i]), self.chunk, self.sample_rate)) for i in short]
        log.warning("%s split '%s': skipping %d clip(s) shorter than one chunk: %s", self.source.name, name,
                    len(lost), ", ".join(clip for clip, _ in lost[:10]))
        return AudioSplit(
            ids=[split.ids[i] for i in keep],
            labels=[split.labels[i] for i in keep],
            waves=[split.waves[i] for i in keep],
            skipped=[*split.skipped, *lost],
            tags=None if split.tags is None else [split.tags[i] for i in keep],
            artists=None if split.artists is None else [split.artists[i] for i in keep],
        )

    def _check_task(self, splits: Mapping[str, AudioSplit]) -> None:
        """Several labels on one clip need `task=multilabel`: a softmax head would learn only one."""
        if self.task == "multilabel":
            return
        if self.dataset_task == "multilabel":
            raise DataConfigError(f"task={self.task} does not fit dataset '{self.source.name}': its clips carry "
                                  "several tags (data.dataset_task=multilabel); set task=multilabel or leave task unset")
        for name, split in splits.items():
            for clip, tags in zip(split.ids, split.tag_sets()):
                if len(tags) > 1:
                    raise DataConfigError(
                        f"dataset '{self.source.name}': clip '{clip}' ({name}) has {len(tags)} labels "
                        f"({';'.join(self.classes[t] for t in tags)}); train with task=multilabel"
                    )

    def _check_classes(self, splits: Mapping[str, AudioSplit], skipped: int) -> None:
        """Every class needs a clip in every split: a class absent from validation or test is
        never measured, and one absent from training is never learnt."""
        counts = {
            name: np.bincount(np.array([t for tags in split.tag_sets() for t in tags], dtype=int), minlength=len(self.classes))
            for name, split in splits.items()
        }
        problems, absent = [], []
        for label, cls in enumerate(self.classes):
            missing = [name for name in SPLITS if counts[name][label] == 0]
            if len(missing) == len(SPLITS):
                absent.append(f"'{cls}'")
            elif missing:
                have = ", ".join(f"{name} {int(counts[name][label])}" for name in SPLITS)
                problems.append(f"class '{cls}' has no usable clip in split(s) {', '.join(missing)} (usable clips: {have})")
        if absent:
            problems.append(f"class(es) {', '.join(absent)} have no usable clip in any split")
        if problems:
            raise ValueError(
                f"dataset '{self.source.name}': {'; '.join(problems)}. A seeded split gives a class validation "
                f"and test clips once it has 3 usable clips; {skipped} file(s) were skipped, each logged above "
                "with its reason"
            )

    def scan_report(self) -> dict[str, dict[str, Any]]:
        """What `data/scan_report.json` holds: per split the clips used and the files skipped
        with their reason; `unassigned` lists the files left out before any split was made.
        When files under different names hold identical audio, `identical_audio` lists each
        pair with both splits under `pairs` (its `clips` and `skipped` stay empty, so every
        entry keeps the same shape)."""
        if self.splits is None:
            self.setup()
        assert self.splits is not None
        entries = {name: (len(split), split.skipped) for name, split in self.splits.items()}
        entries["unassigned"] = (0, self.unassigned)
        report: dict[str, dict[str, Any]] = {
            name: {"clips": n, "skipped": [{"path": p, "reason": r} for p, r in skipped]}
            for name, (n, skipped) in entries.items()}
        if self.identical:
            report["identical_audio"] = {"clips": 0, "skipped": [], "pairs": [dict(p) for p in self.identical]}
        return report

    def train_dataloader(self) -> DataLoader:
        split = self._split("train")
        # Lightning's seed_everything seeds torch: the fixed windows are the seed's.
        seed = torch.initial_seed() % 2**63 if self.fixed_train_windows else None
        ds = RandomChunks(split, self.chunk, self.train_chunks_per_clip, self._targets(split), seed)
        return self._loader(ds, self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        split = self._split("val")
        windows = TrackChunks(split, self.chunk, self.hop, self._targets(split), with_start=self.fixed_train_windows)
        return self._loader(windows, self.eval_batch_size)

    def test_dataloader(self) -> DataLoader:
        split = self._split("test")
        return self._loader(TrackChunks(split, self.chunk, self.hop, self._targets(split)), self.eval_batch_size)

    def _targets(self, split: AudioSplit) -> list[Any]:
        return targets(split, len(self.classes), self.task == "multilabel")

    def teardown(self, stage: str) -> None:
        """Count in the run the clips skipped because their audio became unreadable during it
        (`UnreadableClips`): metrics `data/unreadable_clips/<split>`, only for splits that had some
        (zeros would lead the MLflow UI's charts, which sort metrics by name)."""
        trainer = self.trainer
        if trainer is None or trainer.logger is None or stage not in ("fit", "test"):
            return
        loaders = ({"train": trainer.train_dataloader, "val": trainer.val_dataloaders} if stage == "fit"
                   else {"test": trainer.test_dataloaders})
        counts = {}
        for name, loader in loaders.items():
            marks = getattr(getattr(loader, "dataset", None), "unreadable", None)
            if isinstance(marks, UnreadableClips) and marks.count:  # zero, the rule, is not logged
                counts[f"data/unreadable_clips/{name}"] = marks.count
        if counts:
            trainer.logger.log_metrics(counts)

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
