"""The seeded, stratified train/val/test split of the file datasets that have no fixed split."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Sequence
from typing import Protocol, TypeVar

from .clips import SPLITS


class Labelled(Protocol):
    @property
    def label(self) -> int: ...
    @property
    def clip_id(self) -> str: ...


T = TypeVar("T", bound=Labelled)


def check_fractions(val_fraction: float, test_fraction: float) -> tuple[float, float]:
    val, test = float(val_fraction), float(test_fraction)
    for name, value in (("data.val_fraction", val), ("data.test_fraction", test)):
        if not 0.0 < value < 1.0:
            raise ValueError(f"{name} must be between 0 and 1 (exclusive), got {value}")
    if val + test >= 1.0:
        raise ValueError(f"data.val_fraction + data.test_fraction must leave clips to train on, got {val} + {test}")
    return val, test


def stratified_split(
    files: Sequence[T], val_fraction: float, test_fraction: float, seed: int
) -> dict[str, list[T]]:
    """Per class, `test_fraction` of the files go to test, `val_fraction` to val, the rest to train.

    Files are ordered by a seeded hash of their id rather than shuffled, so each file's place
    depends only on (seed, id) and the class size: adding one file to a class moves at most the
    files at the boundaries. Every class keeps at least one training file, and gets at least
    one val and one test file once it has three or more.
    """
    by_class: dict[int, list[T]] = defaultdict(list)
    for f in files:
        by_class[f.label].append(f)
    out: dict[str, list[T]] = {s: [] for s in SPLITS}
    for label in sorted(by_class):
        group = sorted(by_class[label], key=lambda f: hashlib.sha1(f"{seed}:{f.clip_id}".encode()).hexdigest())
        n = len(group)
        n_test = n_val = 0
        if n >= 3:
            n_test = min(max(1, round(n * test_fraction)), n - 2)
            n_val = min(max(1, round(n * val_fraction)), n - n_test - 1)
        out["test"] += group[:n_test]
        out["val"] += group[n_test : n_test + n_val]
        out["train"] += group[n_test + n_val :]
    for split in out.values():
        split.sort(key=lambda f: (f.label, f.clip_id))
    return out
