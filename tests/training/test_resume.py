"""Crash-safe training: kill -9 and resume, atomic checkpoints, refused resumes."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from lightning.pytorch.callbacks import Callback
from mlflow import MlflowClient

from genre_lab.config import PROJECT_ROOT, compose
from genre_lab.tracking.liveness import liveness
from genre_lab.training.resume import prepare
from genre_lab.training.resume.lightning_checkpoints import AtomicCheckpointIO, CheckpointLoadError, load
from genre_lab.training.resume.run_config import ResumeConfigError
from genre_lab.training.resume.run import CONFIG_HASH, OVERRIDES, RUN_FILE, ResumeError
from genre_lab.training.fit import fit_and_test
from tests.training_procs import QUICK, history, start, wait_for

#: Metrics with one value per epoch; each must have exactly max_epochs values after a resume.
EPOCH_METRICS = ("train/loss", "train/acc", "val/loss", "val/track_acc", "val/chunk_acc", "lr-AdamW")


def _run_id(run_dir: Path) -> str:
    return json.loads((run_dir / RUN_FILE).read_text())["run_id"]


@pytest.mark.slow
def test_kill9_then_resume_equals_uninterrupted_run(tmp_path: Path, mlflow_uri: str) -> None:
    """A training process is `kill -9`'d at a random point after its first or second epoch;
    `resume=<run id>` continues the same MLflow run. Work lost: at most the epoch in progress.
    End state: the same metrics (every epoch's), bit for bit, as an uninterrupted run."""
    args = [*QUICK, f"paths.root_dir={tmp_path}"]
    epochs = 4
    reference = start(args, tmp_path / "reference", mlflow_uri)
    victim = start(args, tmp_path / "victim", mlflow_uri)
    last = tmp_path / "victim" / "checkpoints" / "last.ckpt"
    rng = random.Random(time.time_ns())
    after_epochs, delay = rng.choice([1, 2]), rng.uniform(0.0, 3.0)
    wait_for(lambda: last.is_file() and load(last)["epoch"] + 1 >= after_epochs, victim,
             f"epoch {after_epochs}'s checkpoint")
    time.sleep(delay)
    assert victim.poll() is None, "the victim finished before the kill"
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    assert victim.returncode == -signal.SIGKILL

    client = MlflowClient(mlflow_uri)
    run_id = _run_id(tmp_path / "victim")
    dead = client.get_run(run_id)
    assert dead.info.status == "RUNNING"  # what MLflow believes...
    assert liveness(dead).state == "DEAD"  # ...and the truth
    started = len(client.get_metric_history(run_id, "lr-AdamW"))  # logged as each epoch starts
    kept = load(last)["epoch"] + 1  # epochs in the checkpoint the resume starts from
    lost = started - kept
    print(f"\nkilled {delay:.2f} s after epoch {after_epochs}'s checkpoint: {started} epoch(s) started, "
          f"{kept} in last.ckpt, {lost} lost")
    assert 0 <= lost <= 1

    resumed = subprocess.run(
        [sys.executable, "-m", "genre_lab.cli.train", f"resume={run_id}", f"hydra.run.dir={tmp_path / 'resumed'}"],
        cwd=PROJECT_ROOT, env={**os.environ, "MLFLOW_TRACKING_URI": mlflow_uri}, capture_output=True, text=True,
        timeout=900,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert reference.wait(timeout=900) == 0

    ref_id = _run_id(tmp_path / "reference")
    run, ref = client.get_run(run_id), client.get_run(ref_id)
    assert run.info.status == "FINISHED" and run.data.tags["genre_lab.resumes"] == "1"
    for key in EPOCH_METRICS:
        got, want = history(client, run_id, key), history(client, ref_id, key)
        assert len(got) == epochs and len({s for s, _ in got}) == epochs, (key, got)  # appended, not duplicated
        assert got == want, key  # bit-identical on CPU
    # Every score bit for bit; the speeds (`speed/...`) are timings of two different processes.
    differences = {k: abs(run.data.metrics[k] - v) for k, v in ref.data.metrics.items() if not k.startswith("speed/")}
    print(f"largest final-metric difference: {max(differences.values())}")
    assert max(differences.values()) == 0.0, differences
    for name in ("best.ckpt", "last.ckpt"):
        a = load(tmp_path / "victim" / "checkpoints" / name)["state_dict"]
        b = load(tmp_path / "reference" / "checkpoints" / name)["state_dict"]
        assert all(torch.equal(a[k], b[k]) for k in b), name


def _crash_at_start(tmp_path: Path, extra: list[str] = ()) -> tuple[str, list[str]]:
    """A real run that dies before its first epoch (so it has its resume tags but no checkpoint)."""

    class Crash(Callback):
        def on_train_epoch_start(self, trainer, pl_module) -> None:
            raise RuntimeError("crash before the first epoch")

    overrides = [*QUICK, f"paths.root_dir={tmp_path}", *extra]
    with pytest.raises(RuntimeError, match="crash before"):
        fit_and_test(compose(overrides, output_dir=tmp_path / "run"), callbacks=[Crash()], overrides=overrides)
    return _run_id(tmp_path / "run"), overrides


def test_resume_refuses_a_different_config_and_allows_safe_keys(tmp_path: Path, mlflow_uri: str) -> None:
    run_id, overrides = _crash_at_start(tmp_path)
    client = MlflowClient(mlflow_uri)
    run = client.get_run(run_id)
    assert run.info.status == "FAILED" and json.loads(run.data.tags[OVERRIDES]) == overrides

    def resume_with(*extra: str):
        cli = [f"resume={run_id}", *extra]
        return prepare(compose(cli, output_dir=tmp_path / "new"), cli, client)

    with pytest.raises(ResumeConfigError, match=r"model.optimizer.lr: 0.003 -> 0.1"):
        resume_with("model.optimizer.lr=0.1")
    with pytest.raises(ResumeConfigError, match="model.name"):
        resume_with("model=crnn")
    cfg, point = resume_with("trainer.max_epochs=7")  # safe: only when to stop
    assert cfg.trainer.max_epochs == 7 and cfg.model.name == "cnn" and cfg.logger.mlflow.run_id == run_id
    assert cfg.paths.output_dir == str(tmp_path / "run")  # the run's own folder, not a new one
    assert point.checkpoint is None and point.new_overrides == ["trainer.max_epochs=7"]
    # The run folder names its run too.
    cli = [f"resume={tmp_path / 'run'}"]
    assert prepare(compose(cli), cli, client)[1].run_id == run_id


def test_resume_refuses_tampered_overrides_finished_and_live_runs(tmp_path: Path, mlflow_uri: str) -> None:
    run_id, _ = _crash_at_start(tmp_path)
    client = MlflowClient(mlflow_uri)
    cli = [f"resume={run_id}"]
    good = client.get_run(run_id).data.tags[OVERRIDES]
    # Tags are untrusted: an override that would name a class or read the environment is refused.
    for bad in ('["model.backbone._target_=os.system"]', '["seed=${oc.env:HOME}"]',
                '["model.backbone={_target_: builtins.exec}"]', '["hydra.run.dir=/"]', '{"a": 1}'):
        client.set_tag(run_id, OVERRIDES, bad)
        with pytest.raises((ResumeConfigError, ResumeError)):
            prepare(compose(cli), cli, client)
    client.set_tag(run_id, OVERRIDES, good)
    client.set_tag(run_id, CONFIG_HASH, "0" * 64)  # conf/ changed since, as far as the run knows
    with pytest.raises(ResumeConfigError, match="differs"):
        prepare(compose(cli), cli, client)
    client.set_terminated(run_id, "FINISHED")
    with pytest.raises(ResumeError, match="FINISHED"):
        prepare(compose(cli), cli, client)
    client.update_run(run_id, "RUNNING")  # this test's own process holds it: alive
    with pytest.raises(ResumeError, match="still running"):
        prepare(compose(cli), cli, client)
    with pytest.raises(ResumeError, match="no run folder .*not an MLflow run id .* to look up in sqlite"):
        prepare(compose(["resume=../not-a-run"]), [], client)


_WRITER = """
import sys, torch
from genre_lab.training.resume.lightning_checkpoints import AtomicCheckpointIO
io, i = AtomicCheckpointIO(), 0
print("ready", flush=True)
while True:
    i += 1
    # ~16 MB: each write takes long enough for a kill to land inside it
    io.save_checkpoint({"state_dict": {"w": torch.full((4_000_000,), float(i))}, "i": i}, sys.argv[1])
"""


@pytest.mark.slow
def test_kill9_while_writing_never_leaves_a_truncated_checkpoint(tmp_path: Path) -> None:
    target = tmp_path / "last.ckpt"
    rng = random.Random(time.time_ns())
    seen = []
    for _ in range(5):
        proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(target)], cwd=PROJECT_ROOT,
                                stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready"
        wait_for(target.is_file, proc, "the first checkpoint", timeout=120)
        time.sleep(rng.uniform(0.05, 0.6))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        state = load(target)  # the last complete write, never a torn one
        assert torch.equal(state["state_dict"]["w"], torch.full((4_000_000,), float(state["i"])))
        seen.append(state["i"])
    print(f"\ncheckpoints intact after kills at writes {seen}; "
          f"{len(list(tmp_path.glob('.last.ckpt.*.tmp')))} torn temporary file(s) left aside")
    # A torn file under the real name (what a plain write leaves) is a clear error naming it.
    target.write_bytes(target.read_bytes()[:1000])
    with pytest.raises(CheckpointLoadError, match="last.ckpt"):
        AtomicCheckpointIO().load_checkpoint(target)
