"""Your own audio, one subfolder per genre: `data.root/<genre>/**/<any audio file>`.

Classes are the subfolder names (sorted) that hold at least one audio file; any mix of the
formats in `genre_lab.audio.decode.AUDIO_EXTENSIONS` works, nested folders inside a genre included.
The train/val/test split is stratified and seeded (`data.split_seed`), so it stays the same
across runs that vary the training seed; it is made from the usable files only. Audio files
outside the genre subfolders have no label: they are reported, not used.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, ClassVar

from genre_lab.audio.decode import AUDIO_EXTENSIONS
from genre_lab.data.clips import AudioSplit, DataConfigError
from genre_lab.data.files import FileSource, LabelledFile, existing_folder, find_audio, readable_id

log = logging.getLogger(__name__)


class FolderSource(FileSource):
    name = "folder"
    settings: ClassVar[tuple[str, ...]] = ("root", *FileSource.settings)

    def __init__(
        self,
        root: str | Path | None,
        **split_and_cache: Any,
    ) -> None:
        self.root = root
        super().__init__(**split_and_cache)  # fractions, seed, cache: see FileSource
        self._files: dict[str, list[Path]] | None = None
        self._loose: list[Path] = []

    def scan(self) -> dict[str, list[Path]]:
        """{class name: audio files}, sorted; read once from disk."""
        if self._files is None:
            root = existing_folder(self.root, "data.root", "a folder with one subfolder per genre")
            genres = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
            files = {g.name: find_audio(g, dangling_links=True) for g in genres}
            empty = [name for name, found in files.items() if not found]
            if empty:
                log.warning("data.root=%s: ignoring subfolder(s) without audio files: %s", root, ", ".join(empty))
            files = {name: found for name, found in files.items() if found}
            if not files:
                raise DataConfigError(
                    f"data.root={root} holds no audio in genre subfolders: expected "
                    f"<genre>/<file> with one of {', '.join(AUDIO_EXTENSIONS)}"
                )
            self._loose = sorted(p for p in root.iterdir() if (p.is_file() or p.is_symlink()) and p.suffix.lower() in AUDIO_EXTENSIONS)
            self._files = files
        return self._files

    @property
    def classes(self) -> list[str]:
        return sorted(self.scan())

    def load(self, sample_rate: int, min_samples: int = 0) -> dict[str, AudioSplit]:
        files = self.scan()
        root = existing_folder(self.root, "data.root", "a folder with one subfolder per genre")
        labelled = [
            LabelledFile(path, label, readable_id(path.relative_to(root).as_posix()))
            for label, genre in enumerate(sorted(files))
            for path in files[genre]
        ]
        loose = [(str(p), "outside the genre subfolders of data.root: no label") for p in self._loose]
        return self.usable_splits(labelled, sample_rate, min_samples, f"folder dataset {root}", unassigned=loose)

