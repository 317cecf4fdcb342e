"""Audio listed in a CSV manifest: rows of `path,label[,split]`.

Paths are relative to the manifest's folder (absolute paths work too); an optional first row
`path,label[,split]` is a header. Classes are the sorted unique labels. With a third column,
every row names its split (`train`, `val`/`valid`/`validation`, `test`); without it, the split
is stratified and seeded like the folder dataset's, from the usable files only.

A malformed manifest is an error naming the file and line; a listed file that is missing or
does not decode is skipped and reported, like in every other dataset.

(The module is not called `csv.py` so that it never shadows the standard library's `csv`.)
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any, ClassVar

from .clips import SPLITS, AudioSplit
from .files import FileSource, LabelledFile

_SPLIT_NAMES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}


class ManifestSource(FileSource):
    name = "csv"
    settings: ClassVar[tuple[str, ...]] = ("manifest", *FileSource.settings)

    def __init__(
        self,
        manifest: str | Path | None,
        **split_and_cache: Any,
    ) -> None:
        self.manifest = manifest
        super().__init__(**split_and_cache)  # fractions, seed, cache: see FileSource
        self._rows: list[tuple[Path, str, str | None, str]] | None = None

    def rows(self) -> list[tuple[Path, str, str | None, str]]:
        """(absolute path, label, split or None, path as written) per row; read once."""
        if self._rows is None:
            self._rows = read_manifest(self.manifest)
        return self._rows

    @property
    def classes(self) -> list[str]:
        return sorted({label for _, label, _, _ in self.rows()})

    def load(self, sample_rate: int, min_samples: int = 0) -> dict[str, AudioSplit]:
        rows = self.rows()
        index = {label: i for i, label in enumerate(self.classes)}
        files = [LabelledFile(path, index[label], written) for path, label, _, written in rows]
        dataset = f"manifest {self.manifest}"
        if rows[0][2] is None:
            return self.usable_splits(files, sample_rate, min_samples, dataset)
        assignment = {s: [f for f, row in zip(files, rows) if row[2] == s] for s in SPLITS}
        return self.usable_splits(assignment, sample_rate, min_samples, dataset)


def read_manifest(manifest: str | Path | None) -> list[tuple[Path, str, str | None, str]]:
    """Parse and check a manifest; every problem is a ValueError naming `data.manifest` and the line."""
    if manifest is None or str(manifest).strip() == "":
        raise ValueError("data.manifest is not set: point it at a CSV of path,label[,split] rows")
    file = Path(manifest).expanduser().resolve()
    if not file.is_file():
        raise ValueError(f"data.manifest={file} does not exist or is not a file")
    where = f"data.manifest={file}"
    try:
        with file.open(newline="", encoding="utf-8-sig") as f:
            table = [(n, row) for n, row in enumerate(csv.reader(f), start=1) if any(c.strip() for c in row)]
    except (UnicodeDecodeError, csv.Error) as err:
        raise ValueError(f"{where} is not a readable CSV file: {err}") from err
    if table and [c.strip().lower() for c in table[0][1][:2]] == ["path", "label"]:
        table = table[1:]
    if not table:
        raise ValueError(f"{where} lists no files (expected rows of path,label[,split])")

    rows: list[tuple[Path, str, str | None, str]] = []
    seen: dict[Path, int] = {}
    with_split = len(table[0][1]) == 3
    for line, row in table:
        cells = [c.strip() for c in row]
        if len(cells) not in (2, 3) or not cells[0] or not cells[1]:
            raise ValueError(f"{where}, line {line}: expected path,label[,split], got {','.join(row)!r}")
        if (len(cells) == 3) != with_split:
            raise ValueError(f"{where}, line {line}: every row needs a split column, or none does")
        split = None
        if with_split:
            split = _SPLIT_NAMES.get(cells[2].lower())
            if split is None:
                raise ValueError(f"{where}, line {line}: unknown split {cells[2]!r} (use train, val or test)")
        path = Path(cells[0]).expanduser()
        # Normalised, not resolved: a listed symbolic link is reported under its own name.
        path = Path(os.path.normpath(path if path.is_absolute() else file.parent / path))
        if path in seen:
            raise ValueError(f"{where}, line {line}: {cells[0]} is already listed on line {seen[path]}")
        seen[path] = line
        rows.append((path, cells[1], split, cells[0]))
    return rows
