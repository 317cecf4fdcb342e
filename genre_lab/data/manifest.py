"""Audio listed in a CSV manifest: rows of `path,label[,split]`.

Paths are relative to the manifest's folder (absolute paths work too); an optional first row
`path,label[,split]` is a header. Classes are the sorted unique labels. With a third column,
every row names its split (`train`, `val`/`valid`/`validation`, `test`); without it, the split
is stratified and seeded like the folder dataset's, from the usable files only.

A multi-label dataset (`task=multilabel`, MagnaTagATune / MTG-Jamendo style) lists every tag
of a file in its label cell, separated by `;` (`clips/a.wav,rock;guitar;male vocal`). Classes
are then the sorted unique tags; the first tag listed stratifies the split.

With a header row naming its columns, a manifest may carry more columns (in any order):
`path,label,artist` with `data.group_column=artist` keeps each artist's files on one side of
every split (the seeded split and `data.folds` cross-validation, see `stratify.py`). An
`artist` column, when there is one, names each file's artist (`AudioSplit.artists`: `genre-lab
audit` reports an artist found in two splits).

A malformed manifest is an error naming the file and line; a listed file that is missing or
does not decode is skipped and reported, like in every other dataset.

(The module is not called `csv.py` so that it never shadows the standard library's `csv`.)
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any, ClassVar

from genre_lab.data.clips import SPLITS, AudioSplit, DataConfigError
from genre_lab.data.files import FileSource, LabelledFile

_SPLIT_NAMES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
#: Separates the tags of a multi-label row's label cell.
TAG_SEPARATOR = ";"


def split_tags(label: str) -> tuple[str, ...]:
    """The tags of a label cell, in the order written, without blanks or repeats."""
    return tuple(dict.fromkeys(t.strip() for t in label.split(TAG_SEPARATOR) if t.strip()))


class ManifestSource(FileSource):
    name = "csv"
    settings: ClassVar[tuple[str, ...]] = ("manifest", "group_column", *FileSource.settings)

    def __init__(
        self,
        manifest: str | Path | None,
        group_column: str | None = None,
        **split_and_cache: Any,
    ) -> None:
        self.manifest = manifest
        self.group_column = group_column or None
        super().__init__(**split_and_cache)  # fractions, seed, folds, cache: see FileSource
        self._rows: list[tuple[Path, str, str | None, str, str | None]] | None = None
        #: {listed path: artist} from the manifest's `artist` column (empty without one).
        self.artists: dict[Path, str] = {}

    def rows(self) -> list[tuple[Path, str, str | None, str, str | None]]:
        """(absolute path, label, split or None, path as written, group or None) per row; read once."""
        if self._rows is None:
            self._rows = read_manifest(self.manifest, self.group_column, self.artists)
        return self._rows

    @property
    def classes(self) -> list[str]:
        return sorted({tag for _, label, _, _, _ in self.rows() for tag in split_tags(label)})

    def load(self, sample_rate: int, min_samples: int = 0) -> dict[str, AudioSplit]:
        rows = self.rows()
        index = {label: i for i, label in enumerate(self.classes)}
        files = []
        for path, label, _, written, group in rows:
            tags = [index[t] for t in split_tags(label)]
            files.append(LabelledFile(path, tags[0], written, tuple(sorted(tags)) if len(tags) > 1 else (), group,
                                      self.artists.get(path)))
        dataset = f"manifest {self.manifest}"
        if rows[0][2] is None:
            return self.usable_splits(files, sample_rate, min_samples, dataset)
        assignment = {s: [f for f, row in zip(files, rows) if row[2] == s] for s in SPLITS}
        return self.usable_splits(assignment, sample_rate, min_samples, dataset)


def read_manifest(
    manifest: str | Path | None, group_column: str | None = None, artists: dict[Path, str] | None = None,
) -> list[tuple[Path, str, str | None, str, str | None]]:
    """Parse and check a manifest; every problem is a DataConfigError naming `data.manifest` and the line.
    `artists`, when given, is filled with {path: artist} from a header's `artist` column (its
    non-empty cells)."""
    if manifest is None or str(manifest).strip() == "":
        raise DataConfigError("data.manifest is not set: point it at a CSV of path,label[,split] rows")
    file = Path(manifest).expanduser().resolve()
    if not file.is_file():
        raise DataConfigError(f"data.manifest={file} does not exist or is not a file")
    where = f"data.manifest={file}"
    try:
        with file.open(newline="", encoding="utf-8-sig") as f:
            table = [(n, row) for n, row in enumerate(csv.reader(f), start=1) if any(c.strip() for c in row)]
    except (UnicodeDecodeError, csv.Error) as err:
        raise DataConfigError(f"{where} is not a readable CSV file: {err}") from err
    header: list[str] | None = None
    if table and {"path", "label"} <= {c.strip().lower() for c in table[0][1]}:
        header, table = [c.strip().lower() for c in table[0][1]], table[1:]
    if group_column and (header is None or group_column.strip().lower() not in header):
        raise DataConfigError(f"data.group_column={group_column!r} is not a column of {where} "
                         f"(its header: {','.join(header) if header else 'none; name the columns in a first row'})")
    if not table:
        raise DataConfigError(f"{where} lists no files (expected rows of path,label[,split])")

    rows: list[tuple[Path, str, str | None, str, str | None]] = []
    seen: dict[Path, int] = {}
    with_split = "split" in header if header else len(table[0][1]) == 3
    for line, row in table:
        cells = [c.strip() for c in row]
        group = None
        if header is not None:  # named columns: pick path, label[, split] (and the group) by name
            if len(cells) != len(header):
                raise DataConfigError(f"{where}, line {line}: expected the {len(header)} columns of the header "
                                 f"({','.join(header)}), got {','.join(row)!r}")
            named = dict(zip(header, cells))
            cells = [named["path"], named["label"], *([named["split"]] if with_split else [])]
            if group_column:
                group = named[group_column.strip().lower()]
                if not group:
                    raise DataConfigError(f"{where}, line {line}: empty {group_column} (data.group_column)")
        if len(cells) not in (2, 3) or not cells[0] or not split_tags(cells[1]):
            raise DataConfigError(f"{where}, line {line}: expected path,label[,split], got {','.join(row)!r}")
        if (len(cells) == 3) != with_split:
            raise DataConfigError(f"{where}, line {line}: every row needs a split column, or none does")
        split = None
        if with_split:
            split = _SPLIT_NAMES.get(cells[2].lower())
            if split is None:
                raise DataConfigError(f"{where}, line {line}: unknown split {cells[2]!r} (use train, val or test)")
        path = Path(cells[0]).expanduser()
        # Normalised, not resolved: a listed symbolic link is reported under its own name.
        path = Path(os.path.normpath(path if path.is_absolute() else file.parent / path))
        if path in seen:
            raise DataConfigError(f"{where}, line {line}: {cells[0]} is already listed on line {seen[path]}")
        seen[path] = line
        if artists is not None and header is not None and named.get("artist"):
            artists[path] = named["artist"]
        rows.append((path, cells[1], split, cells[0], group))
    return rows
