"""A real `mlflow models serve` process answering genre requests for a model logged by training."""

from __future__ import annotations

import base64
import io
import os
import signal
import socket
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pytest
import requests
import soundfile as sf
from mlflow.models import Model

from genre_lab.config import PROJECT_ROOT, compose
from genre_lab.data.synthetic import render_clip
from genre_lab.training import fit_and_test


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wav_base64(wave: np.ndarray, sr: int) -> str:
    buf = io.BytesIO()
    sf.write(buf, wave, sr, format="WAV", subtype="PCM_16")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _wait_ready(proc: subprocess.Popen, url: str, log: Path, limit: float = 120.0) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if requests.get(f"{url}/ping", timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.5)
    pytest.fail(f"server not ready after {limit:.0f} s:\n{log.read_text()[-3000:]}")


@pytest.mark.slow
def test_served_model_answers_audio_with_top_k_genres(mlflow_uri: str, tiny_overrides: list[str], tmp_path: Path) -> None:
    cfg = compose([*tiny_overrides, "model=cnn", "trainer.max_epochs=1", "throughput_seconds=0"], output_dir=tmp_path / "out")
    result = fit_and_test(cfg)
    classes = result.classes

    # The logged model documents its request shape: signature and a ready-to-send example.
    model_dir = tmp_path / "model"
    from mlflow.artifacts import download_artifacts

    download_artifacts(f"runs:/{result.run_id}/model", dst_path=str(model_dir), tracking_uri=mlflow_uri)
    meta = Model.load(str(model_dir / "model"))
    assert [c.name for c in meta.signature.inputs.inputs] == ["audio_base64", "waveform", "sample_rate"]
    assert (model_dir / "model" / "serving_input_example.json").is_file()
    # Its requirements are genre_lab's own dependencies, pinned, without the dev extra.
    requirements = (model_dir / "model" / "requirements.txt").read_text().split()
    for name in ("torchmetrics", "soxr", "hydra-core", "nnAudio", "soundfile", "lightning", "rich"):
        assert f"{name}=={version(name)}" in requirements, requirements
    assert not any(r.startswith("pytest") for r in requirements)

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    # `mlflow models serve` starts uvicorn by name: the venv's bin must be on PATH.
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_uri,
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "models", "serve", "-m", f"runs:/{result.run_id}/model",
             "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)],
            cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        _wait_ready(proc, url, log)
        song = render_clip("rock", seed=3, seconds=5.0, sample_rate=22050)
        request = {
            "dataframe_records": [
                {"audio_base64": _wav_base64(song, 22050)},
                {"audio_base64": base64.b64encode(b"definitely not audio" * 20).decode("ascii")},
            ],
            "params": {"top_k": 3},
        }
        response = requests.post(f"{url}/invocations", json=request, timeout=60)
        assert response.status_code == 200, response.text
        good, bad = response.json()["predictions"]
        assert good["error"] is None and len(good["genres"]) == 3
        assert all(g["label"] in classes for g in good["genres"])
        probs = [g["probability"] for g in good["genres"]]
        assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6
        assert bad["genres"] == [] and "not a recognised audio format" in bad["error"]

        # A raw waveform with its rate, and a timeline of 2 s segments.
        waveform = {"dataframe_records": [{"waveform": song[::2].round(5).tolist(), "sample_rate": 11025}],
                    "params": {"top_k": 2, "segment_seconds": 2.0}}
        response = requests.post(f"{url}/invocations", json=waveform, timeout=60)
        assert response.status_code == 200, response.text
        (row,) = response.json()["predictions"]
        assert row["error"] is None and [g["label"] in classes for g in row["genres"]] == [True, True]
        assert [s["start"] for s in row["segments"]] == [0.0, 2.0, 4.0]
    finally:
        # The server forks workers: end the whole session it leads, then reap it.
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
