"""Datasets (`conf/data/`): sources of labelled clips and the DataModule that chunks them."""

from .clips import SPLITS, AudioSplit, ClipSource
from .datamodule import GenreDataModule
from .folder import FolderSource
from .gtzan import GTZANSource
from .manifest import ManifestSource
from .sources import SyntheticSource

__all__ = [
    "SPLITS", "AudioSplit", "ClipSource", "FolderSource", "GTZANSource", "GenreDataModule",
    "ManifestSource", "SyntheticSource",
]
