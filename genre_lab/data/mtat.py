"""MagnaTagATune (Law et al. 2009), from a local copy: multi-label tagging (`task=multilabel`).

Expected under `data.root`: `annotations_final.csv` (tab-separated despite its name, quoted
header: `clip_id`, 188 tag columns of 0/1, `mp3_path` last, e.g.
`f/american_bach_soloists-j_s__bach_solo_cantatas-01-bwv54__i_aria-30-59.mp3`) and the
unpacked mp3 folders `0/` ... `f/` (or under `data.audio_dir`).

Classes: the `data.top_tags` (default 50) most frequent tag columns, counted over the whole
file, ties broken by column order. Clips with none of them are left out and reported.

Split: the classic 12:1:3 split by the first hex digit of the mp3 folder (`0`-`b` train, `c`
validation, `d`-`f` test), from Dieleman & Schrauwen (2014) and used by many tagging papers
since (e.g. Won et al. 2020) so that results compare.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Any, ClassVar

from genre_lab.data.clips import DataConfigError
from genre_lab.data.listed import Listed, ListedSource, check_path, check_tag, metadata_file

ANNOTATIONS = "annotations_final.csv"
#: The mp3 folder's first hex digit -> split (Dieleman & Schrauwen 2014).
FOLDER_SPLITS = {**{d: "train" for d in "0123456789ab"}, "c": "val", **{d: "test" for d in "def"}}
_MP3_PATH = re.compile(r"^[0-9a-f]/[^/]+\.mp3$")
#: More columns than MTAT's 190 are refused (a crafted file must not make us hold a huge table).
_MAX_COLUMNS = 2000


class MTATSource(ListedSource):
    name = "mtat"
    settings: ClassVar[tuple[str, ...]] = ("top_tags", *ListedSource.settings)
    listing = ANNOTATIONS

    def __init__(self, root: str | Path | None, top_tags: int = 50, audio_dir: str | Path | None = None,
                 **split_and_cache: Any) -> None:
        if int(top_tags) < 1:
            raise ValueError(f"data.top_tags must be a positive number of tags, got {top_tags}")
        self.top_tags = int(top_tags)
        super().__init__(root, audio_dir, **split_and_cache)

    def default_audio_folder(self, root: Path) -> Path:
        return root

    def read_listed(self, root: Path) -> tuple[list[Listed], list[tuple[str, str]]]:
        file = metadata_file(root, ANNOTATIONS, f"data.root={root}", "MagnaTagATune's tag annotations")
        try:
            with file.open(newline="", encoding="utf-8") as f:
                rows = list(csv.reader(f, delimiter="\t"))
        except (UnicodeDecodeError, csv.Error) as err:
            raise DataConfigError(f"{file} is not a readable tab-separated file: {err}") from err
        rows = [r for r in rows if any(c.strip() for c in r)]
        if not rows:
            raise DataConfigError(f"{file} is empty")
        header = [c.strip() for c in rows[0]]
        if len(header) < 3 or header[0] != "clip_id" or header[-1] != "mp3_path" or len(header) > _MAX_COLUMNS:
            raise DataConfigError(f"{file}: expected a tab-separated header clip_id, <tags>, mp3_path "
                                  f"(MagnaTagATune's annotations_final.csv), got {'|'.join(header[:3])[:80]!r}...")
        tags = [check_tag(t, f"{file}, header") for t in header[1:-1]]
        twice = sorted({t for t in tags if tags.count(t) > 1})
        if twice:  # a class name twice would give a clip the same class index twice
            raise DataConfigError(f"{file}: tag column(s) {', '.join(twice)[:200]} appear more than once in the header")
        table = []
        for line, row in enumerate(rows[1:], start=2):
            where = f"{file}, line {line}"
            if len(row) != len(header):
                raise DataConfigError(f"{where}: {len(row)} fields, the header has {len(header)}")
            path = check_path(row[-1], where)
            if not _MP3_PATH.match(path):
                raise DataConfigError(f"{where}: mp3_path must look like f/<name>.mp3, got {path[:80]!r}")
            values = [c.strip() for c in row[1:-1]]
            bad = next((i for i, v in enumerate(values) if v not in ("0", "1")), None)
            if bad is not None:
                raise DataConfigError(f"{where}: tag {tags[bad]!r} must be 0 or 1, got {values[bad][:20]!r}")
            table.append((path, [t for t, v in zip(tags, values) if v == "1"]))
        counts = {t: 0 for t in tags}
        for _, on in table:
            for t in on:
                counts[t] += 1
        # Most frequent first; Python's sort is stable, so equal counts keep the column order.
        top = set(sorted(tags, key=lambda t: -counts[t])[: self.top_tags])
        clips, left_out = [], []
        for path, on in table:
            kept = tuple(t for t in on if t in top)
            if kept:
                clips.append(Listed(FOLDER_SPLITS[path[0]], path, kept, path))
            else:
                left_out.append((path, f"none of the top {self.top_tags} tags"))
        return clips, left_out
