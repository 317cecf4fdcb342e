"""MLflow bookkeeping of a sweep: one parent run per study, one nested child run per trial.

The parent is found again by its tags (`sweep_study=<name>`, `sweep_role=parent`) so a
resumed sweep, or a second worker, logs into the same parent. It records the best value and
parameters as they improve and, when a worker ends, Optuna's plots, a table of all trials,
the parameter importances (`importance/<setting>` metrics) and the best trial's config.
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from dataclasses import dataclass
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: sweeps run headless
import matplotlib.pyplot as plt
import optuna
from mlflow import MlflowClient
from mlflow.entities import Metric, ViewType
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID
from optuna.trial import FrozenTrial, TrialState

from genre_lab.tracking import mlflow_runs as tracking
from genre_lab.tracking.run_kinds import ROLE_TAG, STATE_TAG, STUDY_TAG
from genre_lab.reporting.plots import freeze_plain_text, plain_text

log = logging.getLogger(__name__)

RUN_ID_ATTR = "mlflow_run_id"  # Optuna trial user attr linking back to the child run

_PLOTS = {
    "plots/optimization_history.png": optuna.visualization.matplotlib.plot_optimization_history,
    "plots/param_importances.png": optuna.visualization.matplotlib.plot_param_importances,
    "plots/parallel_coordinate.png": optuna.visualization.matplotlib.plot_parallel_coordinate,
}


def close_child(client: MlflowClient, run_id: str, state: str, error: BaseException | None = None) -> None:
    """Tag the child with its Optuna state; terminate it if training did not get to."""
    client.set_tag(run_id, STATE_TAG, state)
    if client.get_run(run_id).info.status == "RUNNING":
        tracking.close_run(client, run_id, error)


def close_dead_child(client: MlflowClient, study: optuna.Study, trial: FrozenTrial, reason: str = "no heartbeat") -> None:
    """For trials failed because their worker died (`kill -9`, power loss): FAILED, with
    `error` saying how the death was seen. `partial(close_dead_child, client)` is both Optuna's
    stale-trial callback and `study.fail_dead_trials`'s."""
    run_id = trial.user_attrs.get(RUN_ID_ATTR)
    if run_id:
        close_child(client, run_id, TrialState.FAIL.name, RuntimeError(f"worker died ({reason})"))


def param_importances(study: optuna.Study, seed: int = 0) -> dict[str, float]:
    """fANOVA importance of each searched setting for the study's objective (Optuna's default
    evaluator, with a fixed seed: its random forest otherwise gives other values on every
    call), most important first. Needs finished trials whose settings differ."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "experimental" notices
        return dict(optuna.importance.get_param_importances(
            study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=seed)))


@dataclass
class SweepTracker:
    client: MlflowClient
    experiment_id: str
    study_name: str
    parent_run_id: str

    # -- parent ------------------------------------------------------------------------------
    @classmethod
    def open(cls, client: MlflowClient, experiment: str, study_name: str, settings: dict[str, Any]) -> SweepTracker:
        """Reuse the study's parent run, or create it. When two workers start together each
        may create one; both then keep the oldest and the other is deleted."""
        filter_string = f"tags.{STUDY_TAG} = '{study_name}' and tags.{ROLE_TAG} = 'parent'"

        def parents() -> list:
            runs = client.search_runs([experiment], filter_string, ViewType.ACTIVE_ONLY, max_results=50)
            return sorted(runs, key=lambda r: (r.info.start_time, r.info.run_id))

        found = parents()
        if found:
            run_id = found[0].info.run_id
            client.update_run(run_id, status="RUNNING")
        else:
            mine = client.create_run(
                experiment, run_name=f"sweep-{study_name}",
                tags={STUDY_TAG: study_name, ROLE_TAG: "parent"},
            ).info.run_id
            run_id = parents()[0].info.run_id
            if run_id != mine:
                client.delete_run(mine)
        tracker = cls(client, experiment, study_name, run_id)
        for key, value in settings.items():
            client.set_tag(run_id, f"sweep.{key}", str(value))
        return tracker

    def log_settings_file(self, yaml_text: str) -> None:
        self.client.log_text(self.parent_run_id, yaml_text, "sweep/settings.yaml")

    # -- children ----------------------------------------------------------------------------
    def start_child(self, trial_number: int, params: dict[str, Any], overrides: list[str]) -> str:
        tags = {
            MLFLOW_PARENT_RUN_ID: self.parent_run_id,
            STUDY_TAG: self.study_name,
            ROLE_TAG: "trial",
            "trial_number": str(trial_number),
            STATE_TAG: TrialState.RUNNING.name,
            "sweep_params": json.dumps(params, sort_keys=True),
            "overrides": " ".join(overrides)[:5000],
        }
        run = self.client.create_run(self.experiment_id, run_name=f"{self.study_name}-trial-{trial_number}", tags=tags)
        return run.info.run_id

    def on_trial_end(self, study: optuna.Study, trial: FrozenTrial) -> None:
        """Optuna study callback: the child's final state, and the parent's running best."""
        run_id = trial.user_attrs.get(RUN_ID_ATTR)
        if run_id:
            close_child(self.client, run_id, trial.state.name)
        step = trial.number
        counts = {s: 0 for s in ("COMPLETE", "PRUNED", "FAIL")}
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)):
            counts[t.state.name] += 1
        for state, n in counts.items():
            self.client.log_metric(self.parent_run_id, f"trials/{state.lower()}", n, step=step)
        if trial.state == TrialState.COMPLETE and study.best_trial.number == trial.number:
            self._log_best(trial)

    def _log_best(self, trial: FrozenTrial) -> None:
        assert trial.value is not None
        self.client.log_metric(self.parent_run_id, "best_value", trial.value, step=trial.number)
        self.client.set_tag(self.parent_run_id, "best_trial", str(trial.number))
        self.client.set_tag(self.parent_run_id, "best_run_id", trial.user_attrs.get(RUN_ID_ATTR, ""))
        for path, value in trial.params.items():
            self.client.set_tag(self.parent_run_id, f"best.{path}", str(value))
        tracking.log_json(self.client, self.parent_run_id,
                          {"trial": trial.number, "value": trial.value, "params": trial.params}, "best_params.json")

    # -- end of a worker ---------------------------------------------------------------------
    def log_study(self, study: optuna.Study) -> list[str]:
        """Plots and a CSV of every trial; returns the plots that could not be drawn, with why
        (importance needs two finished trials that differ, for instance)."""
        skipped: list[str] = []
        trials = study.trials_dataframe()
        if len(trials):
            self.client.log_text(self.parent_run_id, trials.to_csv(index=False), "trials.csv")
        for name, plot in _PLOTS.items():
            try:
                with warnings.catch_warnings(), plain_text():  # parameter names are plain text
                    warnings.simplefilter("ignore")  # "experimental" and empty-study notices
                    ax = plot(study)
                fig = freeze_plain_text(ax.figure)
                if not ax.has_data():
                    raise ValueError("no finished trial to plot")
                fig.set_size_inches(9, 5.5)
                fig.tight_layout()
                self.client.log_figure(self.parent_run_id, fig, name)
            except (ValueError, RuntimeError, ZeroDivisionError) as err:
                skipped.append(f"{name}: {err}")
                log.warning("skipped %s: %s", name, err)
            finally:
                plt.close("all")
        try:
            importances = param_importances(study)
        except (ValueError, RuntimeError) as err:
            skipped.append(f"importance: {err}")
            log.warning("no parameter importances: %s", err)
        else:
            self.client.log_batch(self.parent_run_id, metrics=[
                Metric(f"importance/{name}", value, int(time.time() * 1000), len(study.trials))
                for name, value in importances.items()])
            tracking.log_json(self.client, self.parent_run_id, importances, "param_importances.json")
        self.client.set_tag(self.parent_run_id, "plots_skipped", "; ".join(skipped)[:5000] or "none")
        return skipped

    def log_best_config(self, yaml_text: str) -> None:
        self.client.log_text(self.parent_run_id, yaml_text, "best_config.yaml")

    def close(self, error: BaseException | None) -> None:
        tracking.close_run(self.client, self.parent_run_id, error)
