"""The served model the serving tests share: an untrained CNN (answering requests, the limits,
the content rule and the finite check do not depend on training) and its pyfunc folder."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from genre_lab.config import compose
from genre_lab.data.synthetic import GENRES
from genre_lab.models.mlflow_model import save_tagger_model
from genre_lab.training.lightning_module import GenreClassifier
from tests.conftest import TINY


@pytest.fixture(scope="module")
def untrained(tmp_path_factory: pytest.TempPathFactory) -> GenreClassifier:
    """An untrained CNN: the limits, the content rule and the finite check do not depend on training."""
    root = tmp_path_factory.mktemp("untrained")
    cfg = compose([*TINY, "model=cnn", f"paths.root_dir={root}"], output_dir=root / "out")
    torch.manual_seed(0)
    return GenreClassifier.from_config(cfg, list(GENRES))


@pytest.fixture(scope="module")
def model_folder(untrained: GenreClassifier, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The untrained CNN saved as the served model folder."""
    return save_tagger_model(tmp_path_factory.mktemp("pyfunc") / "model", untrained)
