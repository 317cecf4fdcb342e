"""Where the configs live, and the OmegaConf resolvers they use.

Entry points compose `conf/` by absolute path, so they work from any working directory.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

import hydra
from hydra import initialize_config_dir
from omegaconf import DictConfig, OmegaConf

PROJECT_ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = PROJECT_ROOT / "conf"

# `${project_root:}` lets configs default stores (mlflow.db, optuna.db) to the project folder
# whatever the working directory, while `MLFLOW_TRACKING_URI` and overrides still win.
if not OmegaConf.has_resolver("project_root"):
    OmegaConf.register_new_resolver("project_root", lambda: str(PROJECT_ROOT))


def compose(overrides: Sequence[str] = (), config_name: str = "train", output_dir: str | Path | None = None) -> DictConfig:
    """Compose `conf/<config_name>.yaml` with overrides outside `@hydra.main` (sweeps, tests,
    notebooks). There is no Hydra run directory here, so `paths.output_dir` is set explicitly."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = hydra.compose(config_name=config_name, overrides=list(overrides))
    if "paths" in cfg:
        cfg.paths.output_dir = str(output_dir or tempfile.mkdtemp(prefix="genre_lab_"))
    return cfg
