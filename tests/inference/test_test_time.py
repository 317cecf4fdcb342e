"""Test-time choices of the track decision through the commands: `evaluate pooling=...
tta_shifts=...` logs them as params and evaluates the shifted windows; `predict --pooling
--tta-shifts` pools the Tagger's windows by the same function; bad values are refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf
from mlflow import MlflowClient

from genre_lab.audio.windows import shifted_starts
from genre_lab.cli.predict import main as predict_main
from genre_lab.config import PROJECT_ROOT, compose
from genre_lab.data.synthetic import render_clip
from genre_lab.inference import Tagger
from genre_lab.inference.evaluation import EvaluationError, evaluate
from genre_lab.training.fit import TrainResult
from tests.training_procs import train_in_own_store

SPLIT = "data.source.clips_per_class={train: 8, val: 2, test: 2}"


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[TrainResult, str]:
    return train_in_own_store(tmp_path_factory.mktemp("test_time"),
                              [SPLIT, "model=cnn", "trainer.max_epochs=1", "throughput_seconds=0", "log_model=false"],
                              without=("data.source.clips_per_class",))


def _evaluation_runs(uri: str) -> list:
    client = MlflowClient(uri)
    return client.search_runs([e.experiment_id for e in client.search_experiments()],
                              filter_string="tags.run_type = 'evaluation'", order_by=["start_time ASC"])


def test_evaluate_logs_the_pooling_and_evaluates_shifted_windows(trained, monkeypatch) -> None:
    result, uri = trained
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    base = [f"run={result.run_id}", "progress=false", "explain.enabled=false"]
    plain = evaluate(compose([*base, "pooling=mean"], config_name="evaluate"))
    tta = evaluate(compose([*base, "pooling=logmean", "tta_shifts=2"], config_name="evaluate"))
    params = {r.info.run_id: r.data.params for r in _evaluation_runs(uri)}
    assert params[plain.run_id]["pooling"] == "mean" and params[plain.run_id]["tta_shifts"] == "1"
    assert params[tta.run_id]["pooling"] == "logmean" and params[tta.run_id]["tta_shifts"] == "2"
    # 4 s test clips, 2 s windows 2 s apart: 2 windows each; shifted by 1 s, one more.
    assert params[plain.run_id]["windows"] == str(2 * 20) and params[tta.run_id]["windows"] == str(3 * 20)
    assert 0.0 <= tta.metrics["test/track_acc"] <= 1.0
    for bad, setting in (("pooling=median", "pooling must be one of"), ("tta_shifts=0", "tta_shifts must be")):
        with pytest.raises(EvaluationError, match=setting):
            evaluate(compose([*base, bad], config_name="evaluate"))


@pytest.mark.slow
def test_evaluate_command_takes_pooling_and_shifts(trained, tmp_path: Path) -> None:
    result, uri = trained
    proc = subprocess.run(
        [sys.executable, "-m", "genre_lab.cli.evaluate", f"run={result.run_id}", "pooling=max", "tta_shifts=3",
         "progress=false", "explain.enabled=false", f"hydra.run.dir={tmp_path}/hydra"],
        cwd=PROJECT_ROOT, env={**os.environ, "MLFLOW_TRACKING_URI": uri}, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = _evaluation_runs(uri)[-1]
    assert run.data.params["pooling"] == "max" and run.data.params["tta_shifts"] == "3"


def test_predict_pools_the_windows_as_asked(trained, tmp_path: Path) -> None:
    result, _ = trained
    song = tmp_path / "song.wav"
    sf.write(str(song), render_clip("jazz", seed=3, seconds=7.0, sample_rate=16000), 16000)
    tagger = Tagger.load(result.best_checkpoint, tta_shifts=2)
    wave = tagger.decode(song)
    probs, starts = tagger.window_probabilities(wave)
    assert starts == shifted_starts(len(wave), tagger.chunk, tagger.hop, 2) and len(starts) > 4
    out = tmp_path / "tags.json"
    assert predict_main([result.best_checkpoint, str(song), "--pooling", "max", "--tta-shifts", "2", "--top-k", "10",
                         "--format", "json", "--output", str(out), "--no-progress"]) == 0
    (row,) = json.loads(out.read_text())
    got = {g["label"]: g["probability"] for g in row["genres"]}
    peak = probs.max(0).values
    expected = peak / peak.sum()
    assert [got[c] for c in tagger.classes] == pytest.approx(expected.tolist(), abs=1e-5)
    assert predict_main([result.best_checkpoint, str(song), "--tta-shifts", "0", "--no-progress"]) == 2
    with pytest.raises(SystemExit):  # argparse refuses an unknown pooling
        predict_main([result.best_checkpoint, str(song), "--pooling", "median"])
