"""Where the configs live, and the OmegaConf resolvers they use.

Entry points compose `conf/` by absolute path, so they work from any working directory.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

PROJECT_ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = PROJECT_ROOT / "conf"

# `${project_root:}` lets configs default stores (mlflow.db, optuna.db) to the project folder
# whatever the working directory, while `MLFLOW_TRACKING_URI` and overrides still win.
if not OmegaConf.has_resolver("project_root"):
    OmegaConf.register_new_resolver("project_root", lambda: str(PROJECT_ROOT))
