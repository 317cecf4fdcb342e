"""Your own audio, one subfolder per genre: `data.root/<genre>/**/<any audio file>`.

Classes are the subfolder names (sorted) that hold at least one audio file; any mix of the
formats in `genre_lab.audio.AUDIO_EXTENSIONS` works, nested folders inside a genre included.
The train/val/test split is stratified and seeded (`data.split_seed`), so it stays the same
across runs that vary the training seed.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ..audio import AUDIO_EXTENSIONS
from .clips import AudioSplit
from .scan import FileSource, LabelledFile, existing_folder, find_audio

log = logging.getLogger(__name__)


class FolderSource(FileSource):
    name = "folder"

    def __init__(
        self,
        root: str | Path | None,
        **split_and_cache: Any,
    ) -> None:
        self.root = root
        super().__init__(**split_and_cache)  # fractions, seed, cache: see FileSource
        self._files: dict[str, list[Path]] | None = None

    def scan(self) -> dict[str, list[Path]]:
        """{class name: audio files}, sorted; read once from disk."""
        if self._files is None:
            root = existing_folder(self.root, "data.root", "a folder with one subfolder per genre")
            genres = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
            files = {g.name: find_audio(g) for g in genres}
            empty = [name for name, found in files.items() if not found]
            if empty:
                log.warning("data.root=%s: ignoring subfolder(s) without audio files: %s", root, ", ".join(empty))
            files = {name: found for name, found in files.items() if found}
            if not files:
                raise ValueError(
                    f"data.root={root} holds no audio in genre subfolders: expected "
                    f"<genre>/<file> with one of {', '.join(AUDIO_EXTENSIONS)}"
                )
            loose = [p.name for p in root.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS]
            if loose:
                log.warning("data.root=%s: ignoring %d audio file(s) outside genre subfolders", root, len(loose))
            self._files = files
        return self._files

    @property
    def classes(self) -> list[str]:
        return sorted(self.scan())

    def load(self, sample_rate: int) -> dict[str, AudioSplit]:
        files = self.scan()
        root = existing_folder(self.root, "data.root", "a folder with one subfolder per genre")
        labelled = [
            LabelledFile(path, label, path.relative_to(root).as_posix())
            for label, genre in enumerate(sorted(files))
            for path in files[genre]
        ]
        assignment = self.stratify(labelled)
        return self.decode(assignment, sample_rate, f"folder dataset {root}")

