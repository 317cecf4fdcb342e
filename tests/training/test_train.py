"""End-to-end training on tiny synthetic data, tracked in a real MLflow sqlite store."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

from genre_lab.config import PROJECT_ROOT, compose
from genre_lab.training.lightning_module import GenreClassifier
from genre_lab.training.fit import fit_and_test


def _artifacts(client: MlflowClient, run_id: str, path: str = "") -> set[str]:
    out: set[str] = set()
    for item in client.list_artifacts(run_id, path):
        out |= _artifacts(client, run_id, item.path) if item.is_dir else {item.path}
    return out


@pytest.mark.slow
@pytest.mark.parametrize("model", ["cnn", "rnn", "crnn"])
def test_each_model_learns_and_is_tracked(model: str, mlflow_uri: str, tiny_overrides: list[str], tmp_path: Path) -> None:
    cfg = compose([f"model={model}", *tiny_overrides], output_dir=tmp_path / "out")
    result = fit_and_test(cfg)
    # 10 classes: chance is 0.1. Held-out test clips come from seeds never seen in training.
    assert result.metrics["test/track_acc"] >= 0.5, result.metrics

    client = MlflowClient(mlflow_uri)
    run = client.get_run(result.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["model.name"] == model
    assert run.data.params["model.optimizer.lr"] == str(cfg.model.optimizer.lr)
    assert run.data.tags["model"] == model and run.data.tags["dataset"] == "synthetic"
    assert run.data.tags["features"] == "logmel" and run.data.tags["git_commit"]
    for key in ("train/loss", "train/acc", "val/loss", "val/track_acc", "test/track_acc",
                "test/track_f1", "test/chunk_acc", "frontend/audio_sec_per_sec"):
        assert key in run.data.metrics, key
    # Cost beside accuracy: training windows per second, and test audio tagged per second.
    assert run.data.metrics["speed/train_examples_per_s"] > 0 and run.data.metrics["speed/test_audio_s_per_s"] > 0
    assert run.data.metrics["test/track_acc"] == pytest.approx(result.metrics["test/track_acc"])
    # One value per epoch for the curves compared in the UI.
    history = client.get_metric_history(result.run_id, "val/loss")
    assert len(history) == cfg.trainer.max_epochs
    # The reported validation numbers are those of the kept (lowest val/loss) epoch.
    assert result.metrics["val/loss"] == pytest.approx(min(m.value for m in history))
    assert any(k.startswith("lr") for k in run.data.metrics)
    arts = _artifacts(client, result.run_id)
    for name in ("config.yaml", "test/confusion_matrix.png", "test/per_class_report.json",
                 "checkpoints/best.ckpt", "frontend_throughput.json", "data/scan_report.json"):
        assert name in arts, (name, arts)
    # The servable pyfunc is an MLflow 3 LoggedModel, output of this run.
    (logged,) = client.search_logged_models([run.info.experiment_id], filter_string=f"source_run_id = '{result.run_id}'")
    model_files = {a.path for a in client.list_logged_model_artifacts(logged.model_id)}
    model_files |= {a.path for a in client.list_logged_model_artifacts(logged.model_id, "artifacts")}
    assert {"MLmodel", "artifacts/weights.pt"} <= model_files, model_files


def test_crash_marks_run_failed(mlflow_uri: str, tiny_overrides: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(self, batch, batch_idx):
        raise RuntimeError("boom in training_step")

    monkeypatch.setattr(GenreClassifier, "training_step", explode)
    cfg = compose(["model=cnn", *tiny_overrides], output_dir=tmp_path / "out")
    with pytest.raises(RuntimeError, match="boom"):
        fit_and_test(cfg)
    client = MlflowClient(mlflow_uri)
    (run,) = client.search_runs([client.get_experiment_by_name("genre_lab").experiment_id])
    assert run.info.status == "FAILED"
    assert "boom in training_step" in run.data.tags["error"]


@pytest.mark.parametrize(
    "override, match",
    [("data.chunk_seconds=5.0", "data.chunk_seconds=5"), ("trainer.precision=bogus", "bogus")],
)
def test_bad_setting_fails_before_any_run(
    mlflow_uri: str, tiny_overrides: list[str], tmp_path: Path, override: str, match: str
) -> None:
    cfg = compose([*tiny_overrides, override], output_dir=tmp_path / "out")
    with pytest.raises(Exception, match=match):
        fit_and_test(cfg)
    assert MlflowClient(mlflow_uri).get_experiment_by_name("genre_lab") is None


def _cli(args: list[str], tmp_path: Path, uri: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    return subprocess.run(
        [sys.executable, "-m", "genre_lab.cli.train", *args, f"hydra.sweep.dir={tmp_path}/multi", f"hydra.run.dir={tmp_path}/run"],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=900,
    )


def test_unknown_option_is_a_clear_error(tmp_path: Path, mlflow_uri: str) -> None:
    proc = _cli(["trainer.max_epoch=3"], tmp_path, mlflow_uri)
    assert proc.returncode != 0
    assert "max_epoch" in proc.stderr


@pytest.mark.slow
def test_multirun_gives_three_comparable_runs(tmp_path: Path, mlflow_uri: str, tiny_overrides: list[str]) -> None:
    quick = [o for o in tiny_overrides if not o.startswith("trainer.max_epochs")]
    proc = _cli(["-m", "model=cnn,rnn,crnn", *quick, "trainer.max_epochs=1", "data.train_chunks_per_clip=1"], tmp_path, mlflow_uri)
    assert proc.returncode == 0, proc.stderr[-3000:]
    client = MlflowClient(mlflow_uri)
    runs = client.search_runs([client.get_experiment_by_name("genre_lab").experiment_id])
    assert sorted(r.data.tags["model"] for r in runs) == ["cnn", "crnn", "rnn"]
    assert all(r.info.status == "FINISHED" for r in runs)
    names = [set(r.data.metrics) for r in runs]
    assert names[0] == names[1] == names[2] and "test/track_acc" in names[0]


@pytest.mark.slow
def test_same_seed_same_run(mlflow_uri: str, tiny_overrides: list[str], tmp_path: Path) -> None:
    quick = [*tiny_overrides, "trainer.max_epochs=2", "model=crnn", "test=false", "throughput_seconds=0"]
    first = fit_and_test(compose(quick, output_dir=tmp_path / "a"))
    again = fit_and_test(compose(quick, output_dir=tmp_path / "b"))
    other = fit_and_test(compose([*quick, "seed=7"], output_dir=tmp_path / "c"))
    assert first.metrics["val/loss"] == pytest.approx(again.metrics["val/loss"], abs=1e-6)
    assert first.metrics["val/loss"] != pytest.approx(other.metrics["val/loss"], abs=1e-6)
