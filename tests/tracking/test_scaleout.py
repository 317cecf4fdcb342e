"""Scale-out, for real: a PostgreSQL server and an MLflow tracking server on 127.0.0.1, two
sweep workers in separate processes sharing them, one of them `kill -9`'d mid-trial and
restarted. This is what the README's "Sweeps on several machines" section describes.

PostgreSQL is Debian's `postgresql` package (`make services` installs it; `make test` does so
first). Marked `postgres`: without its binaries it is skipped, unless GENRE_LAB_REQUIRE_POSTGRES=1 (CI).
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient
from optuna.trial import TrialState

from genre_lab.config import PROJECT_ROOT
from genre_lab.tracking.stores import store_lock
from genre_lab.sweep.study import WORKER_ATTR
from tests.conftest import TINY, postgres_binaries

STUDY = "cnn-logmel"
N_TRIALS = 3
HEARTBEAT_SECONDS = 1  # a dead worker's trial is stale after 3 s
#: Trials of a few seconds with two validation epochs, so that a worker can die mid-trial.
TRIAL = [
    *(o for o in TINY if not o.startswith(("trainer.max_epochs", "data.source.clips_per_class",
                                          "data.train_chunks_per_clip", "throughput_seconds"))),
    "data.source.clips_per_class={train: 8, val: 3, test: 2}", "data.train_chunks_per_clip=2",
    "trainer.max_epochs=2", "throughput_seconds=0", "log_model=false",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(what: str, ready, timeout: float, proc: subprocess.Popen | None = None, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(0.5)
    detail = log.read_text()[-3000:] if log is not None and log.exists() else ""
    raise AssertionError(f"{what} not ready after {timeout:.0f} s\n{detail}")


@contextmanager
def postgres_server() -> Iterator[str]:
    """A throwaway PostgreSQL cluster on a free port of 127.0.0.1, run by a non-root user
    (`postgres` when the tests run as root, else the current user), with a random password.
    Yields `postgresql://genre_lab:<password>@127.0.0.1:<port>`; stopped and deleted after."""
    bindir = postgres_binaries()
    if bindir is None:  # only with GENRE_LAB_REQUIRE_POSTGRES=1: the `postgres` marker skips otherwise
        pytest.fail("PostgreSQL server binaries not found: run `make services`")
    as_user: list[str] = []
    owner = None
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        owner = pwd.getpwnam("postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    # Not under pytest's tmp_path: its parents are private to the user running the tests.
    root = Path(tempfile.mkdtemp(prefix="genre_lab_pg_"))
    password = secrets.token_hex(12)
    (root / "pw").write_text(password)
    if owner is not None:
        for path in (root, root / "pw"):
            os.chown(path, owner.pw_uid, owner.pw_gid)
    port = _free_port()
    data, log = root / "data", root / "server.log"

    def run(*cmd: str) -> None:
        subprocess.run([*as_user, *cmd], check=True, capture_output=True, text=True, timeout=120)

    started = False
    try:
        run(str(bindir / "initdb"), "-D", str(data), "-U", "genre_lab", f"--pwfile={root / 'pw'}",
            "-A", "scram-sha-256", "-E", "UTF8", "--no-sync")
        run(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60", "start",
            "-o", f"-h 127.0.0.1 -p {port} -k {root} -c fsync=off")
        started = True
        base = f"postgresql://genre_lab:{password}@127.0.0.1:{port}"
        import psycopg2

        conn = psycopg2.connect(f"{base}/postgres")
        conn.autocommit = True
        with conn.cursor() as cur:
            for db in ("optuna", "mlflow"):
                cur.execute(f"CREATE DATABASE {db}")
        conn.close()
        yield base
    finally:
        if started:
            subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                           capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def mlflow_server(backend: str, artifacts: Path, log: Path) -> Iterator[str]:
    """`mlflow server` on a free port of 127.0.0.1 with its runs in `backend` and the runs'
    artifacts served from `artifacts`; yields its URI. Stopped (its whole process group) after."""
    port = _free_port()
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [str(Path(sys.executable).with_name("mlflow")), "server", "--backend-store-uri", backend,
             "--artifacts-destination", str(artifacts), "--host", "127.0.0.1", "--port", str(port),
             "--workers", "1"],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    uri = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=2) as resp:
                return resp.status == 200
        except OSError:
            return False

    try:
        _wait("mlflow server", healthy, 180, proc, log)
        yield uri
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


_STORAGES: dict[str, optuna.storages.RDBStorage] = {}


def _trials(url: str) -> list[optuna.trial.FrozenTrial]:
    """The study's trials (none before a worker has created it), through one storage object
    for all the polls rather than a new connection pool each time."""
    if url not in _STORAGES:
        with store_lock(url):  # as the workers open it: the first one may be creating the tables
            _STORAGES[url] = optuna.storages.RDBStorage(url)
    try:
        return optuna.load_study(study_name=STUDY, storage=_STORAGES[url]).get_trials()
    except KeyError:
        return []


@pytest.mark.slow
@pytest.mark.server
@pytest.mark.postgres
def test_two_workers_on_postgres_and_an_mlflow_server_survive_a_kill_9(tmp_path: Path) -> None:
    with postgres_server() as pg, mlflow_server(f"{pg}/mlflow", tmp_path / "mlartifacts",
                                                tmp_path / "mlflow_server.log") as tracking:
        storage = f"{pg}/optuna"
        env = {**os.environ, "MLFLOW_TRACKING_URI": tracking, "OMP_NUM_THREADS": "1"}
        args = [*TRIAL, f"paths.root_dir={tmp_path}", "sweep=cnn", f"sweep.n_trials={N_TRIALS}",
                "sweep.pruner.type=none", f"sweep.storage={storage}",
                f"sweep.heartbeat_seconds={HEARTBEAT_SECONDS}"]
        logs: dict[str, Path] = {}
        workers: dict[str, subprocess.Popen] = {}

        def start(name: str, worker_id: int) -> subprocess.Popen:
            logs[name] = tmp_path / f"{name}.log"
            with open(logs[name], "w") as out:
                workers[name] = subprocess.Popen(
                    [sys.executable, "-m", "genre_lab.sweep", *args, f"sweep.worker_id={worker_id}",
                     f"hydra.run.dir={tmp_path}/{name}"],
                    cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                )
            return workers[name]

        try:
            first, other = start("w1", 1), start("w2", 2)

            def first_is_mid_trial() -> bool:
                return any(t.state == TrialState.RUNNING and t.intermediate_values
                           and (t.user_attrs.get(WORKER_ATTR) or {}).get("pid") == first.pid
                           for t in _trials(storage))

            _wait("worker 1 in the middle of a trial", first_is_mid_trial, 240, first, logs["w1"])
            first.send_signal(signal.SIGKILL)
            first.wait()
            (dead,) = [t for t in _trials(storage)
                       if (t.user_attrs.get(WORKER_ATTR) or {}).get("pid") == first.pid
                       and t.state == TrialState.RUNNING]
            again = start("w1-again", 1)  # the same command, at once
            for name in ("w2", "w1-again"):
                workers[name].wait(timeout=400)
            codes = {name: workers[name].returncode for name in ("w2", "w1-again")}
            assert codes == {"w2": 0, "w1-again": 0}, {n: logs[n].read_text()[-3000:] for n in codes}
        finally:
            for proc in workers.values():
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()

        # -- Optuna, in PostgreSQL: one study; the dead trial failed, its budget given to another.
        trials = _trials(storage)
        states = [t.state for t in trials]
        assert states.count(TrialState.COMPLETE) == N_TRIALS, states
        assert states.count(TrialState.FAIL) == 1 and trials[dead.number].state == TrialState.FAIL, states
        assert TrialState.RUNNING not in states
        pids = {(t.user_attrs.get(WORKER_ATTR) or {}).get("pid") for t in trials if t.state == TrialState.COMPLETE}
        assert pids <= {other.pid, again.pid}, pids

        # -- MLflow, through the server: one parent, every trial's child under it.
        client = MlflowClient(tracking)
        experiment = client.get_experiment_by_name("genre_lab")
        parents = client.search_runs([experiment.experiment_id],
                                     f"tags.sweep_study = '{STUDY}' and tags.sweep_role = 'parent'")
        assert len(parents) == 1
        parent = parents[0]
        assert parent.info.status == "FINISHED"
        study = optuna.load_study(study_name=STUDY, storage=_STORAGES[storage])
        assert study.user_attrs["mlflow_parent_run_id"] == parent.info.run_id
        children = client.search_runs([experiment.experiment_id],
                                      f"tags.sweep_study = '{STUDY}' and tags.sweep_role = 'trial'")
        assert sorted(int(c.data.tags["trial_number"]) for c in children) == [t.number for t in trials]
        assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
        by_run = {c.info.run_id: c for c in children}
        for trial in trials:
            child = by_run[trial.user_attrs["mlflow_run_id"]]
            assert child.data.tags["trial_state"] == trial.state.name
            if trial.state == TrialState.COMPLETE:
                assert child.info.status == "FINISHED"
                assert child.data.metrics["val/loss"] > 0
                # Artifacts went through the server to its artifact store.
                assert [a.path for a in client.list_artifacts(child.info.run_id, "checkpoints")] == [
                    "checkpoints/best.ckpt"]
        # The killed worker's trial: closed FAILED by a live worker, which saw it die either way
        # (no heartbeat for 3 s, or its PID gone from this host, whichever check ran first).
        dead_run = by_run[dead.user_attrs["mlflow_run_id"]]
        assert dead_run.info.status == "FAILED"
        assert dead_run.data.tags["error"] in {
            "RuntimeError: worker died (no heartbeat)",
            f"RuntimeError: worker died (worker process {first.pid} on {socket.gethostname()} is gone)",
        }, dead_run.data.tags["error"]
        # The storage's password never reaches the tracking server.
        password = pg.split(":")[2].split("@")[0]
        assert parent.data.tags["sweep.storage"] == storage.replace(password, "***")
        for run in [parent, *children]:
            assert not any(password in str(v) for v in [*run.data.params.values(), *run.data.tags.values()])
        _STORAGES.pop(storage).engine.dispose()  # before the server stops
