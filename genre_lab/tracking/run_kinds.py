"""What kind of run an MLflow run is, read from the tags the package sets.

One experiment holds several kinds of run: training runs (no `run_type` tag), sweep parents
(`sweep_role=parent`, one per Optuna study) and their trials (`sweep_role=trial`, nested under
the parent with `mlflow.parentRunId`, their Optuna state in `trial_state`), and the runs
`run_type` names: `evaluation`, `ensemble`, `report` and `audit` (a dataset's audit). The report counts only training runs
unless asked, and the run table shows a sweep parent as a sweep, not as a training run that
never beat; both read the kind here. Tags are untrusted text: an unknown `run_type` is its own
kind (never a training run), and nothing is looked up by it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

#: Tags a sweep writes (`genre_lab.sweep.mlflow_parent`): the study, parent or trial, Optuna's state.
STUDY_TAG = "sweep_study"
ROLE_TAG = "sweep_role"
STATE_TAG = "trial_state"
#: Tag of evaluation, ensemble and report runs (training runs have none).
RUN_TYPE_TAG = "run_type"

TRAINING = "training"
SWEEP = "sweep"
SWEEP_TRIAL = "sweep-trial"
EVALUATION = "evaluation"
ENSEMBLE = "ensemble"
REPORT = "report"
AUDIT = "audit"


def run_kind(tags: Mapping[str, str], parent_tags: Callable[[str], Mapping[str, str] | None] | None = None) -> str:
    """`training`, `sweep` (a sweep's parent run), `sweep-trial`, or the run's `run_type`
    (`evaluation`, `ensemble`, `report`, or whatever else a store holds). A run nested under a
    sweep parent (`mlflow.parentRunId`) is a trial even without trial tags; `parent_tags` looks
    the parent's tags up by run id (None: not found), when given."""
    if tags.get(ROLE_TAG) == "parent" or tags.get(RUN_TYPE_TAG) == SWEEP:
        return SWEEP
    if tags.get(ROLE_TAG) == "trial":
        return SWEEP_TRIAL
    parent = tags.get(MLFLOW_PARENT_RUN_ID)
    if parent and parent_tags is not None:
        found = parent_tags(parent)
        if found is not None and run_kind(found) == SWEEP:
            return SWEEP_TRIAL
    return tags.get(RUN_TYPE_TAG) or TRAINING
