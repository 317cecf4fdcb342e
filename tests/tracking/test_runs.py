"""Runs never lie: dead processes are found, shown, closed; SIGTERM checkpoints and closes KILLED."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient

from genre_lab.config import PROJECT_ROOT
from genre_lab.tracking.liveness import HEARTBEAT, HOST, INTERVAL, PID, liveness, process_tags
from genre_lab.training.resume.lightning_checkpoints import INTERRUPTED, load
from genre_lab.training.resume.run import RUN_FILE
from tests.training_procs import QUICK, history, start, wait_for

_HOLDER = """
import sys, time
from mlflow import MlflowClient
from genre_lab.tracking.liveness import process_tags
client = MlflowClient(sys.argv[1])
exp = client.get_experiment_by_name("genre_lab") or client.get_experiment(client.create_experiment("genre_lab"))
run = client.create_run(exp.experiment_id, run_name="holder", tags=process_tags(30))
print(run.info.run_id, flush=True)
time.sleep(600)
"""


def _runs_cli(uri: str, *args: str, columns: int = 250) -> str:
    proc = subprocess.run([sys.executable, "-m", "genre_lab.cli.runs", "--tracking-uri", uri, *args], cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": str(columns)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def _row(out: str, run_id: str) -> str:
    (line,) = [line for line in out.splitlines() if run_id in line]
    return line


def test_dead_runs_are_shown_dead_and_closed_failed(mlflow_uri: str) -> None:
    client = MlflowClient(mlflow_uri)
    # A real process that opened a run and was then kill -9'd: MLflow still says RUNNING.
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, mlflow_uri], cwd=PROJECT_ROOT,
                              stdout=subprocess.PIPE, text=True)
    killed = holder.stdout.readline().strip()
    holder.kill()
    holder.wait()
    exp_id = client.get_experiment_by_name("genre_lab").experiment_id
    alive = client.create_run(exp_id, run_name="alive", tags=process_tags(30)).info.run_id  # this process
    now = time.time()
    elsewhere = {HOST: "another-machine", PID: "1", INTERVAL: "30"}
    stale = client.create_run(exp_id, run_name="stale", tags={**elsewhere, HEARTBEAT: str(now - 200)}).info.run_id
    # Beats every hour: alive however slowly this test runs.
    fresh = client.create_run(exp_id, run_name="fresh", tags={**elsewhere, HEARTBEAT: str(now - 5), INTERVAL: "3600"}).info.run_id
    done = client.create_run(exp_id, run_name="done").info.run_id
    client.set_terminated(done, "FINISHED")

    assert client.get_run(killed).info.status == "RUNNING"
    out = _runs_cli(mlflow_uri)
    assert "DEAD" in _row(out, killed) and "is gone" in _row(out, killed)
    assert "DEAD" in _row(out, stale) and "no heartbeat from another-machine" in _row(out, stale)
    for run_id in (alive, fresh):
        assert "DEAD" not in _row(out, run_id) and "RUNNING" in _row(out, run_id)
    assert "FINISHED" in _row(out, done)
    assert "2 dead run(s)" in out

    out = _runs_cli(mlflow_uri, "--mark-dead")
    for run_id in (killed, stale):
        run = client.get_run(run_id)
        assert run.info.status == "FAILED" and run.data.tags["error"].startswith("process died")
        assert f"closed {run_id} FAILED" in out
    assert client.get_run(alive).info.status == client.get_run(fresh).info.status == "RUNNING"
    assert "DEAD" not in _runs_cli(mlflow_uri, "--running")


def test_a_sweep_parent_is_shown_as_a_sweep_with_its_trials(mlflow_uri: str) -> None:
    """The parent run of a sweep has no process of its own: shown as a sweep with its trials
    by state and its best value, not as a run that never beat; a dead trial is closed, the
    parent is not."""
    from genre_lab.sweep.mlflow_parent import SweepTracker, close_child

    client = MlflowClient(mlflow_uri)
    exp_id = client.create_experiment("genre_lab")
    tracker = SweepTracker.open(client, exp_id, "crnn-logmel", {"metric": "val/loss", "n_trials": 20})
    trials = [tracker.start_child(n, {"model.optimizer.lr": 0.001 * (n + 1)}, []) for n in range(4)]
    close_child(client, trials[0], "COMPLETE")
    close_child(client, trials[1], "PRUNED")
    for key, value in process_tags(30).items():  # trial 2 trains in this (live) process
        client.set_tag(trials[2], key, value)
    for key, value in {HOST: "another-machine", PID: "1", INTERVAL: "30", HEARTBEAT: str(time.time() - 200)}.items():
        client.set_tag(trials[3], key, value)  # trial 3's worker stopped beating
    client.log_metric(tracker.parent_run_id, "best_value", 0.41)
    client.set_tag(tracker.parent_run_id, "best_trial", "0")
    training = client.create_run(exp_id, run_name="plain", tags=process_tags(30)).info.run_id

    out = _runs_cli(mlflow_uri, columns=320)  # the whole summary on the run's line
    parent = _row(out, tracker.parent_run_id)
    assert " sweep " in parent and "RUNNING" in parent and "no heartbeat" not in parent, parent
    assert "sweep 'crnn-logmel': 4 of 20 trials (1 complete, 1 pruned, 1 running, 1 dead); best val/loss 0.41 (trial 0)" in parent
    assert " sweep-trial " in _row(out, trials[3]) and "DEAD" in _row(out, trials[3])
    assert " training " in _row(out, training)
    assert "1 dead run(s)" in out

    out = _runs_cli(mlflow_uri, "--mark-dead")
    assert f"closed {trials[3]} FAILED" in out and tracker.parent_run_id not in out.split("closed", 1)[1]
    assert client.get_run(trials[3]).info.status == "FAILED"
    assert client.get_run(tracker.parent_run_id).info.status == "RUNNING"
    assert "(1 complete, 1 pruned, 1 fail, 1 running)" in _row(_runs_cli(mlflow_uri, columns=320), tracker.parent_run_id)


def test_help_names_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    from genre_lab.cli import main

    with pytest.raises(SystemExit) as done:
        main(["runs", "--help"])
    assert done.value.code == 0 and capsys.readouterr().out.startswith("usage: genre-lab runs ")

def test_liveness_reads_malformed_tags_as_unknown(mlflow_uri: str) -> None:
    client = MlflowClient(mlflow_uri)
    exp_id = client.create_experiment("genre_lab")
    run_id = client.create_run(exp_id, tags={HOST: "x", PID: "not-a-pid", HEARTBEAT: "soon", INTERVAL: "-"}).info.run_id
    state = liveness(client.get_run(run_id))
    assert state.state == "RUNNING" and "no heartbeat" in state.reason


EPOCHS = 24


@pytest.mark.slow
def test_sigterm_writes_a_checkpoint_closes_killed_and_resumes(tmp_path: Path, mlflow_uri: str) -> None:
    # QUICK trains its 4 epochs in about 2 s here, which the signal could miss (it once landed while
    # the model was being logged, after fit): 24 epochs keep fit running for the signal.
    args = [*(o for o in QUICK if not o.startswith("trainer.max_epochs")), f"trainer.max_epochs={EPOCHS}",
            f"paths.root_dir={tmp_path}", "heartbeat_seconds=1"]
    run_dir = tmp_path / "run"
    proc = start(args, run_dir, mlflow_uri)
    last = run_dir / "checkpoints" / "last.ckpt"
    wait_for(last.is_file, proc, "the first epoch's checkpoint")
    client = MlflowClient(mlflow_uri)
    run_id = json.loads((run_dir / RUN_FILE).read_text())["run_id"]
    beat = float(client.get_run(run_id).data.tags[HEARTBEAT])
    wait_for(lambda: float(client.get_run(run_id).data.tags[HEARTBEAT]) > beat, proc, "a heartbeat", timeout=60)
    first = load(last)["global_step"]
    time.sleep(0.5)  # into the next epoch
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=300) != 0

    run = client.get_run(run_id)
    assert run.info.status == "KILLED", run.info.status
    assert "SIGTERM" in run.data.tags["error"]
    # The weights at the signal are kept; resume starts from the last finished epoch.
    interrupted = load(run_dir / "checkpoints" / INTERRUPTED)
    assert interrupted["global_step"] >= load(last)["global_step"] >= first
    resumed_from = load(last)["epoch"]

    resumed = subprocess.run(
        [sys.executable, "-m", "genre_lab.cli.train", f"resume={run_dir}", f"hydra.run.dir={tmp_path / 'resumed'}"],
        cwd=PROJECT_ROOT, env={**os.environ, "MLFLOW_TRACKING_URI": mlflow_uri}, capture_output=True, text=True,
        timeout=900,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and "error" not in run.data.tags  # the interruption is over
    for key in ("val/loss", "val/track_acc", "train/loss"):
        steps = [s for s, _ in history(client, run_id, key)]
        assert len(steps) == EPOCHS and len(set(steps)) == EPOCHS, (key, steps)
    assert "test/track_acc" in run.data.metrics
    assert load(last)["epoch"] > resumed_from
