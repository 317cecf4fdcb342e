"""`genre_lab.training.quiet`: third-party noise is silenced by name; genre_lab's own warnings,
other libraries' real warnings and the user's own choices are not."""

from __future__ import annotations

import os
import subprocess
import sys

from genre_lab.config import PROJECT_ROOT

SCRIPT = """
import logging, os, warnings
from genre_lab.training.quiet import quiet_third_party
quiet_third_party()
def warn(message, category, module):
    warnings.warn_explicit(message, category, module.replace(".", "/") + ".py", 1, module=module)
warn("torch-deprecated", FutureWarning, "torch.utils._pytree")
warn("lightning-deprecated", DeprecationWarning, "lightning.pytorch.utilities._pytree")
warn("The number of training batches (7) is smaller than the logging interval Trainer(log_every_n_steps=10).",
     UserWarning, "lightning.pytorch.loops.fit_loop")
warn("lightning-user-warning", UserWarning, "lightning.pytorch.trainer.connectors.data_connector")
warn("genre_lab-future", FutureWarning, "genre_lab.data.folder")
logging.basicConfig(format="%(name)s %(message)s")
logging.getLogger("lightning.pytorch.utilities.rank_zero").info("GPU available: False, used: False")
logging.getLogger("lightning.fabric.utilities.seed").info("Seed set to 42")
logging.getLogger("mlflow.pyfunc").info("Validating input example against model signature")
logging.getLogger("lightning.pytorch.utilities.rank_zero").warning("lightning-logged-warning")
logging.getLogger("genre_lab.data.datamodule").warning("genre_lab-logged-warning")
print(os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"], os.environ["MLFLOW_LOGGING_LEVEL"],
      logging.getLevelName(logging.getLogger("mlflow").level))
"""


def _run(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", SCRIPT], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True,
                          timeout=120)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHONWARNINGS", "MLFLOW_"))}
    return {**env, **extra}


def test_third_party_noise_is_silenced_and_real_warnings_are_kept() -> None:
    proc = _run(_env())
    assert proc.returncode == 0, proc.stderr
    for noise in ("torch-deprecated", "lightning-deprecated", "logging interval", "GPU available", "Seed set",
                  "Validating input example"):
        assert noise not in proc.stderr, (noise, proc.stderr)
    for kept in ("lightning-user-warning", "genre_lab-future", "lightning-logged-warning", "genre_lab-logged-warning"):
        assert kept in proc.stderr, (kept, proc.stderr)
    assert proc.stdout.split() == ["false", "WARNING", "WARNING"]


def test_the_users_own_settings_win() -> None:
    """`PYTHONWARNINGS` leaves the warning filters to the user; MLflow settings in the
    environment are kept."""
    proc = _run(_env(PYTHONWARNINGS="default", MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="true",
                     MLFLOW_LOGGING_LEVEL="INFO"))
    assert proc.returncode == 0, proc.stderr
    assert "torch-deprecated" in proc.stderr and "logging interval" in proc.stderr
    assert proc.stdout.split() == ["true", "INFO", "NOTSET"]  # MLflow applies INFO itself when imported
