"""Clips whose audio stops being readable while a run is going are skipped, not fatal.

What can happen after the scan, measured: the waves of file datasets are memory maps of
decode-cache entries (in memory without a cache), so deleting a source file or an entry, or
taking away their read permission, changes nothing (the map keeps the entry open), and the
source files are never read again. An entry cut short in place by another program is the
one case that kills a run: reading past its new end raises SIGBUS, not an exception.

`UnreadableClips` checks a clip's entry (`cache.check_mapped`, one fstat) before its samples
are copied; a clip found cut short is warned about once and skipped for the rest of the run.
Marks live in shared memory, so DataLoader workers and the main process see the same ones and
`count` is the run's total (`GenreDataModule` logs it as `data/unreadable_clips/<split>`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch

from genre_lab.audio.decode import AudioDecodeError
from genre_lab.data.cache import check_mapped
from genre_lab.data.clips import AudioSplit

log = logging.getLogger(__name__)


class UnreadableClips:
    """Marks of the clips of one split that became unreadable during the run."""

    def __init__(self, split: AudioSplit) -> None:
        self.split = split
        # Created before DataLoader workers start, so they inherit the same shared pages.
        self.marks = torch.zeros(len(split), dtype=torch.bool).share_memory_()

    @property
    def count(self) -> int:
        return int(self.marks.sum())

    def readable(self, i: int) -> bool:
        """Whether clip `i` can still be read; the first time it cannot, warn and mark it."""
        if self.marks[i]:
            return False
        try:
            check_mapped(self.split.waves[i])
        except AudioDecodeError as err:
            self.marks[i] = True
            log.warning("clip %s is skipped for the rest of the run: %s", self.split.ids[i], err)
            return False
        return True

    def next_readable(self, pos: int, n: int, clip_at: Callable[[int], int] = int) -> int:
        """The first of the positions `pos, pos + 1, ...` (mod `n`) whose clip, `clip_at(p)`,
        is readable; an error only when no clip of the split is left."""
        for k in range(n):
            p = (pos + k) % n
            if self.readable(clip_at(p)):
                return p
        raise RuntimeError(f"none of the {len(self.split)} clips of this split can be read any more: "
                           "their cache entries were cut short during the run (see the warnings above)")
