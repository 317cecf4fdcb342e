"""Optuna hyperparameter sweeps of the training config, tracked as nested MLflow runs.

`python -m genre_lab.sweep sweep=crnn [training overrides] [sweep.* settings]`; see
`conf/sweep.yaml` and `conf/sweep/` for the settings and `run_sweep` for the steps.
"""

from genre_lab.sweep.runner import SweepResult, run_sweep
from genre_lab.sweep.space import Param, SearchSpaceError, SweepConfigError, parse_space

__all__ = ["Param", "SearchSpaceError", "SweepConfigError", "SweepResult", "parse_space", "run_sweep"]
