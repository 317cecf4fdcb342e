"""Datasets (`conf/data/`): sources of labelled clips and the DataModule that chunks them.

The classes are imported on first use (PEP 562): the DataModule brings Lightning (~4 s), which
tagging, which only needs `genre_lab.data.files` to find audio, never uses.
"""

from __future__ import annotations

import importlib
from typing import Any

#: Public name -> the submodule defining it.
_HOMES = {
    "SPLITS": "clips", "AudioSplit": "clips", "ClipSource": "clips", "GenreDataModule": "datamodule",
    "FolderSource": "folder", "GTZANSource": "gtzan", "ManifestSource": "manifest", "SyntheticSource": "sources",
    "FMASource": "fma", "MTATSource": "mtat", "JamendoSource": "jamendo",
    "ShardSource": "shards", "ShardDataModule": "shards",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_HOMES[name]}", __name__), name)
