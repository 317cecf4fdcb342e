"""Quiet third-party output: what Lightning, torch and MLflow print on every run but that tells a
genre_lab user nothing they can act on.

Silenced at the source, each by name, so nothing else is hidden:

- Lightning's info lines (`GPU available: ...`, `TPU available: ...`, the litlogger and
  litmodels tips, `Restoring states from the checkpoint ...`, `Trainer.fit stopped ...`): the
  `rank_zero` loggers of Lightning and Fabric go to WARNING, so their warnings still show.
- `Seed set to 42`: Fabric's seed logger goes to WARNING (training also seeds with
  `verbose=False`).
- Deprecation warnings (`DeprecationWarning`, `FutureWarning`) attributed to torch,
  Lightning, torchmetrics, MLflow, Optuna, Hydra or pydantic code (torch's `LeafSpec`
  deprecation, raised inside Lightning's `_pytree`): the libraries' business, not the user's.
  Those raised in genre_lab's own code still show.
- Lightning's hint that an epoch has fewer batches than `log_every_n_steps`: genre_lab logs
  every training metric per epoch (`on_step=False`), so the interval changes nothing.
- MLflow's INFO lines (`Creating initial MLflow database tables`, `Validating input example
  against model signature`) and its `Downloading artifacts` progress bars: `MLFLOW_LOGGING_LEVEL`
  and `MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR` (MLflow's own settings; set either in the
  environment and it is kept).

Warnings are left alone when the user chose filters (`python -W ...` or `PYTHONWARNINGS`).
Logging by genre_lab's own loggers (skipped files, replaced settings) is untouched.
Only the standard library is imported: the commands call this before or after loading torch.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings

#: Loggers whose INFO lines are the library talking about itself.
QUIET_LOGGERS = (
    "lightning.pytorch.utilities.rank_zero",
    "lightning.fabric.utilities.rank_zero",
    "lightning.fabric.utilities.seed",
    "lightning.pytorch.accelerators.cuda",  # `LOCAL_RANK: 0 - CUDA_VISIBLE_DEVICES: [0]`
)
#: Modules whose deprecation warnings are silenced (a regex on the warning's module).
THIRD_PARTY = r"(torch|lightning|lightning_fabric|pytorch_lightning|torchmetrics|torchaudio|mlflow|optuna" \
              r"|optuna_integration|hydra|omegaconf|pydantic|sqlalchemy|alembic)(\.|$)"
#: MLflow's environment settings -> their quiet values (kept when the user set them).
MLFLOW_ENV = {"MLFLOW_LOGGING_LEVEL": "WARNING", "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}


def quiet_third_party() -> None:
    """Silence the third-party output listed in the module docstring. Calling it again changes
    nothing (`warnings.filterwarnings` replaces an identical filter)."""
    user_mlflow_level = "MLFLOW_LOGGING_LEVEL" in os.environ
    for key, value in MLFLOW_ENV.items():
        os.environ.setdefault(key, value)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    if not user_mlflow_level:
        # MLflow reads MLFLOW_LOGGING_LEVEL when imported; it may have been imported already.
        logging.getLogger("mlflow").setLevel(logging.WARNING)
    if sys.warnoptions:  # -W or PYTHONWARNINGS: the user's filters decide
        return
    for category in (DeprecationWarning, FutureWarning):
        warnings.filterwarnings("ignore", category=category, module=THIRD_PARTY)
    warnings.filterwarnings("ignore", message=r"The number of training batches \(\d+\) is smaller than the logging "
                                              r"interval")
