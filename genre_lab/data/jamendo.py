"""MTG-Jamendo (Bogdanov et al. 2019), from a local copy: multi-label tagging (`task=multilabel`).

`data.root` is the mtg-jamendo-dataset repository as cloned; its split files are read from
`data/splits/split-<data.split_index>/autotagging_<category>-{train,validation,test}.tsv`
(tab-separated, header `TRACK_ID ARTIST_ID ALBUM_ID PATH DURATION TAGS`, then one field per
tag such as `genre---rock`). `data.category`: `genre`, `mood` (the `moodtheme` files),
`instrument` or `top50` (the `top50tags` files). Classes are the tags as written
(`genre---rock`). The audio, downloaded with the repository's script, sits under
`data.audio_dir` at each row's PATH (`14/214.mp3`); the low-quality copy's `14/214.low.mp3`
is found too. The shipped splits keep each artist on one side.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Any, ClassVar

from genre_lab.data.clips import DataConfigError
from genre_lab.data.listed import MAX_TAGS_PER_CLIP, Listed, ListedSource, check_path, check_tag, metadata_file

#: data.category -> the name in the split files.
CATEGORIES = {"genre": "genre", "mood": "moodtheme", "instrument": "instrument", "top50": "top50tags"}
SPLIT_INDICES = range(5)
_FILES = {"train": "train", "val": "validation", "test": "test"}
_HEADER = ["TRACK_ID", "ARTIST_ID", "ALBUM_ID", "PATH", "DURATION", "TAGS"]
_TRACK = re.compile(r"^track_\d{1,12}$")
_ARTIST = re.compile(r"^artist_\d{1,12}$")
_TAG = re.compile(r"^[a-z/]+---\S")


class JamendoSource(ListedSource):
    name = "jamendo"
    settings: ClassVar[tuple[str, ...]] = ("category", "split_index", *ListedSource.settings)

    def __init__(self, root: str | Path | None, category: str = "genre", split_index: int = 0,
                 audio_dir: str | Path | None = None, **split_and_cache: Any) -> None:
        if category not in CATEGORIES:
            raise ValueError(f"data.category must be one of {', '.join(CATEGORIES)}, got {category!r}")
        if int(split_index) not in SPLIT_INDICES:
            raise ValueError(f"data.split_index must be 0 to 4 (the shipped splits), got {split_index}")
        self.category, self.split_index = category, int(split_index)
        self.listing = f"data/splits/split-{self.split_index}/autotagging_{CATEGORIES[category]}-*.tsv"
        super().__init__(root, audio_dir, **split_and_cache)

    def default_audio_folder(self, root: Path) -> Path:
        raise DataConfigError("data.audio_dir is not set: point it at the MTG-Jamendo audio "
                              "(the folder holding 00/ ... 99/, as the dataset's download script writes it)")

    def read_listed(self, root: Path) -> tuple[list[Listed], list[tuple[str, str]]]:
        clips: list[Listed] = []
        seen: dict[str, str] = {}
        for split, suffix in _FILES.items():
            relative = f"data/splits/split-{self.split_index}/autotagging_{CATEGORIES[self.category]}-{suffix}.tsv"
            file = metadata_file(root, relative, f"data.root={root} data.category={self.category} "
                                 f"data.split_index={self.split_index}", "the mtg-jamendo-dataset repository")
            for track, clip in self._read(file, split):
                if track in seen:
                    raise DataConfigError(f"{file}: {track} is listed in {seen[track]} too")
                seen[track] = relative
                clips.append(clip)
        return clips, []

    @staticmethod
    def _read(file: Path, split: str) -> list[tuple[str, Listed]]:
        try:
            with file.open(newline="", encoding="utf-8") as f:
                rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
        except (UnicodeDecodeError, csv.Error) as err:
            raise DataConfigError(f"{file} is not a readable tab-separated file: {err}") from err
        if not rows or [c.strip() for c in rows[0]] != _HEADER:
            raise DataConfigError(f"{file}: expected the header {' '.join(_HEADER)} (tab-separated)")
        out = []
        for line, row in enumerate(rows[1:], start=2):
            if not any(c.strip() for c in row):
                continue
            where = f"{file}, line {line}"
            cells = [c.strip() for c in row]
            if len(cells) < 6 or len(cells) > 5 + MAX_TAGS_PER_CLIP:
                raise DataConfigError(f"{where}: expected TRACK_ID, ARTIST_ID, ALBUM_ID, PATH, DURATION and "
                                      f"1 to {MAX_TAGS_PER_CLIP} tags, got {len(cells)} fields")
            track, artist, _, path, duration, *tags = cells
            if not _TRACK.match(track) or not _ARTIST.match(artist):
                raise DataConfigError(f"{where}: expected ids like track_0000214 and artist_000014, "
                                      f"got {track[:30]!r}, {artist[:30]!r}")
            try:
                float(duration)
            except ValueError:
                raise DataConfigError(f"{where}: DURATION must be seconds, got {duration[:30]!r}") from None
            path = check_path(path, where)
            tags = [check_tag(t, where) for t in tags if t]
            if not tags or not all(_TAG.match(t) for t in tags):
                raise DataConfigError(f"{where}: tags must look like genre---rock, got {'|'.join(tags)[:80]!r}")
            low = path[: -len(".mp3")] + ".low.mp3" if path.endswith(".mp3") else None
            out.append((track, Listed(split, path, tuple(dict.fromkeys(tags)), track, artist,
                                      (low,) if low else ())))
        return out
