"""The seeded, stratified train/val/test split of the file datasets that have no fixed split."""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Protocol, TypeVar

from genre_lab.data.clips import SPLITS


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
        group = sorted(by_class[label], key=lambda f: _digest(f"{seed}:{f.clip_id}"))
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


def _digest(text: str) -> str:
    """SHA-1 of `text` as the OS would spell it in bytes: a clip id from a file name that is not
    valid UTF-8 holds surrogate escapes, which a plain `encode()` refuses."""
    return hashlib.sha1(text.encode("utf-8", "surrogateescape")).hexdigest()


def fold_split(files: Sequence[T], folds: int, fold: int, seed: int) -> dict[str, list[T]]:
    """K-fold cross-validation: test is fold `fold`, validation the next fold (mod `folds`),
    training the other `folds - 2` folds, so over `fold = 0..folds-1` every file is tested once.

    Folds are stratified: per class, each file (or group) goes to the fold holding the fewest
    files of that class so far, ties to the smaller fold, then in a seeded order of folds.
    Files with the same `group` (an artist, `data.group_column`) form one unit, placed by its
    most common class, largest units first: a group never sits on two sides of a split.
    """
    folds, fold = int(folds), int(fold)
    if folds < 3:
        raise ValueError(f"data.folds must be at least 3 (test fold, validation fold, training folds), got {folds}")
    if not 0 <= fold < folds:
        raise ValueError(f"data.fold must be in 0..{folds - 1} for data.folds={folds}, got {fold}")
    units: dict[str, list[T]] = defaultdict(list)
    for f in files:
        group = getattr(f, "group", None)
        units[f"group:{group}" if group else f"file:{f.clip_id}"].append(f)

    def digest(text: str) -> str:
        return _digest(f"{seed}:{text}")

    by_class: dict[int, list[str]] = defaultdict(list)
    for key, members in units.items():
        labels = Counter(m.label for m in members)
        by_class[min(labels, key=lambda label: (-labels[label], label))].append(key)
    sizes = [0] * folds
    place: dict[str, int] = {}
    for label in sorted(by_class):
        # Seeded tie order of the folds per class, so small classes do not all start in fold 0.
        order = sorted(range(folds), key=lambda i: digest(f"fold{i}:class{label}"))
        rank = {f: r for r, f in enumerate(order)}
        held = [0] * folds
        for key in sorted(by_class[label], key=lambda k: (-len(units[k]), digest(k))):
            target = min(range(folds), key=lambda i: (held[i], sizes[i], rank[i]))
            place[key] = target
            held[target] += len(units[key])
            sizes[target] += len(units[key])
    side = {fold: "test", (fold + 1) % folds: "val"}
    out: dict[str, list[T]] = {s: [] for s in SPLITS}
    for key, members in units.items():
        out[side.get(place[key], "train")] += members
    for split in out.values():
        split.sort(key=lambda f: (f.label, f.clip_id))
    return out
