"""Datasets (`conf/data/`): sources of labelled clips and the DataModule that chunks them."""

from .clips import SPLITS, AudioSplit, ClipSource
from .datamodule import GenreDataModule
from .sources import SyntheticSource

__all__ = ["SPLITS", "AudioSplit", "ClipSource", "GenreDataModule", "SyntheticSource"]
