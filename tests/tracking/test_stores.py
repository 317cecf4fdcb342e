"""Commands started together on a fresh MLflow sqlite store: real processes, one new database.

Without a lock, 2 of 3 processes opening a new store at once died in MLflow's schema migration
(3 tries of 3); `genre_lab.tracking.stores.store_lock` makes them take turns."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient

from genre_lab.config import PROJECT_ROOT
from genre_lab.tracking.stores import store_lock
from tests.conftest import TINY

#: Opens the store the way every command does (`tracking.experiment_id`, then a run). Each
#: process says when it has imported everything, then waits for the word to go, so that all
#: three open the new database at the same moment.
OPEN_STORE = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from mlflow import MlflowClient
    from genre_lab.tracking import mlflow_runs as tracking
    uri, gate, name = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    (gate.parent / f"{name}.ready").touch()
    while not gate.exists():
        time.sleep(0.01)
    experiment = tracking.experiment_id("genre_lab", uri)
    client = MlflowClient(uri)
    run = client.create_run(experiment, run_name=name)
    client.log_metric(run.info.run_id, "opened", 1.0)
    client.set_terminated(run.info.run_id)
""")


def _env(uri: str) -> dict[str, str]:
    return {**os.environ, "MLFLOW_TRACKING_URI": uri, "OMP_NUM_THREADS": "1"}


def test_three_processes_open_a_fresh_store_together(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    gate = tmp_path / "go"
    procs = [
        subprocess.Popen([sys.executable, "-c", OPEN_STORE, uri, str(gate), f"p{i}"], cwd=PROJECT_ROOT,
                         env=_env(uri), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for i in range(3)
    ]
    deadline = time.monotonic() + 240
    while len(list(tmp_path.glob("*.ready"))) < 3 and time.monotonic() < deadline:
        assert all(p.poll() is None for p in procs), [p.communicate()[0][-2000:] for p in procs]
        time.sleep(0.05)
    assert not (tmp_path / "mlflow.db").exists()  # nobody has opened it yet
    gate.touch()
    logs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], "\n\n".join(log[-2000:] for log in logs)

    client = MlflowClient(uri)
    (experiment,) = [e for e in client.search_experiments() if e.name == "genre_lab"]
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.info.run_name for r in runs) == ["p0", "p1", "p2"]
    assert all(r.info.status == "FINISHED" and r.data.metrics["opened"] == 1.0 for r in runs)


def test_store_lock_is_reentrant_and_excludes_other_processes(tmp_path: Path) -> None:
    """A sweep holds the lock while it opens the experiment, which takes it again: no deadlock.
    Another process waits until the holder lets go."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    probe = ("import sys, time; from genre_lab.tracking.stores import store_lock\n"
             "t = time.time()\nwith store_lock(sys.argv[1]): print(time.time() - t)")
    with store_lock(uri, f"sqlite:///{tmp_path / 'optuna.db'}"):
        with store_lock(uri):
            other = subprocess.Popen([sys.executable, "-c", probe, uri], cwd=PROJECT_ROOT, env=_env(uri),
                                     stdout=subprocess.PIPE, text=True)
            time.sleep(3)
            assert other.poll() is None  # still waiting for the lock
    waited = float(other.communicate(timeout=60)[0])
    assert other.returncode == 0 and waited > 1.0
    assert (tmp_path / "mlflow.db-lock").exists() and (tmp_path / "optuna.db-lock").exists()


@pytest.mark.slow
def test_training_evaluation_and_sweep_started_together(tmp_path: Path) -> None:
    """The real commands, all three kinds at once on one new store."""
    quick = [*(o for o in TINY if not o.startswith(("trainer.max_epochs", "throughput_seconds",
                                                   "data.source.clips_per_class"))),
             "data.source.clips_per_class={train: 8, val: 3, test: 2}", "trainer.max_epochs=1",
             "throughput_seconds=0", "log_model=false"]
    # A checkpoint to evaluate, trained into another store beforehand.
    ckpt_root = tmp_path / "pretrained"
    before = subprocess.run(
        [sys.executable, "-m", "genre_lab.cli.train", *quick, f"paths.root_dir={ckpt_root}",
         f"hydra.run.dir={ckpt_root}/run"],
        cwd=PROJECT_ROOT, env=_env(f"sqlite:///{ckpt_root / 'mlflow.db'}"), capture_output=True, text=True,
        timeout=600,
    )
    assert before.returncode == 0, before.stderr[-3000:]
    checkpoint = ckpt_root / "run" / "checkpoints" / "best.ckpt"
    assert checkpoint.is_file()

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    commands = {
        "train": ["genre_lab.cli.train", *quick, f"paths.root_dir={tmp_path}", f"hydra.run.dir={tmp_path}/train"],
        "evaluate": ["genre_lab.cli.evaluate", f"run={checkpoint}", "data=synthetic",
                     "data.source.clips_per_class={train: 1, val: 1, test: 2}", "data.source.clip_seconds=4.0",
                     "progress=false", f"hydra.run.dir={tmp_path}/evaluate"],
        "sweep": ["genre_lab.sweep", *quick, f"paths.root_dir={tmp_path}", "sweep=cnn", "sweep.n_trials=1",
                  "sweep.pruner.type=none", f"hydra.run.dir={tmp_path}/sweep"],
    }
    procs = {name: subprocess.Popen([sys.executable, "-m", *args], cwd=PROJECT_ROOT, env=_env(uri),
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for name, args in commands.items()}
    logs = {name: p.communicate(timeout=600)[0] for name, p in procs.items()}
    failed = {name: logs[name][-3000:] for name, p in procs.items() if p.returncode != 0}
    assert not failed, failed

    client = MlflowClient(uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert all(r.info.status == "FINISHED" for r in runs), [(r.info.run_name, r.info.status) for r in runs]
    kinds = [r.data.tags.get("sweep_role") or r.data.tags.get("run_type") or "training" for r in runs]
    # training, evaluation, and the sweep's parent and its one trial
    assert sorted(kinds) == ["evaluation", "parent", "training", "trial"], kinds


def test_a_borrowed_tracking_uri_gives_the_environment_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """MLflow's `_use_tracking_uri` unsets MLFLOW_TRACKING_URI on the way out; after loading a
    model from a run, the command's summary then looked for its run in another store."""
    import mlflow
    from mlflow.tracking._tracking_service import utils

    from genre_lab.tracking.mlflow_runs import tracking_uri, using_tracking_uri

    mine = f"sqlite:///{tmp_path / 'mine.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mine)
    before = utils._tracking_uri  # MLflow's process-wide URI as set in code, if an earlier test set one
    with using_tracking_uri(f"sqlite:///{tmp_path / 'other.db'}"):
        assert mlflow.get_tracking_uri().endswith("other.db")
    assert tracking_uri() == mine and utils._tracking_uri == before
