"""One trial: sampled values -> Hydra overrides -> training config -> `fit_and_test`.

A trial trains through the same code as `python -m genre_lab.train`, logging into a child
run created beforehand (so even a trial that fails before training has one), and reports
the metric every validation epoch through Optuna's Lightning pruning callback. The trial's
value is the metric of the checkpointed epoch (best `val/loss`: the weights that are tested
and kept), as `fit_and_test` reports it, not that of the last epoch.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import optuna
from omegaconf import DictConfig, open_dict
from optuna.trial import TrialState
from optuna_integration import PyTorchLightningPruningCallback

from genre_lab.config import compose
from genre_lab.training.fit import fit_and_test
from genre_lab.sweep.mlflow_parent import RUN_ID_ATTR, SweepTracker, close_child
from genre_lab.sweep.space import Param
from genre_lab.sweep.study import WORKER_ATTR, worker_record

OVERRIDES_ATTR = "overrides"


#: `paths.output_dir` of a config saved to be re-run by `genre_lab.cli.train`: its own run folder.
RUN_DIR = "${hydra:runtime.output_dir}"


def compose_train_config(overrides: Sequence[str], output_dir: str | Path) -> DictConfig:
    """The training config of a trial: the sweep entry config with `overrides`, minus `sweep`."""
    cfg = compose(overrides, config_name="sweep", output_dir=output_dir)
    with open_dict(cfg):
        cfg.pop("sweep", None)
    return cfg


class TrialObjective:
    """Callable handed to `study.optimize`; returns `metric` of the checkpointed epoch."""

    def __init__(self, params: Sequence[Param], base_overrides: Sequence[str], metric: str,
                 tracker: SweepTracker, output_dir: Path, threads: int = 1) -> None:
        self.params = list(params)
        self.threads = threads
        self.base_overrides = list(base_overrides)
        self.metric = metric
        self.tracker = tracker
        self.output_dir = output_dir
        self.worker = worker_record()

    def __call__(self, trial: optuna.Trial) -> float:
        # First: a worker that dies from here on is recognised by its PID (`fail_dead_trials`).
        trial.set_user_attr(WORKER_ATTR, self.worker)
        values = {p.path: p.suggest(trial) for p in self.params}
        # Sampled values come last, so they win over the same setting given on the command line.
        overrides = [*self.base_overrides, *(p.override(values[p.path]) for p in self.params)]
        trial.set_user_attr(OVERRIDES_ATTR, overrides)
        run_id = self.tracker.start_child(trial.number, values, overrides)
        trial.set_user_attr(RUN_ID_ATTR, run_id)
        try:
            cfg = compose_train_config(overrides, self.output_dir / f"trial_{trial.number:04d}")
            with open_dict(cfg):
                cfg.logger.mlflow.run_id = run_id  # MLFlowLogger logs into the child run
                if self.threads > 1:
                    # Rich's live display is one per process: trials in threads run without bars.
                    cfg.trainer.enable_progress_bar = False
                    if cfg.get("callbacks") and "progress_bar" in cfg.callbacks:
                        cfg.callbacks.progress_bar = None
            pruning = PyTorchLightningPruningCallback(trial, monitor=self.metric)
            result = fit_and_test(cfg, callbacks=[pruning], tags={"trial_number": str(trial.number)},
                                  pruned=optuna.TrialPruned)
        except optuna.TrialPruned:
            raise
        except (KeyboardInterrupt, SystemExit) as err:
            # Lightning turns Ctrl-C (and SIGTERM) inside fit into SystemExit, which Optuna would
            # not catch, leaving the trial RUNNING; as KeyboardInterrupt it is failed and the
            # sweep stops, so a re-run resumes with only this trial lost.
            close_child(self.tracker.client, run_id, TrialState.FAIL.name, KeyboardInterrupt())
            raise KeyboardInterrupt(f"trial {trial.number} interrupted") from err
        except Exception as err:
            close_child(self.tracker.client, run_id, TrialState.FAIL.name, err)
            raise
        if self.metric not in result.metrics:
            raise KeyError(
                f"sweep.metric={self.metric!r} was never logged; logged metrics: {sorted(result.metrics)}"
            )
        return result.metrics[self.metric]
