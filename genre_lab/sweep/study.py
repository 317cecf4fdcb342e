"""The Optuna side of a sweep: storage, sampler, pruner, and the study they share.

Storage: an RDB URL (`sqlite:///...optuna.db` by default, `postgresql://...` or
`mysql://...` for workers on several machines), or a path ending in `.log` for Optuna's
journal file. Workers on the same storage and study name share one study; trials are created
in the storage, so no two workers run the same trial and none is lost.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from genre_lab.tracking.liveness import ProcessRecord
from genre_lab.sweep.space import SweepConfigError

log = logging.getLogger(__name__)

#: States that use up the study's trial budget (`sweep.n_trials`). Failed trials do not: a
#: crashed or interrupted trial is replaced by a new one. RUNNING ones do, so that parallel
#: workers stop at the budget instead of each starting one more trial; a RUNNING trial whose
#: worker is dead is failed first (`fail_dead_trials`), so it gives its place back.
BUDGET_STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
#: Trial user attr: where the trial runs, {"host", "pid", "started"} (see `worker_record`).
WORKER_ATTR = "worker"

#: Called with a trial this worker failed because its worker died, and why.
OnDead = Callable[[optuna.Study, FrozenTrial, str], None]

_PRUNERS: dict[str, Callable[..., optuna.pruners.BasePruner]] = {
    "median": optuna.pruners.MedianPruner,
    "hyperband": optuna.pruners.HyperbandPruner,
    "none": optuna.pruners.NopPruner,
}
_SAMPLERS: dict[str, Callable[..., optuna.samplers.BaseSampler]] = {
    "tpe": optuna.samplers.TPESampler,
    "random": optuna.samplers.RandomSampler,
}


def _from_registry(what: str, registry: Mapping[str, Callable[..., Any]], spec: Mapping[str, Any], **extra: Any) -> Any:
    """`{type: name, <name>: {kwargs}}` -> registry[name](**kwargs): settings of the other
    types may stay in the YAML, so switching is one override (`sweep.pruner.type=hyperband`)."""
    kind = spec.get("type")
    if kind not in registry:
        raise SweepConfigError(f"sweep.{what}.type={kind!r} is not one of {sorted(registry)}")
    kwargs = dict(spec.get(kind) or {})
    try:
        return registry[kind](**kwargs, **extra)
    except TypeError as err:
        raise SweepConfigError(f"sweep.{what}.{kind}: {err}") from err


def make_pruner(spec: Mapping[str, Any]) -> optuna.pruners.BasePruner:
    return _from_registry("pruner", _PRUNERS, spec)


def make_sampler(spec: Mapping[str, Any], seed_offset: int = 0) -> optuna.samplers.BaseSampler:
    """A seeded sampler. `seed_offset` keeps resumed and parallel workers from replaying the
    same random start-up draws as the first worker (see `worker_seed_offset`)."""
    seed = spec.get("seed")
    return _from_registry("sampler", _SAMPLERS, spec, seed=None if seed is None else int(seed) + seed_offset)


def worker_seed_offset(study: optuna.Study, worker_id: int) -> int:
    """Distinct for each worker id and for each resume (trials already in the study), yet
    reproducible: one worker from an empty study always draws the same trials."""
    return 1_000_003 * worker_id + len(study.get_trials(deepcopy=False))


def make_storage(url: str, heartbeat_seconds: int | None = None,
                 on_stale: Callable[[optuna.Study, FrozenTrial], None] | None = None) -> optuna.storages.BaseStorage:
    """RDB storage (with a heartbeat, so trials of a killed worker are failed rather than left
    RUNNING forever), or a journal file for a path ending in `.log`."""
    if url.endswith(".log") and "://" not in url:
        path = Path(url).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        backend = optuna.storages.journal.JournalFileBackend(str(path))
        return optuna.storages.journal.JournalStorage(backend)
    if "://" not in url:
        raise SweepConfigError(
            f"sweep.storage={url!r}: expected a database URL (sqlite:///path/optuna.db, "
            "postgresql://user@host/db) or a journal file path ending in .log"
        )
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite:"):
        db = url.split(":///", 1)[-1]
        if db and db != ":memory:":
            Path(db).expanduser().parent.mkdir(parents=True, exist_ok=True)
        # Workers on one sqlite file take turns at its write lock; wait instead of failing.
        engine_kwargs["connect_args"] = {"timeout": 60}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(
            url,
            engine_kwargs=engine_kwargs,
            heartbeat_interval=heartbeat_seconds,
            grace_period=None if heartbeat_seconds is None else 3 * heartbeat_seconds,
            heartbeat_stale_trial_callback=on_stale if heartbeat_seconds else None,
        )


def open_study(name: str, storage: optuna.storages.BaseStorage, direction: str,
               pruner: optuna.pruners.BasePruner) -> optuna.Study:
    """Create the study, or load it when it exists (resume, or another worker made it first)."""
    if direction not in ("maximize", "minimize"):
        raise SweepConfigError(f"sweep.direction={direction!r}: use maximize or minimize")
    study = optuna.create_study(study_name=name, storage=storage, direction=direction,
                                pruner=pruner, load_if_exists=True)
    if study.direction.name.lower() != direction:
        raise SweepConfigError(
            f"study {name!r} in this storage was made to {study.direction.name.lower()} its "
            f"metric, but sweep.direction={direction}; pick another sweep.study_name"
        )
    return study


def budget_used(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=BUDGET_STATES))


def state_counts(study: optuna.Study) -> dict[str, int]:
    counts = {state.name: 0 for state in TrialState}
    for trial in study.get_trials(deepcopy=False):
        counts[trial.state.name] += 1
    return counts


def worker_record() -> dict[str, Any]:
    """This process, as recorded on each of its trials (`genre_lab.tracking.liveness.ProcessRecord`):
    host name, PID namespace, PID and the PID's start time."""
    return dataclasses.asdict(ProcessRecord.current())


def _parse_worker_record(record: Any) -> ProcessRecord | None:
    """A trial's WORKER_ATTR as a ProcessRecord; None when malformed (user attrs are data from
    a shared storage)."""
    if not isinstance(record, dict):
        return None
    host, pidns, pid, started = (record.get(key) for key in ("host", "pidns", "pid", "started"))
    if not isinstance(host, str) or not (pidns is None or isinstance(pidns, str)):
        return None
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return None
    if not isinstance(started, (int, float)) or isinstance(started, bool):
        return None
    return ProcessRecord(host, pidns, pid, float(started))


def worker_gone(record: Any) -> bool:
    """Whether `record` (a trial's WORKER_ATTR) names a process of this host (and PID namespace)
    that has ended, by the rule of `ProcessRecord.gone`. False for another host's or container's
    worker (only its heartbeat tells) and for a malformed record."""
    process = _parse_worker_record(record)
    return process is not None and process.is_local() and process.gone()


def fail_dead_trials(study: optuna.Study, storage: optuna.storages.BaseStorage,
                     on_dead: OnDead | None = None) -> list[int]:
    """Fail the RUNNING trials of dead workers, so that they stop using up the budget and are
    replaced; returns the numbers of trials failed meanwhile (by this call, or by another
    worker at the same moment). `storage` is the one the study was opened on. Two rules, the
    first that applies:

    - heartbeat (RDB storages with `heartbeat_seconds`): no heartbeat for the grace period,
      3 heartbeats. Optuna's rule; the only one that sees a worker on another machine die.
      The storage's stale-trial callback closes the trial's MLflow run.
    - PID record: the trial's worker ran on this host and its process is gone. This needs no
      waiting, so a worker re-run right after `kill -9` (or a preempted job restarted on the
      same host) gets the dead trial's budget back at once, instead of counting it as running
      and closing the study one trial short. `on_dead` is called for these.

    Optuna runs its heartbeat rule before each trial too; this adds the PID rule at start-up and
    after each trial (`StopAtBudget`), and works for the journal storage, which has no heartbeat.
    """
    def failed_now() -> set[int]:
        return {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))}

    before = failed_now()
    if isinstance(storage, optuna.storages.RDBStorage) and storage.heartbeat_interval:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        record = trial.user_attrs.get(WORKER_ATTR)
        if not worker_gone(record):
            continue
        # As Optuna's own stale-trial rule does: the storage refuses a trial already finished.
        try:
            if not storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL):
                continue
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another worker finished or failed it first
        log.warning("trial %d failed: its worker (process %s on %s) is gone",
                    trial.number, record["pid"], record["host"])
        if on_dead is not None:
            on_dead(study, storage.get_trial(trial._trial_id),
                    f"worker process {record['pid']} on {record['host']} is gone")
    return sorted(failed_now() - before)


class StopAtBudget:
    """Study callback: stop this worker once the study has `n_trials` trials that count
    (BUDGET_STATES), after failing dead workers' trials, which then do not count. Optuna's
    MaxTrialsCallback would count a killed worker's trial as running until a heartbeat check
    happens to fail it, and close the study one trial short."""

    def __init__(self, n_trials: int, storage: optuna.storages.BaseStorage, on_dead: OnDead | None = None) -> None:
        self.n_trials = n_trials
        self.storage = storage
        self.on_dead = on_dead

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        fail_dead_trials(study, self.storage, self.on_dead)
        if budget_used(study) >= self.n_trials:
            study.stop()


class StopAfterFailures:
    """Study callback: stop this worker after `limit` failed trials in a row. Failures do not
    use up the budget, so a setting that breaks every trial would otherwise loop forever."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.streak = 0
        self._lock = threading.Lock()  # trials of `sweep.n_jobs` threads end concurrently

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        with self._lock:
            self.streak = self.streak + 1 if trial.state == TrialState.FAIL else 0
            if self.streak >= self.limit:
                log.error("stopping: the last %d trials failed (sweep.max_failures=%d)", self.streak, self.limit)
                study.stop()
