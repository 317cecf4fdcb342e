"""`genre_lab.cli.evaluate`: track-level metrics recomputed by hand from the model's own window
outputs, logged to a new MLflow run linked to the trained one."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from mlflow import MlflowClient

from genre_lab.config import PROJECT_ROOT, compose
from genre_lab.data import AudioSplit, SyntheticSource
from genre_lab.data.datamodule import chunk_starts
from genre_lab.inference.evaluation import align_classes, evaluate
from genre_lab.inference import Tagger
from genre_lab.training.lightning_module import CONFIG_KEY, GenreClassifier
from genre_lab.training.fit import TrainResult
from tests.training_procs import train_in_own_store

#: The trained model's test split; evaluation below regenerates the same clips.
TEST_SPLIT = {"train": 12, "val": 4, "test": 3}
CLIP_SECONDS = 4.0


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[TrainResult, str]:
    clips = "{" + ", ".join(f"{k}: {v}" for k, v in TEST_SPLIT.items()) + "}"
    return train_in_own_store(tmp_path_factory.mktemp("evaluate_model"),
                              ["model=cnn", "trainer.max_epochs=2", "throughput_seconds=0",
                               f"data.source.clips_per_class={clips}", "data.eval_hop_seconds=1.0"],
                              without=("data.eval_hop_seconds",))


def _by_hand(checkpoint: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(true labels, predicted labels, track probabilities): every 2 s window 1 s apart,
    softmax, mean per clip, argmax."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    config = state[CONFIG_KEY]
    model = GenreClassifier.from_config(config, config["classes"])
    model.load_state_dict(state["state_dict"])
    model.eval()
    sr = config["data"]["sample_rate"]
    chunk, hop = int(config["data"]["chunk_seconds"] * sr), int(config["data"]["eval_hop_seconds"] * sr)
    split = SyntheticSource(TEST_SPLIT, CLIP_SECONDS, seed=0).load(sr)["test"]
    probs = []
    with torch.inference_mode():
        for wave in split.waves:
            windows = torch.stack([torch.from_numpy(np.array(wave[s : s + chunk])) for s in chunk_starts(len(wave), chunk, hop)])
            probs.append(model(windows).softmax(1).mean(0).numpy())
    track = np.stack(probs)
    return np.array(split.labels), track.argmax(1), track


def _macro_f1(true: np.ndarray, pred: np.ndarray, n: int) -> float:
    scores = []
    for c in range(n):
        tp = np.sum((pred == c) & (true == c))
        fp = np.sum((pred == c) & (true != c))
        fn = np.sum((pred != c) & (true == c))
        scores.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    return float(np.mean(scores))


def test_metrics_equal_a_hand_computation_and_link_the_run(trained, monkeypatch: pytest.MonkeyPatch) -> None:
    result, uri = trained
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    evaluated = evaluate(compose([f"run={result.run_id}", "progress=false"], config_name="evaluate"))

    true, pred, _ = _by_hand(result.best_checkpoint)
    n = len(result.classes)
    assert len(true) == n * TEST_SPLIT["test"] == 30
    accuracy, f1 = float(np.mean(true == pred)), _macro_f1(true, pred, n)
    assert evaluated.metrics["test/track_acc"] == pytest.approx(accuracy, abs=1e-6)
    assert evaluated.metrics["test/track_f1"] == pytest.approx(f1, abs=1e-6)
    # Same model, same split, same windows: the training run's own test numbers.
    assert evaluated.metrics["test/track_acc"] == pytest.approx(result.metrics["test/track_acc"], abs=1e-6)

    client = MlflowClient(uri)
    run = client.get_run(evaluated.run_id)
    assert run.info.status == "FINISHED" and evaluated.run_id != result.run_id
    assert run.info.experiment_id == client.get_run(result.run_id).info.experiment_id
    assert run.data.tags["evaluated_run_id"] == result.run_id
    assert run.data.tags["dataset"] == "synthetic" and run.data.tags["split"] == "test"
    assert run.data.metrics["test/track_acc"] == pytest.approx(accuracy, abs=1e-6)
    assert run.data.params["data.chunk_seconds"] == "2.0" and run.data.params["tracks"] == "30"

    with_dir = Path(client.download_artifacts(evaluated.run_id, "test"))
    matrix = np.array(json.loads((with_dir / "confusion_matrix.json").read_text())["matrix"])
    expected = np.zeros((n, n), dtype=int)
    np.add.at(expected, (true, pred), 1)
    assert (matrix == expected).all()
    report = json.loads((with_dir / "per_class_report.json").read_text())
    assert [report[c]["support"] for c in result.classes] == [TEST_SPLIT["test"]] * n
    assert (with_dir / "confusion_matrix.png").stat().st_size > 0


def test_tagging_a_clip_gives_the_evaluated_distribution(trained) -> None:
    """`predict` defaults to the model's evaluation windows: a test clip tagged as a waveform
    gets exactly the track probabilities evaluation averages."""
    result, _ = trained
    tagger = Tagger.load(result.best_checkpoint)
    assert tagger.hop_seconds == 1.0 and tagger.chunk_seconds == 2.0  # data.eval_hop_seconds, not one chunk
    _, _, expected = _by_hand(result.best_checkpoint)
    split = SyntheticSource(TEST_SPLIT, CLIP_SECONDS, seed=0).load(tagger.sample_rate)["test"]
    for wave, probs in zip(split.waves, expected):
        got = tagger.tag(np.asarray(wave), sample_rate=tagger.sample_rate).distribution
        assert [got[c] for c in result.classes] == pytest.approx(probs.tolist(), abs=1e-5)


def test_run_config_may_only_instantiate_datasets(trained, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run's downloaded config.yaml is data: a `_target_` outside genre_lab.data is refused
    before anything is instantiated or any run is logged."""
    result, uri = trained
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    client = MlflowClient(uri)
    experiment = client.get_run(result.run_id).info.experiment_id
    crafted = client.create_run(experiment, run_name="crafted").info.run_id
    checkpoint = tmp_path / "best.ckpt"
    shutil.copy(result.best_checkpoint, checkpoint)
    client.log_artifact(crafted, str(checkpoint), "checkpoints")
    marker = tmp_path / "pwned"
    client.log_text(crafted, f"data:\n  _target_: os.system\n  _args_: ['touch {marker}']\n", "config.yaml")
    client.set_terminated(crafted)

    before = len(client.search_runs([experiment]))
    with pytest.raises(ValueError, match=r"_target_='os.system' is not allowed"):
        evaluate(compose([f"run={crafted}", "progress=false"], config_name="evaluate"))
    assert not marker.exists()
    assert len(client.search_runs([experiment])) == before


def test_checkpoint_needs_a_dataset_and_fails_before_any_run(trained, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result, _ = trained
    uri = f"sqlite:///{tmp_path / 'fresh.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    with pytest.raises(ValueError, match="pass data=<dataset config>"):
        evaluate(compose([f"run={result.best_checkpoint}"], config_name="evaluate"))
    client = MlflowClient(uri)
    assert not any(client.search_runs([e.experiment_id]) for e in client.search_experiments())


def test_dataset_with_fewer_classes_is_relabelled() -> None:
    waves = [np.zeros(4, dtype=np.float32)] * 3
    split = AudioSplit(["a", "b", "c"], [0, 1, 0], waves)
    aligned = align_classes(split, ["rock", "blues"], ["blues", "jazz", "rock"])
    assert aligned.labels == [2, 0, 2]
    with pytest.raises(ValueError, match="never learned.*'polka'"):
        align_classes(split, ["rock", "polka"], ["blues", "rock"])


@pytest.mark.slow
def test_cli_evaluates_a_checkpoint_on_another_split(trained, tmp_path: Path) -> None:
    result, uri = trained
    proc = subprocess.run(
        [sys.executable, "-m", "genre_lab.cli.evaluate", f"run={result.best_checkpoint}", "data=synthetic",
         "data.source.clips_per_class={train: 1, val: 2, test: 1}", "data.source.clip_seconds=3.0",
         "split=val", "progress=false", f"hydra.run.dir={tmp_path}/hydra"],
        cwd=PROJECT_ROOT, env={**os.environ, "MLFLOW_TRACKING_URI": uri}, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "val track accuracy" in proc.stdout
    client = MlflowClient(uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()],
                              filter_string="tags.run_type = 'evaluation' and tags.split = 'val'")
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED" and "evaluated_run_id" not in run.data.tags
    assert run.data.params["tracks"] == "20" and run.data.params["data.chunk_seconds"] == "2.0"
    assert 0.0 <= run.data.metrics["val/track_acc"] <= 1.0


def test_command_takes_the_model_positional_or_as_run(trained, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys) -> None:
    """`genre-lab evaluate <run id>` is `genre-lab evaluate run=<run id>`: the same model on the
    same split, logged as a run linked to it with the same metrics."""
    from genre_lab.cli import main

    result, uri = trained
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    client = MlflowClient(uri)
    experiment = client.get_run(result.run_id).info.experiment_id
    logged = []
    for i, model in enumerate((result.run_id, f"run={result.run_id}")):
        before = {r.info.run_id for r in client.search_runs([experiment])}
        assert main(["evaluate", model, "progress=false", "explain.enabled=false", f"hydra.run.dir={tmp_path}/h{i}"]) == 0
        (new,) = [r for r in client.search_runs([experiment]) if r.info.run_id not in before]
        assert new.data.tags["evaluated_run_id"] == result.run_id and new.data.params["run"] == result.run_id
        logged.append(new.data.metrics)
    assert logged[0] == logged[1] and "test/track_acc" in logged[0]
    assert result.run_id in "".join(capsys.readouterr().out.split())  # the summary names the evaluated run


@pytest.mark.slow
def test_perturbed_evaluation_logs_a_degradation_curve(trained, monkeypatch: pytest.MonkeyPatch) -> None:
    """Level 0 is the plain evaluation; louder noise lowers accuracy; every kind logs each level."""
    result, uri = trained
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    plain = evaluate(compose([f"run={result.run_id}", "progress=false", "explain.enabled=false"], config_name="evaluate"))
    noisy = evaluate(compose([f"run={result.run_id}", "progress=false", "explain.enabled=false", "perturb=white_noise",
                              "perturb_levels=[inf,10,0,-10,-20]"], config_name="evaluate"))
    curve = [noisy.metrics[f"perturb/white_noise/{level}/track_acc"] for level in ("none", "10", "0", "-10", "-20")]
    assert curve[0] == pytest.approx(plain.metrics["test/track_acc"]) == pytest.approx(noisy.metrics["test/track_acc"])
    # Stronger noise, lower accuracy: on average down each step, and well down at the end.
    assert np.mean(np.diff(curve)) < 0 and curve[-1] <= curve[0] - 0.2, curve
    client = MlflowClient(uri)
    run = client.get_run(noisy.run_id)
    assert json.loads(run.data.params["perturb.white_noise"]) == ["none", "10", "0", "-10", "-20"]
    arts = {a.path for a in client.list_artifacts(noisy.run_id, "perturb")}
    assert {"perturb/curves.json", "perturb/degradation.png"} <= arts

    every = evaluate(compose([f"run={result.run_id}", "progress=false", "explain.enabled=false", "perturb=all"],
                             config_name="evaluate"))
    for kind, levels in (("time_stretch", ("1", "1.1", "1.2", "1.35", "1.5")), ("pitch_shift", ("0", "1", "2", "4", "6")),
                         ("compression", ("1", "2", "4", "10", "20")), ("white_noise", ("none", "40", "20", "10", "0"))):
        values = [every.metrics[f"perturb/{kind}/{level}/track_acc"] for level in levels]
        assert values[0] == pytest.approx(plain.metrics["test/track_acc"]), kind
        assert all(0.0 <= v <= 1.0 for v in values), (kind, values)


def test_a_bad_perturbation_is_refused_before_any_run(trained, monkeypatch: pytest.MonkeyPatch) -> None:
    from genre_lab.inference.evaluation import EvaluationError

    result, uri = trained
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    client = MlflowClient(uri)
    before = len(client.search_runs([client.get_run(result.run_id).info.experiment_id]))
    for overrides, message in ((["perturb=reverb"], "perturb must be one of"),
                               (["perturb=pitch_shift", "perturb_levels=[0,99]"], "out of range"),
                               (["perturb=all", "perturb_levels=[1]"], "one perturb kind")):
        with pytest.raises(EvaluationError, match=message):
            evaluate(compose([f"run={result.run_id}", "progress=false", *overrides], config_name="evaluate"))
    assert len(client.search_runs([client.get_run(result.run_id).info.experiment_id])) == before
