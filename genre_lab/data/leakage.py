"""The same recording on two sides of a split makes test scores measure memory, not skill.

Two checks, run by `FileSource.usable_splits` around the split:

- **Same file** (before decoding): entries whose paths lead to one file (a symbolic link, a hard
  link, `a/../b`: the same device and inode once links are followed) are an error naming both
  entries, when a fixed split (a manifest's split column, GTZAN's lists) puts them in two
  splits, and always when the seeded split is to be made (it places each entry on its own, so
  the two could land anywhere). Paths are compared as the OS resolves them, not as written.
- **Identical audio** (after decoding): files under different names whose decoded samples are
  equal (the CRC-32 the decode cache records for every entry, confirmed sample by sample) are
  a warning with each pair and their splits, kept in the scan report (`identical_audio`):
  a copy may be a deliberate duplicate, or the same song leaked across splits.

Identical audio in two splits is a leak whatever the file names: `data.on_leak` decides what
the DataModule does with such pairs (`check_leaks`): `warn` (the default: a copy may be known
and accepted, and datasets that hold one still train) logs one line, `error` stops before
training with one line naming both files and their splits. `genre-lab audit` lists them all,
with near-duplicates and artists across splits.
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

log = logging.getLogger(__name__)

#: Pairs spelt out in an error or log line; the scan report always lists them all.
_SHOWN = 5
#: What `data.on_leak` may say about identical audio in two splits.
ON_LEAK = ("warn", "error")


class LeakageError(ValueError):
    """One file listed in two places a split could separate; the message names both entries."""


class Entry(Protocol):
    @property
    def path(self) -> Path: ...
    @property
    def clip_id(self) -> str: ...


def file_identity(path: Path) -> tuple[int, int] | None:
    """(device, inode) of the file `path` leads to, links followed; None when it cannot be
    reached (a missing file or a dangling link: the screening reports those)."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return st.st_dev, st.st_ino


def check_same_files(
    files: Sequence[Entry] | Mapping[str, Sequence[Entry]], dataset: str
) -> None:
    """Raise a ValueError naming both entries of every file listed twice where that can leak
    between splits: in two splits of a fixed assignment {split: entries}, or anywhere in a
    list of entries that is still to be split."""
    fixed = isinstance(files, Mapping)
    placed = [(f, split) for split, entries in files.items() for f in entries] if fixed else [(f, None) for f in files]
    by_file: dict[tuple[int, int], list[tuple[Entry, str | None]]] = defaultdict(list)
    for entry, split in placed:
        identity = file_identity(entry.path)
        if identity is not None:
            by_file[identity].append((entry, split))
    clashes = []
    for members in by_file.values():
        if len(members) < 2 or (fixed and len({split for _, split in members}) < 2):
            continue
        first, *others = members
        clashes += [(first, other) for other in others if not fixed or other[1] != first[1]]
    if not clashes:
        return
    shown = "; ".join(f"{_named(a, sa)} and {_named(b, sb)} are the same file {_real(a.path)}"
                      for (a, sa), (b, sb) in clashes[:_SHOWN])
    more = f" (and {len(clashes) - _SHOWN} more)" if len(clashes) > _SHOWN else ""
    why = ("a clip in two splits leaks into its own evaluation" if fixed
           else "the seeded split places each entry on its own, so one file could be trained and tested on")
    raise LeakageError(f"{dataset}: {shown}{more}: {why}; list each file once")


def identical_audio(
    placed: Sequence[tuple[Entry, str]], waves: Mapping[str, np.ndarray], checksums: Mapping[str, int]
) -> list[dict[str, Any]]:
    """Pairs of entries (with their splits) whose decoded audio is equal, as scan-report rows:
    {"first": {"clip", "path", "split"}, "second": {...}}. Waves and checksums are keyed by
    `str(path)`; equal length and CRC-32 are confirmed sample by sample."""
    groups: dict[tuple[int, int], list[tuple[Entry, str]]] = defaultdict(list)
    for entry, split in placed:
        name = str(entry.path)
        if name in waves and name in checksums:
            groups[(len(waves[name]), checksums[name])].append((entry, split))
    pairs = []
    for members in groups.values():
        while len(members) > 1:
            # One pass splits the rest into copies of the first and the others (filtering the rest
            # by membership in the copies compared every entry with every copy: quadratic in a
            # group of many identical files, e.g. thousands of copies of one jingle).
            (first, split), rest = members[0], members[1:]
            same: list[tuple[Entry, str]] = []
            others: list[tuple[Entry, str]] = []
            for e, s in rest:
                (same if np.array_equal(waves[str(first.path)], waves[str(e.path)]) else others).append((e, s))
            pairs += [{"first": _row(first, split), "second": _row(e, s)} for e, s in same]
            members = others
    return pairs


def log_identical(dataset: str, pairs: Sequence[Mapping[str, Any]]) -> None:
    """One warning line for every pair of identical recordings (all in the scan report); when
    a pair crosses splits, the line says that `data.on_leak=error` refuses it (the DataModule
    acts on it: `check_leaks`)."""
    if not pairs:
        return
    shown = "; ".join(f"{p['first']['path']} ({p['first']['split']}) = {p['second']['path']} ({p['second']['split']})"
                      for p in pairs[:_SHOWN])
    more = f" and {len(pairs) - _SHOWN} more" if len(pairs) > _SHOWN else ""
    leaks = len(cross_split(pairs))
    hint = (f"; {leaks} of them across splits leak into evaluation, data.on_leak=error refuses such a split"
            if leaks else "")
    log.warning("%s: %d pair(s) of files hold identical audio, all listed in data/scan_report.json "
                "(identical_audio): %s%s%s", dataset, len(pairs), shown, more, hint)


def cross_split(pairs: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The pairs of `identical_audio` rows whose two files sit in different splits."""
    return [p for p in pairs if p["first"]["split"] != p["second"]["split"]]


def check_leaks(dataset: str, pairs: Sequence[Mapping[str, Any]], on_leak: str) -> None:
    """Act on identical audio in two splits (`data.on_leak`): `error` raises LeakageError with
    one line naming the first pair's files and splits (and how many more there are); `warn` goes
    on, the source having logged its one line for them (`log_identical`). Nothing when no pair
    crosses splits."""
    if on_leak not in ON_LEAK:
        raise ValueError(f"data.on_leak must be one of {', '.join(ON_LEAK)}, got {on_leak!r}")
    leaks = cross_split(pairs)
    if not leaks:
        return
    first = leaks[0]
    more = f" (and {len(leaks) - 1} more pair(s))" if len(leaks) > 1 else ""
    line = (f"{dataset}: {first['first']['path']} ({first['first']['split']}) and {first['second']['path']} "
            f"({first['second']['split']}) hold identical audio{more}: the same recording in two splits leaks "
            "into its own evaluation")
    if on_leak == "error":
        raise LeakageError(f"{line}; remove one copy (data.on_leak=warn trains anyway)")


def _row(entry: Entry, split: str) -> dict[str, str]:
    return {"clip": entry.clip_id, "path": str(entry.path), "split": split}


def _named(entry: Entry, split: str | None) -> str:
    where = f", {split}" if split else ""
    return f"'{entry.clip_id}' ({entry.path}{where})"


def _real(path: Path) -> str:
    try:
        return str(path.resolve())
    except (OSError, RuntimeError):
        return str(path)
