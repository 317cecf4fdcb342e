"""From labelled audio files on disk to the three `AudioSplit`s every file-based source returns.

The GTZAN, folder and CSV sources differ only in how they find files and labels; `FileSource`
holds what they share: every candidate is screened first (decoded through the cache, checked
for silence and length, see `screen.py`), then the usable ones are split (seeded and
stratified, see `stratify.py`) unless the dataset fixes the split itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from ..audio import AUDIO_EXTENSIONS
from .clips import SPLITS, AudioSplit, ClipSource
from .screen import log_skipped, screen
from .stratify import check_fractions, fold_split, stratified_split


@dataclass(frozen=True)
class LabelledFile:
    path: Path
    label: int
    #: Stable, human-readable id (the MLflow reports and the track predictions use it).
    clip_id: str
    #: Every class index of a multi-label file (`label` is the first); empty: just `label`.
    tags: tuple[int, ...] = ()
    #: Files of one group (an artist, an album) always share a split (`data.group_column`).
    group: str | None = None


def existing_folder(value: str | Path | None, setting: str, what: str) -> Path:
    """`value` as an absolute folder path, or a ValueError naming `setting`."""
    if value is None or str(value).strip() == "":
        raise ValueError(f"{setting} is not set: point it at {what} ({setting}=/path/to/folder)")
    path = Path(value).expanduser()
    if not path.is_dir():
        raise ValueError(f"{setting}={path} does not exist or is not a folder")
    return path.resolve()


def find_audio(folder: Path, dangling_links: bool = False) -> list[Path]:
    """Audio files (by extension, any case) anywhere under `folder`, sorted; hidden entries
    such as `.DS_Store` or macOS `._x.wav` resource forks are ignored. With `dangling_links`,
    symbolic links named like audio whose target is gone are listed too (datasets report them)."""
    found = []
    for path in folder.rglob("*"):
        rel = path.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if path.suffix.lower() in AUDIO_EXTENSIONS and (path.is_file() or (dangling_links and path.is_symlink())):
            found.append(path)
    return sorted(found)


class FileSource(ClipSource):
    """Settings shared by the sources that read labelled files: the seeded stratified split
    (fractions and seed) and the decode cache with its worker threads."""

    settings: ClassVar[tuple[str, ...]] = (
        "val_fraction", "test_fraction", "split_seed", "folds", "fold", "cache_dir", "decode_workers",
    )

    def __init__(
        self,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        seed: int = 0,
        cache_dir: str | Path | None = None,
        workers: int | None = None,
        folds: int | None = None,
        fold: int = 0,
    ) -> None:
        self.val_fraction, self.test_fraction = check_fractions(val_fraction, test_fraction)
        self.seed = int(seed)
        #: K-fold cross-validation (`data.folds`, `data.fold`) instead of the fractions.
        self.folds, self.fold = (int(folds), int(fold)) if folds else (None, 0)
        if self.folds is not None:
            fold_split([], self.folds, self.fold, self.seed)  # checks the two settings now
        self.cache_dir = cache_dir
        self.workers = workers
        self.unassigned: list[tuple[str, str]] = []

    def usable_splits(
        self,
        files: Sequence[LabelledFile] | Mapping[str, Sequence[LabelledFile]],
        sample_rate: int,
        min_samples: int,
        dataset: str,
        skipped: Mapping[str, Iterable[tuple[str, str]]] | None = None,
        unassigned: Iterable[tuple[str, str]] = (),
    ) -> dict[str, AudioSplit]:
        """Screen `files`, then split the usable ones.

        `files` is either every candidate, split here by the seeded stratified split of the
        usable ones (files left out are then reported in `self.unassigned`), or a fixed
        assignment {split: files} (a manifest's split column, GTZAN's lists; files left out are
        reported in their split's `skipped`). `skipped` and `unassigned` add what the source
        found itself (e.g. listed but absent files). Everything skipped is logged once, here.
        """
        candidates = list(files) if not isinstance(files, Mapping) else [f for s in SPLITS for f in files.get(s, ())]
        result = screen([f.path for f in candidates], sample_rate, min_samples, self.cache_dir, self.workers,
                        f"decoding {dataset}")
        rejected = result.rejected
        self.unassigned = list(unassigned)
        if isinstance(files, Mapping):
            if self.folds is not None:
                raise ValueError(f"data.folds={self.folds}: {dataset} fixes its own split (a split column, "
                                 "or GTZAN's filtered lists); cross-validation needs a dataset without one")
            assignment = {s: list(files.get(s, ())) for s in SPLITS}
        else:
            self.unassigned += [(str(f.path), rejected[str(f.path)]) for f in candidates if str(f.path) in rejected]
            usable = [f for f in candidates if str(f.path) not in rejected]
            if self.folds is not None:
                assignment = fold_split(usable, self.folds, self.fold, self.seed)
            elif any(f.group for f in usable):
                raise ValueError(f"data.group_column groups {dataset}'s files for cross-validation: "
                                 "set data.folds (e.g. data.folds=5 data.fold=0)")
            else:
                assignment = stratified_split(usable, self.val_fraction, self.test_fraction, self.seed)
        out: dict[str, AudioSplit] = {}
        multilabel = any(len(f.tags) > 1 for f in candidates)
        for split in SPLITS:
            kept = [f for f in assignment[split] if str(f.path) not in rejected]
            lost = [(str(f.path), rejected[str(f.path)]) for f in assignment[split] if str(f.path) in rejected]
            out[split] = AudioSplit(
                ids=[f.clip_id for f in kept],
                labels=[f.label for f in kept],
                waves=[result.waves[str(f.path)] for f in kept],
                skipped=[*(skipped or {}).get(split, ()), *lost],
                tags=[f.tags or (f.label,) for f in kept] if multilabel else None,
            )
        log_skipped(dataset, [*self.unassigned, *(entry for s in out.values() for entry in s.skipped)])
        return out
