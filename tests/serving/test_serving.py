"""A real `mlflow models serve` process answering genre requests for a model logged by training."""

from __future__ import annotations

import base64
import copy
import io
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest
import requests
import soundfile as sf
import torch
from mlflow.models import Model

from genre_lab.config import PROJECT_ROOT, compose
from genre_lab.data.synthetic import GENRES, render_clip
from genre_lab.inference.limits import ENV_MAX_SECONDS, ENV_MAX_SEGMENTS, ENV_MAX_UPLOAD_MB, ServingLimits
from genre_lab.models.mlflow_model import save_tagger_model
from genre_lab.training.lightning_module import GenreClassifier
from genre_lab.tracking.servers import free_port, stop_session, wait_ready
from genre_lab.training.fit import fit_and_test


def _wav_base64(wave: np.ndarray, sr: int) -> str:
    buf = io.BytesIO()
    sf.write(buf, wave, sr, format="WAV", subtype="PCM_16")
    return base64.b64encode(buf.getvalue()).decode("ascii")


@pytest.mark.slow
@pytest.mark.server
def test_served_model_answers_audio_with_top_k_genres(mlflow_uri: str, tiny_overrides: list[str], tmp_path: Path) -> None:
    cfg = compose([*tiny_overrides, "model=cnn", "trainer.max_epochs=1", "throughput_seconds=0"], output_dir=tmp_path / "out")
    result = fit_and_test(cfg)
    classes = result.classes

    # The logged model documents its request shape: signature and a ready-to-send example.
    model_dir = tmp_path / "model"
    from mlflow.artifacts import download_artifacts

    download_artifacts(f"runs:/{result.run_id}/model", dst_path=str(model_dir), tracking_uri=mlflow_uri)
    meta = Model.load(str(model_dir / "model"))
    # No input schema (MLflow's enforcement would drop records carrying none of the fields):
    # the fields are listed in the metadata and checked per record by the model.
    assert meta.signature.inputs is None and meta.signature.params is not None
    assert meta.metadata["request_fields"] == ["audio_base64", "waveform", "sample_rate"]
    assert (model_dir / "model" / "serving_input_example.json").is_file()
    # Its requirements are genre_lab's own dependencies, pinned, without the dev extra.
    requirements = (model_dir / "model" / "requirements.txt").read_text().split()
    for name in ("torchmetrics", "soxr", "hydra-core", "nnAudio", "soundfile", "lightning", "rich"):
        assert f"{name}=={version(name)}" in requirements, requirements
    assert not any(r.startswith("pytest") for r in requirements)

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    # `mlflow models serve` starts uvicorn by name: the venv's bin must be on PATH.
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_uri, ENV_MAX_SECONDS: "6",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "models", "serve", "-m", f"runs:/{result.run_id}/model",
             "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)],
            cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        wait_ready(proc, f"{url}/ping", log)
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

        # Bad records next to good ones: each gets its error, the request still answers 200.
        half = song[::2].round(5).tolist()
        mixed = {"dataframe_records": [
            {"waveform": half, "sample_rate": 11025},
            {"waveform": half},  # no sample_rate: was HTTP 400 for the whole request
            {"waveform": half, "sample_rate": 1e12},  # was "silent audio"
            {"waveform": [0.5] * 3 * 11025, "sample_rate": 11025},  # DC only: a warning
            {"audio_base64": _wav_base64(song, 22050)},
            {"waveform": [0.1, -0.1] * 4 * 11025, "sample_rate": 11025},  # 8 s, above the server's 6 s
        ], "params": {"top_k": 2}}
        response = requests.post(f"{url}/invocations", json=mixed, timeout=60)
        assert response.status_code == 200, response.text
        rows = response.json()["predictions"]
        assert [r["error"] is None for r in rows] == [True, False, False, True, True, False]
        assert "a waveform needs its sample_rate" in rows[1]["error"]
        assert "sample_rate must be between 1000 and 384000 Hz" in rows[2]["error"]
        assert "constant DC offset" in rows[3]["warning"] and rows[0]["warning"] is None
        assert "longer than the limit of 6 s (GENRE_LAB_SERVE_MAX_SECONDS)" in rows[5]["error"]
        # A timeline of 1 ms segments (was 30,000 segments for 30 s) and a top_k of 0: every
        # record's error, still HTTP 200.
        for params, fragment in (({"segment_seconds": 0.001}, "at least 0.5 s"), ({"top_k": 0}, "top_k must be")):
            response = requests.post(f"{url}/invocations", json={**mixed, "params": params}, timeout=60)
            assert response.status_code == 200, response.text
            assert all(fragment in r["error"] for r in response.json()["predictions"])
    finally:
        # The server forks workers: end the whole session it leads, then reap it.
        stop_session(proc)


# -- in-process pyfunc: the same schema enforcement as the server, one bound at a time ----------

SR = 16000


def _predict(folder: Path, records: list[dict], **params: object) -> list[dict]:
    model = mlflow.pyfunc.load_model(str(folder))
    return model.predict(pd.DataFrame(records), params=params or None).to_dict("records")


def _ok(row: dict, k: int = 3) -> bool:
    return row["error"] is None and len(row["genres"]) == k and all(g["label"] in GENRES for g in row["genres"])


def test_each_bad_record_gets_its_own_error(model_folder: Path) -> None:
    song = render_clip("rock", seed=3, seconds=3.0, sample_rate=SR)
    wave = song.tolist()
    cases = [
        ({"waveform": wave, "sample_rate": SR}, None),
        ({"waveform": wave}, "a waveform needs its sample_rate"),  # was HTTP 400 for the request
        ({"waveform": wave, "sample_rate": 1e12}, "sample_rate must be between 1000 and 384000 Hz, got 1e+12"),
        ({"waveform": wave, "sample_rate": 999}, "between 1000 and 384000 Hz, got 999"),
        ({"waveform": wave, "sample_rate": 384_001}, "between 1000 and 384000 Hz"),
        ({"waveform": wave, "sample_rate": 22050.5}, "a whole number of Hz"),
        ({"waveform": wave, "sample_rate": "fast"}, "sample_rate must be a number"),
        ({"audio_base64": _wav_base64(song, SR)}, None),  # a file upload beside waveforms
        ({"audio_base64": "!!not base64!!"}, "audio_base64 is not valid base64"),
        ({"audio_base64": 12}, "audio_base64 must be a base64 string"),
        ({"audio_base64": _wav_base64(song, SR), "waveform": wave, "sample_rate": SR}, "not both"),
        ({"waveform": "loud", "sample_rate": SR}, "waveform must be a list of numbers"),
        ({"waveform": [[0.1, 0.2], [0.3]], "sample_rate": SR}, "waveform must be a list of numbers"),
        ({"waveform": [[0.1, 0.2], [0.3, 0.4]], "sample_rate": SR}, "flat list of mono samples"),
        ({}, "neither audio_base64 nor waveform"),
        ({"waveform": wave, "sample_rate": 8000}, None),  # the lowest common rate still tags
    ]
    rows = _predict(model_folder, [record for record, _ in cases])
    assert len(rows) == len(cases)
    for (record, fragment), row in zip(cases, rows):
        if fragment is None:
            assert _ok(row) and row["warning"] is None, row
        else:
            assert row["genres"] == [] and fragment in row["error"], (sorted(record), row)
    # Record 0 and the upload of the same audio agree.
    assert rows[0]["genres"][0]["label"] == rows[7]["genres"][0]["label"]


@pytest.mark.parametrize(("params", "fragment"), [
    ({"segment_seconds": 1e-6}, "segment_seconds must be 0 (no timeline) or at least 0.5 s, got 1e-06"),  # was "range() arg 3"
    ({"segment_seconds": 0.001}, "at least 0.5 s, got 0.001"),  # was 3000 segments for 3 s
    ({"segment_seconds": -2.0}, "at least 0.5 s"),
    ({"top_k": 0}, "top_k must be a whole number from 1 to 10 (the model's classes), got 0"),
    ({"top_k": 11}, "from 1 to 10"),
    ({"top_k": -3}, "from 1 to 10"),
])
def test_params_out_of_bounds_are_every_records_error(model_folder: Path, params: dict, fragment: str) -> None:
    song = render_clip("pop", seed=1, seconds=3.0, sample_rate=SR)
    rows = _predict(model_folder, [{"waveform": song.tolist(), "sample_rate": SR}, {"audio_base64": _wav_base64(song, SR)}], **params)
    assert [fragment in (r["error"] or "") for r in rows] == [True, True], rows
    assert all(r["genres"] == [] for r in rows)


def test_params_at_their_bounds_tag(model_folder: Path) -> None:
    song = render_clip("jazz", seed=2, seconds=3.0, sample_rate=SR)
    (row,) = _predict(model_folder, [{"waveform": song.tolist(), "sample_rate": SR}], top_k=10, segment_seconds=0.5)
    assert _ok(row, 10) and [s["start"] for s in row["segments"]] == [i / 2 for i in range(6)]
    (row,) = _predict(model_folder, [{"waveform": song.tolist(), "sample_rate": SR}], top_k=1, segment_seconds=0)
    assert _ok(row, 1) and row["segments"] is None


def test_duration_upload_and_segment_limits_come_from_the_environment(model_folder: Path, monkeypatch) -> None:
    assert ServingLimits() == ServingLimits.from_env({})
    assert (ServingLimits().max_seconds, ServingLimits().max_upload_bytes, ServingLimits().max_segments) == (1200.0, 256 * 2**20, 2400)
    monkeypatch.setenv(ENV_MAX_SECONDS, "4")
    monkeypatch.setenv(ENV_MAX_UPLOAD_MB, "0.15")  # 157 kB: 4.9 s of 16 kHz PCM_16 WAV
    monkeypatch.setenv(ENV_MAX_SEGMENTS, "5")
    short, long = (render_clip("metal", seed=4, seconds=s, sample_rate=SR) for s in (3.0, 4.5))
    big = render_clip("metal", seed=4, seconds=5.5, sample_rate=SR)
    records = [
        {"waveform": short.tolist(), "sample_rate": SR},
        {"waveform": long.tolist(), "sample_rate": SR},
        {"audio_base64": _wav_base64(long, SR)},  # refused from its header, before decoding
        {"audio_base64": _wav_base64(big, SR)},
        {"audio_base64": _wav_base64(short, SR)},
    ]
    rows = _predict(model_folder, records)
    assert _ok(rows[0]) and _ok(rows[4])
    assert "audio of 4.5 s is longer than the limit of 4 s (GENRE_LAB_SERVE_MAX_SECONDS)" in rows[1]["error"]
    assert "audio of 4.5 s is longer than the limit of 4 s" in rows[2]["error"]
    assert "decodes to 0.2 MiB, above the limit of 0.15 MiB (GENRE_LAB_SERVE_MAX_UPLOAD_MB)" in rows[3]["error"]
    rows = _predict(model_folder, records[:1], segment_seconds=0.5)
    assert "gives 6 segments for 3.0 s of audio, above the limit of 5 (GENRE_LAB_SERVE_MAX_SEGMENTS)" in rows[0]["error"]
    assert _ok(_predict(model_folder, records[:1], segment_seconds=1.0)[0])

    monkeypatch.setenv(ENV_MAX_SECONDS, "twenty minutes")
    with pytest.raises(Exception, match="GENRE_LAB_SERVE_MAX_SECONDS must be a positive number"):
        mlflow.pyfunc.load_model(str(model_folder))


def test_audio_without_music_is_tagged_with_a_warning_or_refused(model_folder: Path) -> None:
    blip = np.zeros(3 * SR)
    blip[SR : SR + SR // 100] = 0.5
    records = [
        {"waveform": [0.5] * (3 * SR), "sample_rate": SR},
        {"waveform": blip.tolist(), "sample_rate": SR},
        {"audio_base64": _wav_base64(0.4 * np.sin(2 * np.pi * 440 * np.arange(3 * SR) / SR), SR)},
        {"waveform": render_clip("disco", seed=0, seconds=3.0, sample_rate=SR).tolist(), "sample_rate": SR},
    ]
    fragments = ["constant DC offset", "mostly silence or padding", "a constant tone"]
    rows = _predict(model_folder, records)
    assert all(_ok(r) for r in rows)
    assert [f in (r["warning"] or "") for f, r in zip(fragments, rows)] == [True] * 3 and rows[3]["warning"] is None
    rows = _predict(model_folder, records, min_content=True)
    assert [f in (r["error"] or "") for f, r in zip(fragments, rows)] == [True] * 3 and _ok(rows[3])


def test_damaged_weights_answer_errors_not_nan(untrained: GenreClassifier, tmp_path: Path) -> None:
    model = copy.deepcopy(untrained)
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(3e38)  # finite, but the activations overflow: NaN output (NaN weights are refused on load)
    folder = save_tagger_model(tmp_path / "nan_model", model)
    song = render_clip("blues", seed=5, seconds=3.0, sample_rate=SR)
    rows = _predict(folder, [{"waveform": song.tolist(), "sample_rate": SR}, {"audio_base64": _wav_base64(song, SR)}])
    for row in rows:
        assert row["genres"] == [] and "NaN or infinite probabilities" in row["error"], row
