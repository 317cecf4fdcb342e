"""A sweep worker, start to end: validate, open the study and its parent run, optimise,
then log plots and the best config. Re-running it resumes the study; several running it at
once share the study."""

from __future__ import annotations

import copy
import difflib
import logging
import re
import shlex
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import optuna
from omegaconf import DictConfig, OmegaConf, open_dict
from optuna.trial import FrozenTrial, TrialState

from genre_lab.config import compose
from genre_lab.tracking.liveness import sigterm_as_interrupt
from genre_lab.training.quiet import quiet_third_party
from genre_lab.training.resume.run_config import ResumeConfigError, check_overrides
from genre_lab.tracking.stores import store_lock
from genre_lab.tracking.mlflow_runs import experiment_id, open_client, redact_url
from genre_lab.sweep import study as studies
from genre_lab.sweep.mlflow_parent import SweepTracker, close_dead_child
from genre_lab.sweep.objective import RUN_DIR, TrialObjective, compose_train_config
from genre_lab.sweep.space import Param, SweepConfigError, parse_space, trial_values

log = logging.getLogger(__name__)

BEST_CONFIG_NAME = "best_config"
TRAIN_OVERRIDES_ATTR = "train_overrides"
#: What GenreClassifier logs at the end of every validation epoch, hence what the pruning
#: callback can see when it reports: the possible objectives (`sweep.metric`).
EPOCH_METRICS = ("val/loss", "val/chunk_acc", "val/chunk_f1", "val/track_acc", "val/track_f1")


class StoredTrialError(SweepConfigError):
    """A trial or study attribute read back from the Optuna storage that breaks the rules for
    configs from a store; the message names the study, the trial and the setting."""


@dataclass
class SweepResult:
    study_name: str
    storage: str
    parent_run_id: str
    counts: dict[str, int]
    wall_seconds: float
    best_value: float | None = None
    best_params: dict[str, Any] = field(default_factory=dict)
    best_trial: int | None = None
    best_config: Path | None = None
    skipped_plots: list[str] = field(default_factory=list)

    @property
    def rerun_command(self) -> str | None:
        if self.best_config is None:
            return None
        # Quoted: the folder is the user's setting, but a shell must read it as one word.
        folder = shlex.quote(str(self.best_config.parent))
        return f"python -m genre_lab.train --config-dir {folder} --config-name {BEST_CONFIG_NAME}"


def _is_sweep_setting(override: str) -> bool:
    """`sweep.*` settings and Hydra's own cannot change a trial's training config, so trials
    leave them out. `sweep=cnn` stays: the sweep option picks the model."""
    key = override.lstrip("+~").split("=", 1)[0]
    return key.startswith(("sweep.", "hydra.", "hydra/"))


def _check_settings(s: DictConfig) -> None:
    if not re.fullmatch(r"[\w.\-]+", str(s.study_name)):
        raise SweepConfigError(f"sweep.study_name={s.study_name!r}: use letters, digits, '.', '_' and '-'")
    if s.metric not in EPOCH_METRICS:
        close = difflib.get_close_matches(str(s.metric), EPOCH_METRICS, n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        raise SweepConfigError(f"sweep.metric={s.metric!r} is not logged every validation epoch; "
                               f"{hint}choose one of {', '.join(EPOCH_METRICS)}")
    if not isinstance(s.n_trials, int) or s.n_trials < 1:
        raise SweepConfigError(f"sweep.n_trials={s.n_trials!r}: must be a positive integer")
    if s.timeout is not None and not (isinstance(s.timeout, (int, float)) and s.timeout > 0):
        raise SweepConfigError(f"sweep.timeout={s.timeout!r}: must be null or a positive number of seconds")
    for key in ("n_jobs", "max_failures"):
        if not isinstance(s[key], int) or s[key] < 1:
            raise SweepConfigError(f"sweep.{key}={s[key]!r}: must be a positive integer")


def _check_enqueue(enqueue: list[dict[str, Any]], params: Sequence[Param]) -> None:
    known = {p.path for p in params}
    for i, fixed in enumerate(enqueue):
        if not isinstance(fixed, dict) or set(fixed) - known:
            raise SweepConfigError(
                f"sweep.enqueue[{i}]={fixed!r}: give a mapping of searched settings to values; "
                f"searched settings: {sorted(known)}"
            )


def best_overrides(trial: FrozenTrial, study: optuna.Study, params: Sequence[Param]) -> list[str]:
    """The overrides that re-create `trial`'s training config, from what the study may be
    trusted with once checked: its recorded training overrides (the same rule as `resume=`:
    shipped group options only, no interpolation, no `_target_` or `_` keys) and the trial's
    params, each within `sweep.space`. The trial's free-form `overrides` attribute is never
    used: anyone who can write to the storage can add a trial with any attributes."""
    where = f"study {study.study_name} trial {trial.number}"
    base = study.user_attrs.get(TRAIN_OVERRIDES_ATTR, [])
    try:
        base = check_overrides(base, f"study {study.study_name} attribute {TRAIN_OVERRIDES_ATTR}")
    except ResumeConfigError as err:
        raise StoredTrialError(str(err)) from err
    values = trial_values(params, trial.params, where)
    # Sampled values last, as in the trial itself (`TrialObjective`), so they win.
    return [*base, *(p.override(values[p.path]) for p in params)]


def best_config_yaml(trial: FrozenTrial, study: optuna.Study, params: Sequence[Param]) -> str:
    """The best trial's complete training config (every group and sampled value filled in),
    runnable by `python -m genre_lab.train --config-dir DIR --config-name best_config`.
    Rebuilt by `best_overrides` from checked parts only. Interpolations of the shipped
    configs, such as the MLflow URI, stay, so it re-runs on any machine."""
    overrides = best_overrides(trial, study, params)
    cfg = compose_train_config(overrides, RUN_DIR)
    with open_dict(cfg):
        cfg.hydra = {"run": {"dir": f"outputs/runs/${{now:%Y-%m-%d_%H-%M-%S}}_{study.study_name}-best"},
                     "job": {"chdir": False}}
    values = {p.path: trial.params[p.path] for p in params}
    header = (
        f"# Best trial {trial.number} of sweep {study.study_name}: {float(trial.value)!r}\n"
        f"# Params: {values}\n"
        f"# Re-run: python -m genre_lab.train --config-dir <this folder> --config-name {BEST_CONFIG_NAME}\n"
    )
    return header + OmegaConf.to_yaml(cfg)


def run_sweep(overrides: Sequence[str] = (), output_dir: str | Path | None = None,
              cfg: DictConfig | None = None) -> SweepResult:
    """Run one sweep worker. `overrides` are the command line (`sweep=crnn data=... sweep.n_trials=4`);
    `cfg` is their composition when the caller already has it (`@hydra.main`)."""
    started = time.monotonic()
    quiet_third_party()  # before the stores open: MLflow's INFO lines; each trial's Lightning noise
    overrides = list(overrides)
    if cfg is None:
        cfg = compose(overrides, config_name="sweep", output_dir=output_dir)
    out = Path(output_dir or cfg.paths.output_dir)
    s = cfg.sweep
    _check_settings(s)

    # Everything that can be wrong is found here, before a study or run exists.
    train_cfg = copy.deepcopy(cfg)
    with open_dict(train_cfg):
        train_cfg.pop("sweep")
    params = parse_space(s.space, train_cfg)
    metric, direction = str(s.metric), str(s.direction)
    enqueue = OmegaConf.to_container(s.enqueue, resolve=True) or []
    _check_enqueue(enqueue, params)
    pruner = studies.make_pruner(OmegaConf.to_container(s.pruner, resolve=True))
    sampler_spec = OmegaConf.to_container(s.sampler, resolve=True)
    studies.make_sampler(sampler_spec)
    train_overrides = [o for o in overrides if not _is_sweep_setting(o)]

    mlflow_cfg = cfg.logger.mlflow
    tracking_uri = str(mlflow_cfg.tracking_uri)
    # One worker at a time opens the stores, which may not exist yet, and the parent run.
    with store_lock(tracking_uri, str(s.storage)):
        client = open_client(tracking_uri)
        storage = studies.make_storage(
            str(s.storage), s.heartbeat_seconds,
            on_stale=partial(close_dead_child, client),
        )
        study = studies.open_study(str(s.study_name), storage, direction, pruner)
        _record_overrides(study, train_overrides)
        on_dead = partial(close_dead_child, client)
        # Before counting the budget: a trial of a worker killed just now must not count.
        studies.fail_dead_trials(study, storage, on_dead)
        for fixed in enqueue:
            study.enqueue_trial(fixed, skip_if_exists=True)
        tracker = SweepTracker.open(
            client, experiment_id(str(mlflow_cfg.experiment_name), tracking_uri),
            str(s.study_name),
            {"metric": metric, "direction": direction, "storage": redact_url(str(s.storage)),
             "sampler": sampler_spec["type"], "pruner": pruner.__class__.__name__, "n_trials": s.n_trials},
        )
        study.set_user_attr("mlflow_parent_run_id", tracker.parent_run_id)
        study.sampler = studies.make_sampler(sampler_spec, studies.worker_seed_offset(study, int(s.worker_id)))
    settings = OmegaConf.to_container(s, resolve=True)
    settings["storage"] = redact_url(str(s.storage))
    tracker.log_settings_file(OmegaConf.to_yaml(OmegaConf.create(settings)))

    objective = TrialObjective(params, train_overrides, metric, tracker, out, threads=s.n_jobs)
    remaining = s.n_trials - studies.budget_used(study)
    if remaining <= 0:
        log.warning("study %s already has %d of sweep.n_trials=%d trials; raise sweep.n_trials to add more",
                    s.study_name, studies.budget_used(study), s.n_trials)
    error: BaseException | None = None
    try:
        if remaining > 0:
            with sigterm_as_interrupt():
                study.optimize(
                    objective, timeout=s.timeout, n_jobs=s.n_jobs,
                    catch=(Exception,),  # a failing trial is recorded FAIL and the sweep goes on
                    callbacks=[tracker.on_trial_end,
                               studies.StopAtBudget(s.n_trials, storage, on_dead),
                               studies.StopAfterFailures(s.max_failures)],
                    gc_after_trial=True,
                )
    except BaseException as err:
        error = err
        raise
    finally:
        result = _finish(study, tracker, s, storage_url=str(s.storage), error=error, started=started, params=params)
    return result


def _record_overrides(study: optuna.Study, train_overrides: list[str]) -> None:
    """The first worker records the training overrides; a later one with others is warned
    that its trials would not be comparable with the study's."""
    recorded = study.user_attrs.get(TRAIN_OVERRIDES_ATTR)
    if recorded is None:
        study.set_user_attr(TRAIN_OVERRIDES_ATTR, train_overrides)
    elif sorted(recorded) != sorted(train_overrides):
        log.warning("study %s was started with training overrides %s, this worker has %s",
                    study.study_name, recorded, train_overrides)


def _finish(study: optuna.Study, tracker: SweepTracker, s: DictConfig, storage_url: str,
            error: BaseException | None, started: float, params: Sequence[Param] = ()) -> SweepResult:
    """Plots and best config into the parent run, which is then closed whatever happens:
    FINISHED, or FAILED/KILLED with `error`, the exception that stopped the optimisation. A
    failure here is raised after a clean run, and only logged after `error`, so as not to
    replace the error the user needs to see (the caller re-raises that one)."""
    result = SweepResult(
        study_name=study.study_name, storage=redact_url(storage_url),
        parent_run_id=tracker.parent_run_id, counts={}, wall_seconds=0.0,
    )
    closing_error = error
    try:
        result.counts = studies.state_counts(study)
        if error is None or isinstance(error, KeyboardInterrupt):
            # Plots and the best config also on Ctrl-C: they cover every trial finished so far.
            _log_summary(study, tracker, s, result, params)
    except Exception as err:
        if error is None:
            closing_error = err
            raise
        log.exception("could not log the end of sweep %s after %s", study.study_name, type(error).__name__)
    finally:
        tracker.close(closing_error)
    result.wall_seconds = time.monotonic() - started
    return result


def _log_summary(study: optuna.Study, tracker: SweepTracker, s: DictConfig, result: SweepResult,
                 params: Sequence[Param]) -> None:
    result.skipped_plots = tracker.log_study(study)
    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return
    best = study.best_trial
    path = Path(s.best_config_dir) / f"{BEST_CONFIG_NAME}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = best_config_yaml(best, study, params)
    result.best_value, result.best_params, result.best_trial = best.value, best.params, best.number
    path.write_text(text)
    tracker.log_best_config(text)
    result.best_config = path
