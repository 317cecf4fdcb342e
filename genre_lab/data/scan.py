"""From labelled audio files on disk to the three `AudioSplit`s every file-based source returns.

The GTZAN, folder and CSV sources differ only in how they find files and labels; this module
holds what they share: finding audio under a folder, a seeded stratified train/val/test split,
and decoding everything once (through the cache) while collecting the files that failed.
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..audio import AUDIO_EXTENSIONS
from .cache import decode_files
from .clips import SPLITS, AudioSplit, ClipSource

log = logging.getLogger(__name__)

#: How many skipped names a log line spells out; the scan report always lists them all.
_LOG_NAMES = 10


@dataclass(frozen=True)
class LabelledFile:
    path: Path
    label: int
    #: Stable, human-readable id (the MLflow reports and the track predictions use it).
    clip_id: str


def existing_folder(value: str | Path | None, setting: str, what: str) -> Path:
    """`value` as an absolute folder path, or a ValueError naming `setting`."""
    if value is None or str(value).strip() == "":
        raise ValueError(f"{setting} is not set: point it at {what} ({setting}=/path/to/folder)")
    path = Path(value).expanduser()
    if not path.is_dir():
        raise ValueError(f"{setting}={path} does not exist or is not a folder")
    return path.resolve()


def find_audio(folder: Path) -> list[Path]:
    """Audio files (by extension, any case) anywhere under `folder`, sorted; hidden entries
    such as `.DS_Store` or macOS `._x.wav` resource forks are ignored."""
    found = []
    for path in folder.rglob("*"):
        rel = path.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if path.suffix.lower() in AUDIO_EXTENSIONS and path.is_file():
            found.append(path)
    return sorted(found)


def check_fractions(val_fraction: float, test_fraction: float) -> tuple[float, float]:
    val, test = float(val_fraction), float(test_fraction)
    for name, value in (("data.val_fraction", val), ("data.test_fraction", test)):
        if not 0.0 < value < 1.0:
            raise ValueError(f"{name} must be between 0 and 1 (exclusive), got {value}")
    if val + test >= 1.0:
        raise ValueError(f"data.val_fraction + data.test_fraction must leave clips to train on, got {val} + {test}")
    return val, test


def stratified_split(
    files: Sequence[LabelledFile], val_fraction: float, test_fraction: float, seed: int
) -> dict[str, list[LabelledFile]]:
    """Per class, `test_fraction` of the files go to test, `val_fraction` to val, the rest to train.

    Files are ordered by a seeded hash of their id rather than shuffled, so each file's place
    depends only on (seed, id) and the class size: adding one file to a class moves at most the
    files at the boundaries. Every class keeps at least one training file, and gets at least
    one val and one test file once it has three or more.
    """
    by_class: dict[int, list[LabelledFile]] = defaultdict(list)
    for f in files:
        by_class[f.label].append(f)
    out: dict[str, list[LabelledFile]] = {s: [] for s in SPLITS}
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


class FileSource(ClipSource):
    """Settings shared by the sources that read labelled files: the seeded stratified split
    (fractions and seed) and the decode cache with its worker threads."""

    def __init__(
        self,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        seed: int = 0,
        cache_dir: str | Path | None = None,
        workers: int | None = None,
    ) -> None:
        self.val_fraction, self.test_fraction = check_fractions(val_fraction, test_fraction)
        self.seed = int(seed)
        self.cache_dir = cache_dir
        self.workers = workers

    def stratify(self, files: Sequence[LabelledFile]) -> dict[str, list[LabelledFile]]:
        return stratified_split(files, self.val_fraction, self.test_fraction, self.seed)

    def decode(
        self,
        assignment: Mapping[str, Sequence[LabelledFile]],
        sample_rate: int,
        dataset: str,
        skipped: Mapping[str, Iterable[tuple[str, str]]] | None = None,
    ) -> dict[str, AudioSplit]:
        return decode_splits(assignment, sample_rate, self.cache_dir, self.workers, dataset, skipped)


def decode_splits(
    assignment: Mapping[str, Sequence[LabelledFile]],
    sample_rate: int,
    cache_dir: str | Path | None,
    workers: int | None,
    dataset: str,
    skipped: Mapping[str, Iterable[tuple[str, str]]] | None = None,
) -> dict[str, AudioSplit]:
    """Decode every assigned file once and build the splits.

    Files that fail are left out of their split and recorded in its `skipped` list with the
    reason, after any `skipped` entries the source found itself (e.g. listed but absent files).
    Everything skipped is logged once, here.
    """
    files = [f for split in SPLITS for f in assignment.get(split, ())]
    result = decode_files([f.path for f in files], sample_rate, cache_dir, workers, f"decoding {dataset}")
    reasons = dict(result.failed)
    out: dict[str, AudioSplit] = {}
    for split in SPLITS:
        kept = [f for f in assignment.get(split, ()) if str(f.path) not in reasons]
        lost = [(str(f.path), reasons[str(f.path)]) for f in assignment.get(split, ()) if str(f.path) in reasons]
        out[split] = AudioSplit(
            ids=[f.clip_id for f in kept],
            labels=[f.label for f in kept],
            waves=[result.waves[str(f.path)] for f in kept],
            skipped=[*(skipped or {}).get(split, ()), *lost],
        )
    _log_skipped(dataset, out)
    return out


def _log_skipped(dataset: str, splits: Mapping[str, AudioSplit]) -> None:
    """One warning, grouped by reason: hundreds of clips absent from a partial copy read as one line."""
    by_reason: dict[str, list[str]] = defaultdict(list)
    for split in splits.values():
        for name, reason in split.skipped:
            by_reason[reason].append(name)
    if not by_reason:
        return
    parts = []
    for reason, names in by_reason.items():
        more = f" and {len(names) - _LOG_NAMES} more" if len(names) > _LOG_NAMES else ""
        parts.append(f"{', '.join(names[:_LOG_NAMES])}{more} ({reason})")
    total = sum(len(names) for names in by_reason.values())
    log.warning("%s: skipping %d file(s), all listed in data/scan_report.json: %s", dataset, total, "; ".join(parts))
