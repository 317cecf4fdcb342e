"""What the benchmark datasets (FMA, MagnaTagATune, MTG-Jamendo) share: metadata files that list
each clip with its split and tags, and audio found under a folder by the listed path.

genre_lab never downloads them: `data.root` is the dataset's folder as distributed and
`data.audio_dir` overrides where its audio is. The metadata are read as untrusted data: each
file is bounded in size, fields are checked against what the format allows (a path stays
inside the audio folder, a tag is short text), nothing is evaluated. A clip listed but absent
from disk is skipped in its split and reported (`data/scan_report.json`); audio files nobody
lists are ignored. A tag that has no clip in one of the three splits could be neither learnt
nor measured, so it is left out (logged); a clip left with no tag is reported as unassigned.
"""

from __future__ import annotations

import logging
import re
from abc import abstractmethod
from collections import Counter
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar

from genre_lab.data.clips import SPLITS, AudioSplit, DataConfigError
from genre_lab.data.files import FileSource, LabelledFile, existing_folder

log = logging.getLogger(__name__)

#: Largest metadata file read (FMA's tracks.csv, the largest, is about 250 MB).
MAX_METADATA_BYTES = 1 << 30
#: Longest tag or class name, and most tags one clip may carry.
MAX_TAG_CHARS = 200
MAX_TAGS_PER_CLIP = 500
#: Longest listed audio path.
MAX_PATH_CHARS = 1024
_UNSAFE = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class Listed:
    """One clip of the metadata: its split, its path under the audio folder, its tags."""

    split: str
    path: str
    tags: tuple[str, ...]
    clip_id: str
    #: The artist, where the metadata name one.
    group: str | None = None
    #: Other names the file may have on disk (MTG-Jamendo's `audio-low` copy: `.low.mp3`).
    alternatives: tuple[str, ...] = ()


def metadata_file(root: Path, relative: str, setting: str, what: str) -> Path:
    """`root/relative`, a file no larger than MAX_METADATA_BYTES, or a DataConfigError that
    names the file and the setting that chose it."""
    file = root / relative
    if not file.is_file():
        raise DataConfigError(f"{setting}: {relative} not found under {root} ({what})")
    size = file.stat().st_size
    if size > MAX_METADATA_BYTES:
        raise DataConfigError(f"{file} is {size} bytes, more than a metadata file may hold ({MAX_METADATA_BYTES})")
    return file


def check_tag(text: Any, where: str) -> str:
    """A tag or class name from metadata: short, printable text."""
    tag = str(text).strip()
    if not tag or len(tag) > MAX_TAG_CHARS or _UNSAFE.search(tag):
        raise DataConfigError(f"{where}: not a tag (1 to {MAX_TAG_CHARS} printable characters): {tag[:80]!r}")
    return tag


def check_path(text: str, where: str) -> str:
    """A listed audio path: relative, inside the audio folder (no `..`), short, printable."""
    path = text.strip()
    parts = PurePosixPath(path).parts
    if (not path or len(path) > MAX_PATH_CHARS or _UNSAFE.search(path) or "\\" in path
            or path.startswith("/") or ".." in parts or not parts):
        raise DataConfigError(f"{where}: not a relative audio path: {path[:80]!r}")
    return path


class ListedSource(FileSource):
    """A dataset whose metadata fix every clip's split and tags (`read_listed`), with its audio
    under `audio_folder`. Classes are the sorted tags that have a clip in every split."""

    settings: ClassVar[tuple[str, ...]] = ("root", "audio_dir", *FileSource.settings)
    #: The metadata file named in reasons (`tracks.csv`).
    listing: str = "the metadata"

    def __init__(self, root: str | Path | None, audio_dir: str | Path | None = None, **split_and_cache: Any) -> None:
        self.root = root
        self.audio_dir = audio_dir or None
        super().__init__(**split_and_cache)  # cache, max_seconds; the split is the dataset's own
        self._listed: tuple[list[Listed], list[tuple[str, str]], list[str]] | None = None

    @abstractmethod
    def read_listed(self, root: Path) -> tuple[list[Listed], list[tuple[str, str]]]:
        """Every clip the metadata put in a split, and those left out with the reason."""

    @abstractmethod
    def default_audio_folder(self, root: Path) -> Path:
        """Where the audio is when `data.audio_dir` is not set."""

    def listed(self) -> tuple[list[Listed], list[tuple[str, str]], list[str]]:
        """(clips with their tags limited to the classes, clips left out, classes); read once."""
        if self._listed is None:
            root = existing_folder(self.root, "data.root", f"the {self.name} dataset folder")
            clips, left_out = self.read_listed(root)
            if not clips:
                raise DataConfigError(f"data.root={root}: {self.listing} lists no clip with a label")
            paths: set[str] = set()
            for clip in clips:
                if clip.path in paths:
                    raise DataConfigError(f"data.root={root}: {self.listing} lists {clip.path} twice")
                paths.add(clip.path)
            seen: dict[str, Counter] = {split: Counter() for split in SPLITS}
            for clip in clips:
                seen[clip.split].update(clip.tags)
            every = set.intersection(*(set(counts) for counts in seen.values()))
            lost = sorted(set().union(*seen.values()) - every)
            if lost:
                log.warning("%s: %d tag(s) without a clip in every split are not used: %s", self.name, len(lost),
                            ", ".join(lost[:20]) + (" ..." if len(lost) > 20 else ""))
            kept, left_out = [], list(left_out)
            for clip in clips:
                tags = tuple(t for t in clip.tags if t in every)
                if tags:
                    kept.append(Listed(clip.split, clip.path, tags, clip.clip_id, clip.group, clip.alternatives))
                else:
                    left_out.append((clip.path, "none of its tags has a clip in every split"))
            self._listed = (kept, left_out, sorted(every))
        return self._listed

    @property
    def classes(self) -> list[str]:
        return list(self.listed()[2])

    def load(self, sample_rate: int, min_samples: int = 0) -> dict[str, AudioSplit]:
        clips, left_out, classes = self.listed()
        root = existing_folder(self.root, "data.root", f"the {self.name} dataset folder")
        if self.audio_dir is None:
            audio, setting = self.default_audio_folder(root), "data.root"
            if not audio.is_dir():
                raise DataConfigError(f"data.root={root}: no audio folder {audio.name}/ in it; "
                                      "point data.audio_dir at the folder holding the audio")
        else:
            audio = existing_folder(self.audio_dir, "data.audio_dir", f"the {self.name} audio")
            setting = "data.audio_dir"
        index = {tag: i for i, tag in enumerate(classes)}
        assignment: dict[str, list[LabelledFile]] = {split: [] for split in SPLITS}
        skipped: dict[str, list[tuple[str, str]]] = {split: [] for split in SPLITS}
        absent = f"listed in {self.listing}, not found under {audio}"
        for clip in clips:
            found = next((audio / p for p in (clip.path, *clip.alternatives)
                          if (audio / p).is_file() or (audio / p).is_symlink()), None)
            if found is None:
                skipped[clip.split].append((clip.path, absent))
                continue
            tags = sorted(index[t] for t in clip.tags)
            assignment[clip.split].append(
                LabelledFile(found, tags[0], clip.clip_id, tuple(tags) if len(tags) > 1 else (), clip.group))
        if clips and not any(assignment.values()):
            raise DataConfigError(f"{setting}={audio if setting == 'data.audio_dir' else root} holds none of the "
                                  f"{len(clips)} files listed in {self.listing} (e.g. {audio / clips[0].path})")
        log.info("%s: %s clips listed per split (train/val/test), %d found on disk, %d left out by the metadata",
                 self.name, "/".join(str(sum(c.split == s for c in clips)) for s in SPLITS),
                 sum(len(v) for v in assignment.values()), len(left_out))
        return self.usable_splits(assignment, sample_rate, min_samples, self.name, skipped, left_out)
