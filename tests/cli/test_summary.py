"""What train and evaluate print: no third-party noise, a short summary naming the run and the
commands that use it, every metric with `-v`. Real processes, as a user runs them, with Python's
default warning filters (no PYTHONWARNINGS)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

from genre_lab.cli.summary import headline, predict_command, ui_commands
from genre_lab.cli.verbosity import take_verbose_flag
from genre_lab.config import PROJECT_ROOT
from tests.training_procs import QUICK, only_run

#: What the commands used to print on every run (Lightning, torch and MLflow talking).
NOISE = ("litlogger", "LitLogger", "_pytree", "deprecated", "Seed set to", "GPU available", "TPU available",
         "Validating input example", "Downloading artifacts")
#: A default-ish tiny run: the default progress bar, the model logged; one epoch.
ARGS = [*(o for o in QUICK if not o.startswith(("trainer.max_epochs", "callbacks.progress_bar"))), "trainer.max_epochs=1"]


def command(module: str, args: list[str], uri: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    env["MLFLOW_TRACKING_URI"] = uri
    return subprocess.run([sys.executable, "-m", module, *args], cwd=PROJECT_ROOT, env=env, capture_output=True,
                          text=True, timeout=900)


def assert_quiet(proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    for noise in NOISE:
        assert noise not in out, (noise, out[-3000:])


@pytest.mark.slow
def test_train_and_evaluate_print_a_short_summary_and_no_noise(tmp_path: Path, mlflow_uri: str) -> None:
    run_dir = tmp_path / "run"
    proc = command("genre_lab", ["train", *ARGS, f"paths.root_dir={tmp_path}", f"hydra.run.dir={run_dir}"], mlflow_uri)
    assert_quiet(proc)
    client = MlflowClient(mlflow_uri)
    run_id = only_run(client)
    run = client.get_run(run_id)
    out = proc.stdout
    assert f"run {run.info.run_name} ({run_id})" in out
    for label in ("test track accuracy", "test track macro-F1", "val track accuracy"):
        assert label in out, out
    assert f"{run.data.metrics['test/track_acc']:.4f}" in out
    assert "test/track_auroc" not in out  # the full table only with -v
    assert re.search(rf"^Run folder: +{re.escape(str(run_dir))}$", out, re.M), out
    assert re.search(rf"^Checkpoint: +{re.escape(str(run_dir))}/checkpoints/best.ckpt$", out, re.M), out
    assert f"runs:/{run_id}/model" in out
    assert f"mlflow ui --backend-store-uri {mlflow_uri}" in out
    assert f"genre-lab predict {run_id} FILES" in out

    ev = command("genre_lab", ["evaluate", f"run={run_id}", f"paths.root_dir={tmp_path}",
                               f"hydra.run.dir={tmp_path / 'eval'}"], mlflow_uri)
    assert_quiet(ev)
    (evaluation,) = [r for r in client.search_runs([run.info.experiment_id]) if r.info.run_id != run_id]
    assert f"({evaluation.info.run_id})" in ev.stdout and re.search(rf"^Evaluated: +{run_id}$", ev.stdout, re.M)
    assert re.search(rf"^  test track accuracy +{evaluation.data.metrics['test/track_acc']:.4f}$", ev.stdout, re.M)
    assert "test/track_ece" not in ev.stdout


@pytest.mark.slow
def test_verbose_prints_every_metric(tmp_path: Path, mlflow_uri: str) -> None:
    """`-v` (here through `python -m genre_lab.cli.train`, Hydra never sees it): the full table."""
    proc = command("genre_lab.cli.train", ["-v", *ARGS, "log_model=false", f"paths.root_dir={tmp_path}",
                                           f"hydra.run.dir={tmp_path / 'run'}"], mlflow_uri)
    assert_quiet(proc)
    run = MlflowClient(mlflow_uri).get_run(only_run(MlflowClient(mlflow_uri)))
    for key in ("test/track_auroc", "test/chunk_ece", "val/track_log_loss", "val/loss"):
        assert key in proc.stdout
        assert f"{run.data.metrics[key]:.4f}" in proc.stdout
    assert "test track accuracy" in proc.stdout and "All metrics" not in proc.stdout


def test_verbose_flag_is_taken_out_of_the_hydra_overrides() -> None:
    assert take_verbose_flag(["model=cnn", "-v", "trainer.max_epochs=1"]) == ["model=cnn", "trainer.max_epochs=1"]
    assert take_verbose_flag(["--verbose"]) == []
    assert take_verbose_flag(["run_name=-v-x"]) == ["run_name=-v-x"]


def test_summary_lines_name_the_store_without_its_password() -> None:
    metrics = {"test/track_acc": 0.5, "test/track_f1": 0.25, "val/track_acc": 0.75, "val/loss": 1.0}
    assert headline(metrics, ("test/track_acc", "test/track_f1", "val/track_acc", "val/track_f1")) == [
        ("test track accuracy", 0.5), ("test track macro-F1", 0.25), ("val track accuracy", 0.75)]
    rows = dict(ui_commands("postgresql://me:secret@db/mlflow", "3", "abc"))
    assert rows["MLflow UI"] == "mlflow ui --backend-store-uri 'postgresql://me:***@db/mlflow'"
    assert rows["Run page"].endswith("/#/experiments/3/runs/abc")
    assert dict(ui_commands("https://mlflow.example.org/", "3", "abc")) == {
        "Run page": "https://mlflow.example.org/#/experiments/3/runs/abc"}
    assert predict_command("abc", "sqlite:////a b/mlflow.db") == \
        "genre-lab predict abc FILES --tracking-uri 'sqlite:////a b/mlflow.db'"
