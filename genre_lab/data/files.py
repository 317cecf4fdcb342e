"""From labelled audio files on disk to the three `AudioSplit`s every file-based source returns.

The GTZAN, folder and CSV sources differ only in how they find files and labels; `FileSource`
holds what they share: no file may be listed twice where it could sit in two splits (links
followed, see `leakage.py`), every candidate is screened (decoded through the cache, checked
for silence and length, see `screen.py`), then the usable ones are split (seeded and
stratified, see `stratify.py`) unless the dataset fixes the split itself; recordings with
identical audio under two names are reported.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from genre_lab.audio.decode import AUDIO_EXTENSIONS, DEFAULT_MAX_SECONDS
from genre_lab.data.clips import SPLITS, AudioSplit, ClipSource, DataConfigError
from genre_lab.data.leakage import check_same_files, identical_audio, log_identical
from genre_lab.data.screen import log_skipped, screen
from genre_lab.data.stratify import check_fractions, fold_split, stratified_split


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
    #: The file's artist, where the dataset's metadata names it (`AudioSplit.artists`).
    artist: str | None = None


def existing_folder(value: str | Path | None, setting: str, what: str) -> Path:
    """`value` as an absolute folder path, or a DataConfigError naming `setting`."""
    if value is None or str(value).strip() == "":
        raise DataConfigError(f"{setting} is not set: point it at {what} ({setting}=/path/to/folder)")
    path = Path(value).expanduser()
    if not path.is_dir():
        raise DataConfigError(f"{setting}={path} does not exist or is not a folder")
    return path.resolve()


def find_audio(folder: Path, dangling_links: bool = False) -> list[Path]:
    """Audio files (by extension, any case) anywhere under `folder`, sorted; hidden entries
    such as `.DS_Store` or macOS `._x.wav` resource forks are ignored. With `dangling_links`,
    every other entry named like audio that is not a folder is listed too (a symbolic link
    whose target is gone, a named pipe): datasets report them instead of dropping them."""
    found = []
    for path in folder.rglob("*"):
        rel = path.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if path.suffix.lower() in AUDIO_EXTENSIONS and (path.is_file() or (dangling_links and not path.is_dir())):
            found.append(path)
    return sorted(found)


def readable_id(relative: str) -> str:
    """A clip id as text every report, store and CSV can hold: a file name that is not valid
    UTF-8 comes from the OS as a str with surrogate escapes, which any UTF-8 writer refuses
    (the run's dataset digest did, after the scan), so its bytes are spelt `\\xe9`. The file is
    still read through its exact path."""
    return os.fsencode(relative).decode("utf-8", "backslashreplace")


def find_audio_entries(folder: Path) -> list[Path]:
    """Every entry anywhere under `folder` named like audio that is not a folder, whatever it
    is (a file, a link dangling or not, a named pipe), and every subfolder that cannot be
    listed, sorted; hidden entries are skipped and linked folders not followed, as in
    `find_audio`. Tagging gives each one a row: what cannot be decoded gets its error there."""
    found: list[Path] = []
    pending = [folder]
    while pending:
        current = pending.pop()
        try:
            with os.scandir(current) as listing:
                entries = list(listing)
        except OSError:
            found.append(current)  # its files cannot be known: the folder itself gets the row
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = Path(entry.path)
            if _is_folder(entry, follow=False):
                pending.append(path)
            elif path.suffix.lower() in AUDIO_EXTENSIONS and not _is_folder(entry, follow=True):
                found.append(path)
    return sorted(found)


def _is_folder(entry: os.DirEntry, follow: bool) -> bool:
    try:
        return entry.is_dir(follow_symlinks=follow)
    except OSError:
        return False


class FileSource(ClipSource):
    """Settings shared by the sources that read labelled files: the seeded stratified split
    (fractions and seed), the decode cache with its worker threads, and the longest audio a
    file's header may declare (`data.max_seconds`, checked before decoding)."""

    settings: ClassVar[tuple[str, ...]] = (
        "val_fraction", "test_fraction", "split_seed", "folds", "fold", "cache_dir", "decode_workers", "max_seconds",
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
        max_seconds: float | None = DEFAULT_MAX_SECONDS,
    ) -> None:
        if max_seconds is not None and not float(max_seconds) > 0:
            raise ValueError(f"data.max_seconds must be a positive number of seconds (or null: no limit), got {max_seconds}")
        self.max_seconds = None if max_seconds is None else float(max_seconds)
        self.val_fraction, self.test_fraction = check_fractions(val_fraction, test_fraction)
        self.seed = int(seed)
        #: K-fold cross-validation (`data.folds`, `data.fold`) instead of the fractions.
        self.folds, self.fold = (int(folds), int(fold)) if folds else (None, 0)
        if self.folds is not None:
            fold_split([], self.folds, self.fold, self.seed)  # checks the two settings now
        self.cache_dir = cache_dir
        self.workers = workers
        self.unassigned: list[tuple[str, str]] = []
        #: Pairs of files with identical decoded audio, with their splits (`leakage.py`).
        self.identical: list[dict] = []

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
        # Before anything is decoded: one file under two names must not sit in two splits.
        check_same_files({s: list(files.get(s, ())) for s in SPLITS} if isinstance(files, Mapping) else candidates,
                         dataset)
        result = screen([f.path for f in candidates], sample_rate, min_samples, self.cache_dir, self.workers,
                        f"decoding {dataset}", self.max_seconds)
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
        with_artists = any(f.artist for f in candidates)
        for split in SPLITS:
            kept = [f for f in assignment[split] if str(f.path) not in rejected]
            lost = [(str(f.path), rejected[str(f.path)]) for f in assignment[split] if str(f.path) in rejected]
            out[split] = AudioSplit(
                ids=[f.clip_id for f in kept],
                labels=[f.label for f in kept],
                waves=[result.waves[str(f.path)] for f in kept],
                skipped=[*(skipped or {}).get(split, ()), *lost],
                tags=[f.tags or (f.label,) for f in kept] if multilabel else None,
                artists=[f.artist for f in kept] if with_artists else None,
            )
        log_skipped(dataset, [*self.unassigned, *(entry for s in out.values() for entry in s.skipped)])
        placed = [(f, split) for split in SPLITS for f in assignment[split] if str(f.path) in result.waves]
        self.identical = identical_audio(placed, result.waves, result.checksums)
        log_identical(dataset, self.identical)
        return out
