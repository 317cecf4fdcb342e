"""Clips whose audio stops being readable while a run is going are skipped, not fatal.

What can happen after the scan: the waves of file datasets are references to their decode-cache
entries (`cache.CachedWave`, read a chunk at a time; in memory without a cache), and the source
files are never read again, so deleting, truncating or locking a source file changes nothing.
A cache entry that is deleted, made unreadable, cut short, or changed so that its samples no
longer match their checksum makes reading that clip fail with an `AudioDecodeError` naming
the entry (never a crash, never wrong samples used).

`UnreadableClips` reads a clip's samples for the datasets; a clip whose read fails is warned
about once and skipped for the rest of the run, and the next readable clip serves in its place.
Marks live in shared memory, so DataLoader workers and the main process see the same ones and
`count` is the run's total (`GenreDataModule` logs it as `data/unreadable_clips/<split>`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

import torch

from genre_lab.audio.decode import AudioDecodeError
from genre_lab.data.clips import AudioSplit

log = logging.getLogger(__name__)

T = TypeVar("T")


class UnreadableClips:
    """Marks of the clips of one split that became unreadable during the run."""

    def __init__(self, split: AudioSplit) -> None:
        self.split = split
        # Created before DataLoader workers start, so they inherit the same shared pages.
        self.marks = torch.zeros(len(split), dtype=torch.bool).share_memory_()

    @property
    def count(self) -> int:
        return int(self.marks.sum())

    def first_readable(self, pos: int, n: int, read: Callable[[int], T],
                       clip_at: Callable[[int], int] = int) -> tuple[int, T]:
        """(p, read(p)) for the first of the positions `pos, pos + 1, ...` (mod `n`) whose clip,
        `clip_at(p)`, is not marked and reads without an `AudioDecodeError`; the first time a
        clip fails, it is warned about and marked. An error only when no clip of the split is left."""
        for k in range(n):
            p = (pos + k) % n
            i = clip_at(p)
            if self.marks[i]:
                continue
            try:
                return p, read(p)
            except AudioDecodeError as err:
                self.marks[i] = True
                log.warning("clip %s is skipped for the rest of the run: %s", self.split.ids[i], err)
        raise RuntimeError(f"none of the {len(self.split)} clips of this split can be read any more: their cache "
                           "entries were deleted, cut short or changed during the run (see the warnings above)")
