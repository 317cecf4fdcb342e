"""Optuna sweeps on tiny synthetic data: real Optuna sqlite storages, real MLflow stores read
back with MlflowClient, real worker processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from mlflow import MlflowClient
from omegaconf import OmegaConf
from optuna.trial import TrialState

from genre_lab.tracking import mlflow_runs as tracking
from genre_lab.config import CONF_DIR, PROJECT_ROOT
from genre_lab.sweep import SearchSpaceError, SweepConfigError, parse_space, run_sweep
from genre_lab.sweep.space import format_value
from tests.conftest import TINY

#: Trials of a few seconds: fewer clips and chunks than TINY, three epochs, no extras.
QUICK = [
    *(o for o in TINY if not o.startswith(("trainer.max_epochs", "data.source.clips_per_class",
                                          "data.train_chunks_per_clip", "throughput_seconds"))),
    "data.source.clips_per_class={train: 8, val: 3, test: 2}",
    "data.train_chunks_per_clip=2",
    "trainer.max_epochs=3",
    "throughput_seconds=0",
]

#: A reasonable trial, and the same with a learning rate too small to move the weights: its
#: validation loss stays at chance level (ln 10) while the first one's drops, so the median
#: pruner stops it at its first report whatever the sampler does.
GOOD = {"model.optimizer.lr": 0.003, "model.optimizer.weight_decay": 1e-4, "model.backbone.hidden": 64,
        "model.backbone.dropout": 0.0, "features.augment.freq_mask": 0, "data.batch_size": 16}
FROZEN = {**GOOD, "model.optimizer.lr": 1e-6}
#: Outside the searched range on purpose: GRU dropout must be in [0, 1], so this trial raises.
BROKEN = {"model.backbone.dropout": 1.5}


def _mapping(values: dict) -> str:
    return "{" + ", ".join(f"{k}: {format_value(v)}" for k, v in values.items()) + "}"


def _sweep_overrides(root: Path, n_trials: int, enqueue: list[dict]) -> list[str]:
    return [
        *QUICK, f"paths.root_dir={root}", "sweep=crnn", f"sweep.n_trials={n_trials}",
        # Loss rather than accuracy: continuous, so "worse than the median" never ties.
        "sweep.metric=val/loss", "sweep.direction=minimize",
        "sweep.pruner.type=median", "sweep.pruner.median={n_startup_trials: 1, n_warmup_steps: 0}",
        f"sweep.enqueue=[{', '.join(map(_mapping, enqueue))}]",
    ]


def _runs(client: MlflowClient, **tags: str) -> list:
    exp = client.get_experiment_by_name("genre_lab")
    query = " and ".join(f"tags.{k} = '{v}'" for k, v in tags.items())
    return client.search_runs([exp.experiment_id], query, order_by=["attributes.start_time ASC"])


def _trials(storage: str, study_name: str) -> list:
    """The study's trials; none before a worker has created it. Under the store lock, as the
    workers open it: a read while one creates the tables would race it."""
    from genre_lab.tracking.stores import store_lock

    with store_lock(storage):
        try:
            return optuna.load_study(study_name=study_name, storage=storage).get_trials()
        except KeyError:
            return []


def _artifacts(client: MlflowClient, run_id: str, path: str = "") -> set[str]:
    out: set[str] = set()
    for item in client.list_artifacts(run_id, path):
        out |= _artifacts(client, run_id, item.path) if item.is_dir else {item.path}
    return out


# -- search space --------------------------------------------------------------------------------
@pytest.mark.parametrize(("space", "message"), [
    ({"model": {"optimizer": {"lrr": {"type": "float", "low": 1e-4, "high": 1e-2}}}},
     r"no setting `model.optimizer.lrr` \(did you mean model.optimizer.lr"),
    ({"model": {"backbone": {"type": "float", "low": 0, "high": 1}}}, "`model.backbone` is a group of settings"),
    ({"model": {"optimizer": {"lr": {"type": "float", "low": 0.0, "high": 0.1, "log": True}}}}, "log-scale range needs `low` > 0"),
    ({"model": {"optimizer": {"lr": {"type": "float", "low": 0.1, "high": 0.01}}}}, r"`low` \(0.1\) is greater than `high`"),
    ({"model": {"optimizer": {"lr": {"type": "uniform", "low": 0.1, "high": 0.2}}}}, "unknown type 'uniform'"),
    ({"model": {"optimizer": {"lr": {"low": 0.1, "high": 0.2}}}}, "missing `type`"),
    ({"model": {"optimizer": {"lr": 0.1}}}, "expected a mapping with `type`"),
    ({"model": {"backbone": {"hidden": {"type": "categorical", "choices": []}}}}, "`choices` must be a non-empty list"),
    ({"model": {"backbone": {"layers": {"type": "int", "low": 1, "high": 3, "q": 1}}}}, r"unknown key\(s\) \['q'\]"),
    ({"model": {"backbone": {"layers": {"type": "int", "low": 1.5, "high": 3}}}}, "`low` must be an integer"),
])
def test_malformed_space_is_a_clear_error(space: dict, message: str, tmp_path: Path) -> None:
    from genre_lab.config import compose

    train_cfg = compose([f"paths.root_dir={tmp_path}"], output_dir=tmp_path)
    with pytest.raises(SearchSpaceError, match=message):
        parse_space(space, train_cfg)


def test_space_parses_every_kind(tmp_path: Path) -> None:
    from genre_lab.config import compose

    train_cfg = compose([f"paths.root_dir={tmp_path}"], output_dir=tmp_path)
    space = {"model": {"optimizer": {"lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}},
                       "backbone": {"hidden": {"type": "categorical", "choices": [32, 64]},
                                    "layers": {"type": "int", "low": 1, "high": 3}}},
             "features": {"augment": {"freq_mask": {"type": "int", "low": 0, "high": 16, "step": 4}}}}
    params = {p.path: p for p in parse_space(space, train_cfg)}
    assert set(params) == {"model.optimizer.lr", "model.backbone.hidden", "model.backbone.layers", "features.augment.freq_mask"}
    assert params["model.optimizer.lr"].distribution == optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True)
    assert params["features.augment.freq_mask"].distribution == optuna.distributions.IntDistribution(0, 16, step=4)
    assert params["model.backbone.hidden"].override(64) == "model.backbone.hidden=64"
    # Strings stay strings through Hydra's override grammar, even when they look like numbers.
    assert format_value("32") == "'32'" and format_value(None) == "null" and format_value(True) == "true"


def test_invalid_space_fails_before_any_trial(tmp_path: Path, mlflow_uri: str) -> None:
    overrides = [*_sweep_overrides(tmp_path, 2, []),
                 "+sweep.space.model.optimizer.momentum={type: float, low: 0.1, high: 0.9}",
                 "sweep.space.model.backbone.dropout={type: float, low: 0.5, high: 0.1}"]
    with pytest.raises(SearchSpaceError) as err:
        run_sweep(overrides, output_dir=tmp_path / "out")
    # Every problem in one message, each naming its entry.
    assert "sweep.space.model.optimizer.momentum: the training config has no setting" in str(err.value)
    assert "sweep.space.model.backbone.dropout: `low` (0.5) is greater than `high` (0.1)" in str(err.value)
    # Nothing was created: no study storage, no MLflow run.
    assert not (tmp_path / "optuna.db").exists()
    assert not (tmp_path / "mlflow.db").exists()


def test_misspelt_metric_fails_before_anything(tmp_path: Path, mlflow_uri: str) -> None:
    overrides = [*_sweep_overrides(tmp_path, 2, []), "sweep.metric=val/track_accuracy"]
    with pytest.raises(SweepConfigError, match=r"sweep.metric='val/track_accuracy'.*did you mean val/track_acc\?"):
        run_sweep(overrides, output_dir=tmp_path / "out")
    assert not (tmp_path / "optuna.db").exists() and not (tmp_path / "mlflow.db").exists()


def test_failed_summary_still_closes_parent_without_hiding_the_error(
        tmp_path: Path, mlflow_uri: str, caplog: pytest.LogCaptureFixture) -> None:
    """The end of a worker (plots, best config) can fail; the parent run is closed anyway, and
    an error that stopped the sweep first stays the one reported."""
    from genre_lab.sweep.mlflow_parent import SweepTracker
    from genre_lab.sweep.runner import _finish

    (tmp_path / "a_file").write_text("")
    settings = OmegaConf.create({"best_config_dir": str(tmp_path / "a_file" / "best")})  # cannot be made
    client = MlflowClient(mlflow_uri)
    experiment = tracking.experiment_id("genre_lab", mlflow_uri)

    def study_with_best(name: str) -> optuna.Study:
        study = optuna.create_study(study_name=name, direction="maximize")
        study.add_trial(optuna.trial.create_trial(
            params={"model.optimizer.lr": 0.003},
            distributions={"model.optimizer.lr": optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True)},
            value=0.5, user_attrs={"overrides": [f"paths.root_dir={tmp_path}", "model.optimizer.lr=0.003"]},
        ))
        return study

    # A clean optimisation: the summary's failure is raised, and the parent is FAILED with it.
    tracker = SweepTracker.open(client, experiment, "clean", {})
    with pytest.raises(NotADirectoryError):
        _finish(study_with_best("clean"), tracker, settings, "sqlite:///x.db", error=None, started=0.0)
    parent = client.get_run(tracker.parent_run_id)
    assert parent.info.status == "FAILED" and parent.data.tags["error"].startswith("NotADirectoryError")

    # Stopped by Ctrl-C: the summary's failure is only logged (the caller re-raises the
    # interruption), the parent is KILLED, and the storage password never reaches the result.
    tracker = SweepTracker.open(client, experiment, "interrupted", {})
    result = _finish(study_with_best("interrupted"), tracker, settings, "postgresql://u:secret@db/optuna",
                     error=KeyboardInterrupt("stop"), started=0.0)
    parent = client.get_run(tracker.parent_run_id)
    assert parent.info.status == "KILLED" and parent.data.tags["error"] == "KeyboardInterrupt: stop"
    assert "could not log the end of sweep interrupted" in caplog.text
    assert result.storage == "postgresql://u:***@db/optuna" and result.counts["COMPLETE"] == 1


def test_cli_reports_invalid_space_without_traceback(tmp_path: Path, mlflow_uri: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "genre_lab.sweep", f"paths.root_dir={tmp_path}", f"hydra.run.dir={tmp_path}/run",
         "sweep.space.model.optimizer.lr={type: float, low: 0, high: 0.1, log: true}"],
        cwd=PROJECT_ROOT, env={**os.environ, "MLFLOW_TRACKING_URI": mlflow_uri},
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "sweep.space.model.optimizer.lr: a log-scale range needs `low` > 0" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "optuna.db").exists() and not (tmp_path / "mlflow.db").exists()


# -- study plumbing -----------------------------------------------------------------------------------
def test_storage_kinds(tmp_path: Path) -> None:
    from genre_lab.sweep.study import make_storage, open_study

    pruner = optuna.pruners.NopPruner()
    for url in (f"sqlite:///{tmp_path}/db/optuna.db", str(tmp_path / "journal" / "optuna_journal.log")):
        storage = make_storage(url, heartbeat_seconds=30)
        study = open_study("s", storage, "maximize", pruner)
        study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
        # A second opening (resume, another worker) finds the same study.
        assert len(open_study("s", make_storage(url), "maximize", pruner).trials) == 2
    with pytest.raises(ValueError, match="made to maximize"):
        open_study("s", make_storage(url), "minimize", pruner)
    with pytest.raises(ValueError, match="sweep.storage='optuna.db'"):
        make_storage("optuna.db")


def test_worker_stops_after_repeated_failures() -> None:
    from genre_lab.sweep.study import StopAfterFailures, StopAtBudget

    def broken(trial: optuna.Trial) -> float:
        raise RuntimeError("always")

    study = optuna.create_study()
    # Failures use no budget (StopAtBudget never stops it): the streak limit does.
    study.optimize(broken, catch=(Exception,), callbacks=[StopAtBudget(3, study._storage), StopAfterFailures(4)])
    assert [t.state for t in study.trials] == [TrialState.FAIL] * 4


def _ended_process() -> dict:
    """The worker record of a real process that has exited (and been reaped)."""
    import psutil

    from genre_lab.sweep.study import worker_record

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    started = psutil.Process(proc.pid).create_time()
    proc.wait()
    return {**worker_record(), "pid": proc.pid, "started": started}


def test_worker_records_tell_dead_from_alive() -> None:
    from genre_lab.sweep.study import worker_gone, worker_record

    me = worker_record()
    assert me["pid"] == os.getpid() and not worker_gone(me)
    assert worker_gone(_ended_process())
    assert worker_gone({**me, "started": me["started"] - 3600})  # the PID now belongs to a newer process
    # Another host's or container's worker (only its heartbeat tells), malformed records: not dead.
    assert not worker_gone({**_ended_process(), "host": "elsewhere"})
    assert not worker_gone({**_ended_process(), "pidns": "pid:[1]"})
    for bad in (None, "pid 1", {"host": me["host"], "pid": "1", "started": 0.0}, {"host": me["host"]},
                {"host": me["host"], "pid": True, "started": 0.0}):
        assert not worker_gone(bad)


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize")
def test_dead_workers_trials_are_failed_and_give_their_budget_back(tmp_path: Path) -> None:
    """A RUNNING trial whose worker died is failed, by the heartbeat (a worker on another host)
    or at once by its PID record (this host), and the budget counts only live trials."""
    from genre_lab.sweep.study import (WORKER_ATTR, StopAtBudget, budget_used, fail_dead_trials, make_storage,
                                       open_study, worker_record)

    stale, dead = [], []
    storage = make_storage(f"sqlite:///{tmp_path / 'optuna.db'}", heartbeat_seconds=1,
                           on_stale=lambda study, trial: stale.append(trial.number))
    study = open_study("s", storage, "maximize", optuna.pruners.NopPruner())
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    elsewhere, gone, alive = study.ask(), study.ask(), study.ask()
    elsewhere.set_user_attr(WORKER_ATTR, {**worker_record(), "host": "elsewhere"})
    gone.set_user_attr(WORKER_ATTR, _ended_process())
    alive.set_user_attr(WORKER_ATTR, worker_record())
    for trial in (elsewhere, gone):
        storage.record_heartbeat(trial._trial_id)
    assert budget_used(study) == 4

    # Right away: only the local worker's death is known; it is failed with the reason.
    on_dead = lambda study, trial, reason: dead.append((trial.number, trial.state, reason))  # noqa: E731
    assert fail_dead_trials(study, storage, on_dead) == [gone.number]
    assert dead == [(gone.number, TrialState.FAIL, f"worker process {gone.user_attrs[WORKER_ATTR]['pid']} "
                                                     f"on {socket.gethostname()} is gone")]
    assert budget_used(study) == 3
    # Three heartbeats later the remote one is failed by Optuna's heartbeat rule, through the
    # storage's callback. The live worker's trial (no heartbeat thread here) is left alone
    # because it never sent a heartbeat: Optuna only fails trials that did.
    # (Polled: on a loaded machine the first look after 3 beats can come a little early.)
    time.sleep(3.5)
    failed: list[int] = []
    for _ in range(20):
        failed += fail_dead_trials(study, storage, on_dead)
        if failed:
            break
        time.sleep(0.5)
    assert failed == [elsewhere.number] and stale == [elsewhere.number]
    assert study.trials[alive.number].state == TrialState.RUNNING
    assert budget_used(study) == 2
    # StopAtBudget counts the same way: with 2 of 3 used (one finished, one running), a worker
    # runs exactly one more trial.
    study.optimize(lambda t: t.suggest_float("x", 0, 1), callbacks=[StopAtBudget(3, storage, on_dead)])
    assert [t.state for t in study.trials] == [TrialState.COMPLETE, TrialState.FAIL, TrialState.FAIL,
                                               TrialState.RUNNING, TrialState.COMPLETE]


# -- a sweep, end to end ---------------------------------------------------------------------------
@pytest.mark.slow
def test_sweep_prunes_tracks_and_resumes(tmp_path: Path, mlflow_uri: str) -> None:
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    first = run_sweep(_sweep_overrides(tmp_path, 3, [GOOD, FROZEN]), output_dir=tmp_path / "out")

    study = optuna.load_study(study_name="crnn-logmel", storage=storage)
    trials = study.get_trials()
    assert [t.state for t in trials[:2]] == [TrialState.COMPLETE, TrialState.PRUNED], [t.state for t in trials]
    assert len(trials) == 3 and trials[1].params["model.optimizer.lr"] == 1e-6
    assert len(trials[0].intermediate_values) == 3  # one report per validation epoch
    assert all("sweep=crnn" in t.user_attrs["overrides"] for t in trials)
    assert first.counts["COMPLETE"] + first.counts["PRUNED"] == 3 and first.counts["PRUNED"] >= 1

    client = MlflowClient(mlflow_uri)
    (parent,) = _runs(client, sweep_study="crnn-logmel", sweep_role="parent")
    assert parent.info.run_id == first.parent_run_id and parent.info.status == "FINISHED"
    children = _runs(client, sweep_study="crnn-logmel", sweep_role="trial")
    assert len(children) == 3
    for trial, child in zip(trials, children):
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert child.data.tags["trial_number"] == str(trial.number)
        assert trial.user_attrs["mlflow_run_id"] == child.info.run_id
        # Pruned is not failed: the run is FINISHED, its tag says PRUNED.
        assert child.info.status == "FINISHED" and child.data.tags["trial_state"] == trial.state.name
        for path, value in trial.params.items():
            assert child.data.params[path] == str(value)

    best = study.best_trial
    history = client.get_metric_history(parent.info.run_id, "best_value")
    assert history[-1].value == pytest.approx(best.value) and history[-1].step == best.number
    assert parent.data.tags["best_trial"] == str(best.number)
    arts = _artifacts(client, parent.info.run_id)
    assert {"plots/optimization_history.png", "plots/param_importances.png", "plots/parallel_coordinate.png",
            "best_config.yaml", "trials.csv", "sweep/settings.yaml", "param_importances.json"} <= arts, arts
    importances = {k.removeprefix("importance/"): v for k, v in parent.data.metrics.items() if k.startswith("importance/")}
    assert importances and set(importances) <= set(best.params) and sum(importances.values()) == pytest.approx(1.0)

    # The best config is a complete training config with the best trial's values.
    assert first.best_config is not None and first.best_config.name == "best_config.yaml"
    with initialize_config_dir(config_dir=str(first.best_config.parent), version_base="1.3"):
        rerun = hydra_compose(config_name="best_config")
    for path, value in best.params.items():
        section, *rest = path.split(".")
        node = rerun[section]
        for key in rest:
            node = node[key]
        assert node == value, path
    assert "--config-name best_config" in first.rerun_command

    # Resume: same command with a larger budget adds trials to the same study and parent run.
    # The enqueued broken trial fails in both Optuna and MLflow, and the sweep goes on.
    # A failed trial does not use up the budget: trial 4 is the fourth that counts.
    second = run_sweep(_sweep_overrides(tmp_path, 4, [BROKEN]), output_dir=tmp_path / "out")
    assert second.parent_run_id == first.parent_run_id
    trials = optuna.load_study(study_name="crnn-logmel", storage=storage).get_trials()
    assert [t.number for t in trials] == [0, 1, 2, 3, 4]
    assert trials[3].state == TrialState.FAIL and trials[3].params["model.backbone.dropout"] == 1.5
    assert trials[4].state in (TrialState.COMPLETE, TrialState.PRUNED)
    assert len(_runs(client, sweep_study="crnn-logmel", sweep_role="parent")) == 1
    children = _runs(client, sweep_study="crnn-logmel", sweep_role="trial")
    assert len(children) == 5
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {first.parent_run_id}
    broken = children[3]
    assert broken.info.status == "FAILED" and broken.data.tags["trial_state"] == "FAIL"
    assert "dropout" in broken.data.tags["error"]


@pytest.mark.slow
def test_two_workers_share_one_study(tmp_path: Path, mlflow_uri: str) -> None:
    args = [*QUICK, "trainer.max_epochs=1", f"paths.root_dir={tmp_path}", "sweep=cnn", "sweep.n_trials=3",
            "sweep.pruner.type=none"]
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_uri, "OMP_NUM_THREADS": "1"}
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "genre_lab.sweep", *args, f"sweep.worker_id={i}", f"hydra.run.dir={tmp_path}/w{i}"],
            cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        for i in (1, 2)
    ]
    logs = [w.communicate(timeout=600)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], "\n".join(log[-3000:] for log in logs)

    trials = optuna.load_study(study_name="cnn-logmel", storage=f"sqlite:///{tmp_path / 'optuna.db'}").get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3
    assert len({tuple(sorted(t.params.items())) for t in trials}) == 3  # no duplicate draws
    client = MlflowClient(mlflow_uri)
    (parent,) = _runs(client, sweep_study="cnn-logmel", sweep_role="parent")
    children = _runs(client, sweep_study="cnn-logmel", sweep_role="trial")
    assert sorted(int(c.data.tags["trial_number"]) for c in children) == [0, 1, 2]
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    assert {c.data.tags["model"] for c in children} == {"cnn"}  # sweep=cnn picks the model
    # Both workers report the one parent run.
    assert all(parent.info.run_id in log for log in logs)


@pytest.mark.slow
def test_rerun_right_after_kill_9_reuses_the_dead_trials_budget(tmp_path: Path, mlflow_uri: str) -> None:
    """`kill -9` mid-trial, then the same command at once (default heartbeat: 60 s, so Optuna's
    rule cannot tell yet): the dead trial is failed by its PID record and replaced, and the
    study ends with all `sweep.n_trials` trials, not one short."""
    args = [*QUICK, "trainer.max_epochs=4", f"paths.root_dir={tmp_path}", "sweep=cnn", "sweep.n_trials=2",
            "sweep.pruner.type=none", "log_model=false"]
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    worker = subprocess.Popen(
        [sys.executable, "-m", "genre_lab.sweep", *args, f"hydra.run.dir={tmp_path}/w1"], cwd=PROJECT_ROOT,
        env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 300
        # Mid-trial: its first epoch reported, more to come.
        while time.monotonic() < deadline and worker.poll() is None and not any(
                t.state == TrialState.RUNNING and t.intermediate_values for t in _trials(storage, "cnn-logmel")):
            time.sleep(0.5)
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    (dead,) = optuna.load_study(study_name="cnn-logmel", storage=storage).get_trials()
    assert dead.state == TrialState.RUNNING and worker.returncode == -signal.SIGKILL

    result = run_sweep(args, output_dir=tmp_path / "w1-again")
    trials = optuna.load_study(study_name="cnn-logmel", storage=storage).get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE, TrialState.COMPLETE]
    assert result.counts["COMPLETE"] == 2 and result.counts["RUNNING"] == 0
    client = MlflowClient(mlflow_uri)
    child = client.get_run(dead.user_attrs["mlflow_run_id"])
    assert child.info.status == "FAILED" and child.data.tags["trial_state"] == "FAIL"
    assert child.data.tags["error"] == (f"RuntimeError: worker died (worker process {worker.pid} on "
                                        f"{socket.gethostname()} is gone)")
    assert len(_runs(client, sweep_study="cnn-logmel", sweep_role="trial")) == 3


@pytest.mark.parametrize("name", sorted(p.stem for p in (CONF_DIR / "sweep").glob("*.yaml")))
def test_every_shipped_space_parses_against_its_model(name: str, tmp_path: Path) -> None:
    """Each `sweep=<name>` selects its model, and every path of its space exists in that model's
    training config, so a sweep of any shipped model starts."""
    import copy

    from omegaconf import open_dict

    from genre_lab.config import compose

    cfg = compose([f"sweep={name}", f"paths.root_dir={tmp_path}"], config_name="sweep", output_dir=tmp_path)
    train_cfg = copy.deepcopy(cfg)
    with open_dict(train_cfg):
        train_cfg.pop("sweep")
    params = parse_space(cfg.sweep.space, train_cfg)
    assert params and all(p.path.split(".")[0] in ("model", "features", "data") for p in params)
    if name != "finetune":
        assert cfg.model.name == name
