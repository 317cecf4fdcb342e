"""FMA, the Free Music Archive dataset (Defferrard et al. 2017), from a local copy.

Expected under `data.root` (as distributed): `fma_metadata/tracks.csv` (two header rows,
read with pandas `index_col=0, header=[0, 1]`), `fma_metadata/genres.csv` for
`data.labels=genres_all`, and the audio of the chosen size in `fma_<subset>/`
(`data.audio_dir` overrides it) as `<first 3 digits>/<6-digit zero-padded id>.mp3`.

- `data.subset`: `small` (8 balanced genres, 8000 tracks), `medium`, `large`, or `full`;
  subsets nest (a track of `small` is in `medium` and `large`; `full` is every track), and
  `('set', 'subset')` names the smallest one holding a track.
- The split is always the official one, `('set', 'split')`: training / validation / test.
- `data.labels=genre_top`: one label per track, `('track', 'genre_top')`; tracks without one
  are left out and reported as unassigned. `genres_all`: every genre of the track
  (`('track', 'genres_all')`, a list of genre ids resolved to titles through genres.csv),
  multi-label: train with `task=multilabel`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, ClassVar

from genre_lab.data.clips import DataConfigError
from genre_lab.data.listed import Listed, ListedSource, check_tag, metadata_file

log = logging.getLogger(__name__)

SUBSETS = ("small", "medium", "large", "full")
LABELS = ("genre_top", "genres_all")
_SPLITS = {"training": "train", "validation": "val", "test": "test"}
#: The longest `genres_all` cell parsed (a list of a few hundred ids at most).
_MAX_LIST_CHARS = 4096


class FMASource(ListedSource):
    name = "fma"
    settings: ClassVar[tuple[str, ...]] = ("subset", "labels", *ListedSource.settings)
    listing = "fma_metadata/tracks.csv"

    def __init__(self, root: str | Path | None, subset: str = "small", labels: str = "genre_top",
                 audio_dir: str | Path | None = None, **split_and_cache: Any) -> None:
        if subset not in SUBSETS:
            raise ValueError(f"data.subset must be one of {', '.join(SUBSETS)}, got {subset!r}")
        if labels not in LABELS:
            raise ValueError(f"data.labels must be one of {', '.join(LABELS)}, got {labels!r}")
        self.subset, self.labels = subset, labels
        super().__init__(root, audio_dir, **split_and_cache)

    def default_audio_folder(self, root: Path) -> Path:
        return root / f"fma_{self.subset}"

    def read_listed(self, root: Path) -> tuple[list[Listed], list[tuple[str, str]]]:
        import pandas as pd

        file = metadata_file(root, self.listing, f"data.root={root}", "the FMA metadata, fma_metadata.zip")
        titles = self._genre_titles(root) if self.labels == "genres_all" else {}
        try:
            tracks = pd.read_csv(file, index_col=0, header=[0, 1], low_memory=False)
        except (ValueError, IndexError, UnicodeDecodeError, pd.errors.ParserError) as err:
            raise DataConfigError(f"{file} is not FMA's tracks.csv (two header rows): {err}") from err
        label_column = ("track", self.labels)
        for column in (("set", "split"), ("set", "subset"), label_column):
            if column not in tracks.columns:
                raise DataConfigError(f"{file} has no column {column} (is it FMA's tracks.csv?)")
        artists = tracks[("artist", "id")] if ("artist", "id") in tracks.columns else None
        wanted = set(SUBSETS[: SUBSETS.index(self.subset) + 1]) if self.subset != "full" else None
        clips, left_out = [], []
        for row, (track_id, split, subset, label) in enumerate(zip(
                tracks.index, tracks[("set", "split")], tracks[("set", "subset")], tracks[label_column])):
            where = f"{file}, track {str(track_id)[:20]!r}"
            try:
                number = int(track_id)
            except (TypeError, ValueError):
                raise DataConfigError(f"{where}: a track id must be a whole number") from None
            if not 0 <= number <= 999_999 or str(track_id).strip() != str(number):
                raise DataConfigError(f"{where}: a track id must be a whole number from 0 to 999999")
            if wanted is not None and subset not in wanted:
                if not isinstance(subset, str) or subset not in SUBSETS:
                    raise DataConfigError(f"{where}: unknown subset {str(subset)[:40]!r} (expected small, medium or large)")
                continue
            if split not in _SPLITS:
                raise DataConfigError(f"{where}: unknown split {str(split)[:40]!r} (expected training, validation or test)")
            padded = f"{number:06d}"
            path = f"{padded[:3]}/{padded}.mp3"
            if self.labels == "genre_top":
                tags = () if pd.isna(label) else (check_tag(label, where),)
            else:
                tags = self._genres(label, titles, where)
            if not tags:
                left_out.append((path, f"no {self.labels} in tracks.csv"))
                continue
            group = None
            if artists is not None and not pd.isna(artists.iloc[row]):
                group = check_tag(artists.iloc[row], where)
            clips.append(Listed(_SPLITS[split], path, tags, padded, group))
        if not clips:
            raise DataConfigError(f"{file} lists no track of subset {self.subset} with {self.labels} (data.subset, data.labels)")
        return clips, left_out

    def _genre_titles(self, root: Path) -> dict[int, str]:
        """{genre id: title} from genres.csv (columns genre_id, #tracks, parent, title, top_level)."""
        import pandas as pd

        file = metadata_file(root, "fma_metadata/genres.csv", f"data.root={root} data.labels=genres_all",
                             "FMA's genre list, needed to name genres_all")
        try:
            genres = pd.read_csv(file, dtype={"title": str})
        except (ValueError, IndexError, UnicodeDecodeError, pd.errors.ParserError) as err:
            raise DataConfigError(f"{file} is not FMA's genres.csv: {err}") from err
        if not {"genre_id", "title"} <= set(genres.columns):
            raise DataConfigError(f"{file} needs the columns genre_id and title (is it FMA's genres.csv?)")
        titles: dict[int, str] = {}
        for genre_id, title in zip(genres["genre_id"], genres["title"]):
            where = f"{file}, genre {str(genre_id)[:20]!r}"
            try:
                number = int(genre_id)
                whole = float(genre_id) == number
            except (TypeError, ValueError, OverflowError):
                whole = False
            if not whole:
                raise DataConfigError(f"{where}: genre_id must be a whole number")
            titles[number] = check_tag(title, where)
        doubled = [t for t in set(titles.values()) if list(titles.values()).count(t) > 1]
        if doubled:
            raise DataConfigError(f"{file}: genre title {sorted(doubled)[0]!r} names more than one genre_id")
        return titles

    @staticmethod
    def _genres(cell: Any, titles: dict[int, str], where: str) -> tuple[str, ...]:
        """The titles of a `genres_all` cell such as `[21, 76]` (parsed as JSON, never evaluated)."""
        if not isinstance(cell, str):
            return ()
        if len(cell) > _MAX_LIST_CHARS:
            raise DataConfigError(f"{where}: genres_all is longer than {_MAX_LIST_CHARS} characters")
        try:
            ids = json.loads(cell)
        except ValueError:
            ids = None
        if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
            raise DataConfigError(f"{where}: genres_all must be a list of genre ids like [21, 76], got {cell[:60]!r}")
        unknown = [i for i in ids if i not in titles]
        if unknown:
            raise DataConfigError(f"{where}: genre id {unknown[0]} is not in fma_metadata/genres.csv")
        return tuple(dict.fromkeys(titles[i] for i in ids))
