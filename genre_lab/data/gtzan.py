"""GTZAN (Tzanetakis & Cook 2002): 1000 30-second clips, 100 in each of ten genres.

Expected layout under `data.root`: `<genre>/<genre>.NNNNN.wav`, or the original release's
`.au` files under the same names; a root that holds the genre folders one or two levels down
(`genres/` of the original tarball, `Data/genres_original/` of the Kaggle copy) is found too.

Splits:
- `filtered` (default): the fault-filtered, artist-conditional split of Kereliuk, Sturm &
  Larsen (2015), 443 train / 197 valid / 290 test, shipped in `splits/gtzan/` (see its
  README for provenance). The 70 clips it leaves out (repeats, mislabelled and distorted
  clips) are not used. Listed clips that are missing, unreadable, silent or too short are
  skipped and reported in their split.
- `random`: a seeded stratified split of every usable clip found; the others are reported
  as `unassigned`.

Artists: when `splits/gtzan/artists.csv` (rows `clip,artist`, e.g. `blues.00000,John Lee
Hooker`: Sturm's list of GTZAN's artists) is present, each clip's artist is passed on
(`AudioSplit.artists`), so `genre-lab audit` can report an artist in two splits (the random
split does that). The list is not shipped: see `splits/gtzan/README.md`.
"""

from __future__ import annotations

import csv
import logging
import re
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar

from genre_lab.data.clips import AudioSplit, DataConfigError
from genre_lab.data.files import FileSource, LabelledFile, existing_folder

log = logging.getLogger(__name__)

#: The ten genres in alphabetical order: GTZAN's label indices.
GTZAN_GENRES: tuple[str, ...] = (
    "blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock",
)
SPLIT_KINDS = ("filtered", "random")
#: The list file of each partition of the filtered split.
_FILTERED_LISTS = {"train": "train_filtered.txt", "val": "valid_filtered.txt", "test": "test_filtered.txt"}
#: Optional {clip id: artist} list beside the split lists (not shipped; see the module docstring).
ARTISTS_FILE = "artists.csv"
_CLIP_NAME = re.compile(r"^(?P<genre>[a-z]+)\.(?P<number>\d{5})\.(?P<ext>wav|au)$", re.IGNORECASE)
_CLIP_ID = re.compile(r"^[a-z]+\.\d{5}$")


def filtered_split() -> dict[str, list[str]]:
    """Clip ids (`genre.NNNNN`) of each partition of the fault-filtered split, in list order."""
    folder = resources.files("genre_lab.data").joinpath("splits", "gtzan")
    out = {}
    for split, name in _FILTERED_LISTS.items():
        lines = folder.joinpath(name).read_text(encoding="utf-8").split()
        # Lines read `genre/genre.NNNNN.wav`; the id drops the folder and the extension.
        out[split] = [Path(line).stem for line in lines]
    return out


def gtzan_artists(folder: Path | None = None) -> dict[str, str]:
    """{clip id: artist} from `ARTISTS_FILE` in `folder` (default: the shipped `splits/gtzan/`);
    empty when there is no such file. Rows are `clip,artist`; a header row, blank rows and rows
    without both cells are ignored, as are ids that are not GTZAN clip names."""
    file = Path(folder) / ARTISTS_FILE if folder is not None else None
    source = file if file is not None else resources.files("genre_lab.data").joinpath("splits", "gtzan", ARTISTS_FILE)
    if not source.is_file():
        return {}
    out = {}
    for row in csv.reader(source.read_text(encoding="utf-8").splitlines()):
        cells = [c.strip() for c in row]
        if len(cells) >= 2 and cells[1] and _CLIP_ID.match(cells[0]):
            out[cells[0]] = cells[1]
    return out


def find_gtzan_root(root: Path) -> Path | None:
    """`root` itself or the folder up to two levels below it that holds the genre folders."""
    level1 = _subfolders(root)
    for folder in [root, *level1, *(q for p in level1 for q in _subfolders(p))]:
        if any((folder / genre).is_dir() for genre in GTZAN_GENRES):
            return folder
    return None


def _subfolders(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:  # an unreadable folder is just not where GTZAN is
        return []


def scan_gtzan(folder: Path) -> dict[str, Path]:
    """{clip id: file} for every `<genre>/<genre>.NNNNN.(wav|au)`; `.wav` wins if both exist.
    A dangling symbolic link or another entry that is not a file (a named pipe) is listed like
    a file (the screening reports it) unless the other format of that clip exists."""
    found: dict[str, Path] = {}
    for genre in GTZAN_GENRES:
        genre_dir = folder / genre
        if not genre_dir.is_dir():
            continue
        for path in sorted(genre_dir.iterdir()):
            match = _CLIP_NAME.match(path.name)
            if not match or match["genre"].lower() != genre or path.is_dir():
                continue
            clip_id = f"{genre}.{match['number']}"
            if clip_id not in found or _preferred(path, found[clip_id]):
                found[clip_id] = path
    return found


def _preferred(path: Path, other: Path) -> bool:
    """Whether `path` should stand for its clip instead of `other` (the clip's other format)."""
    if path.is_file() != other.is_file():
        return path.is_file()
    return path.suffix.lower() == ".wav"


class GTZANSource(FileSource):
    """GTZAN from a local copy; labels are indices into `GTZAN_GENRES`."""

    name = "gtzan"
    settings: ClassVar[tuple[str, ...]] = ("root", "split", *FileSource.settings)

    def __init__(
        self,
        root: str | Path | None,
        split: str = "filtered",
        **split_and_cache: Any,
    ) -> None:
        if split not in SPLIT_KINDS:
            raise ValueError(f"data.split must be one of {', '.join(SPLIT_KINDS)}, got {split!r}")
        self.root = root
        self.split = split
        #: Where `ARTISTS_FILE` is looked for (None: the shipped `splits/gtzan/`).
        self.artists_folder: Path | None = None
        super().__init__(**split_and_cache)  # fractions, seed, cache: see FileSource

    @property
    def classes(self) -> list[str]:
        return list(GTZAN_GENRES)

    def load(self, sample_rate: int, min_samples: int = 0) -> dict[str, AudioSplit]:
        root = existing_folder(self.root, "data.root", "the GTZAN folder")
        folder = find_gtzan_root(root)
        found = scan_gtzan(folder) if folder is not None else {}
        if not found:
            raise DataConfigError(
                f"data.root={root} holds no GTZAN files: expected <genre>/<genre>.NNNNN.wav "
                f"or .au (e.g. blues/blues.00000.wav) for the genres {', '.join(GTZAN_GENRES)}"
            )
        if folder != root:
            log.info("GTZAN genre folders found in %s", folder)
        label = {genre: i for i, genre in enumerate(GTZAN_GENRES)}
        artists = gtzan_artists(self.artists_folder)

        def labelled(clip_id: str) -> LabelledFile:
            return LabelledFile(found[clip_id], label[clip_id.split(".")[0]], clip_id, artist=artists.get(clip_id))

        if self.split == "random":
            files = [labelled(clip_id) for clip_id in sorted(found)]
            return self.usable_splits(files, sample_rate, min_samples, "GTZAN")
        listed = filtered_split()
        assignment = {split: [labelled(i) for i in ids if i in found] for split, ids in listed.items()}
        skipped = {
            split: [(f"{i.split('.')[0]}/{i}.wav", f"listed in the filtered split, not found under {folder} as .wav or .au")
                    for i in ids if i not in found]
            for split, ids in listed.items()
        }
        unused = len(set(found) - {i for ids in listed.values() for i in ids})
        if unused:
            log.info("GTZAN: %d clip(s) outside the filtered split are not used", unused)
        return self.usable_splits(assignment, sample_rate, min_samples, "GTZAN", skipped)

