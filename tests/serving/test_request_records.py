"""Every record of a request gets exactly one output row, an error row where it is unusable:
in process through the pyfunc model, and through a real `mlflow models serve` on 127.0.0.1.

A record with neither audio field, a bare number or string, or `dataframe_records: [1, 2, 3]`
used to vanish with HTTP 200 (MLflow's schema check dropped records without a named column)."""

from __future__ import annotations

import base64
import io
import os
import subprocess
import sys
from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest
import requests
import soundfile as sf

from genre_lab.config import PROJECT_ROOT
from genre_lab.data.synthetic import GENRES, render_clip
from genre_lab.tracking.servers import free_port, stop_session, wait_ready

SR = 16000


def _wav_base64(wave: np.ndarray, sr: int) -> str:
    buf = io.BytesIO()
    sf.write(buf, wave, sr, format="WAV", subtype="PCM_16")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _song() -> list[float]:
    return render_clip("rock", seed=3, seconds=3.0, sample_rate=SR).round(5).tolist()


NOT_AN_OBJECT = "a record must be an object with audio_base64 or waveform"
NEITHER = "record has neither audio_base64 nor waveform"


def test_every_record_gets_one_row_in_process(model_folder: Path) -> None:
    model = mlflow.pyfunc.load_model(str(model_folder))
    song = _song()
    cases = [
        (pd.DataFrame([{}]), [NEITHER]),  # was: no row at all
        (pd.DataFrame([{}, {}, {}]), [NEITHER] * 3),
        (pd.DataFrame([1, 2, 3]), [f"{NOT_AN_OBJECT}, got a number"] * 3),
        (pd.DataFrame([[0.1, 0.2], [0.3, 0.4]]), [f"{NOT_AN_OBJECT}, got a list"] * 2),
        (pd.DataFrame([{"audio": "x"}, {"samples": [1.0]}]), [f"{NEITHER} (unknown fields: audio)", f"{NEITHER} (unknown fields: samples)"]),
        (pd.DataFrame([{"waveform": song, "sample_rate": SR}, {}, {"sample_rate": SR}]), [None, NEITHER, NEITHER]),
        ([{"waveform": song, "sample_rate": SR}, 5, "x", None, [1.0]],
         [None, f"{NOT_AN_OBJECT}, got a number", f"{NOT_AN_OBJECT}, got a string", f"{NOT_AN_OBJECT}, got null",
          f"{NOT_AN_OBJECT}, got a list"]),
        ({"waveform": song, "sample_rate": SR}, [None]),
        (pd.DataFrame({"audio_base64": [["not", "a", "string"], {"a": 1}], "waveform": [None, None]}),
         ["audio_base64 must be a base64 string, got list", "audio_base64 must be a base64 string, got dict"]),
    ]
    for data, expected in cases:
        rows = model.predict(data, params={"top_k": 2}).to_dict("records")
        assert len(rows) == len(expected), (data, rows)
        for row, fragment in zip(rows, expected):
            if fragment is None:
                assert row["error"] is None and len(row["genres"]) == 2, row
            else:
                assert row["genres"] == [] and fragment in row["error"], (fragment, row)


@pytest.mark.server
def test_served_model_answers_every_record(model_folder: Path, tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "models", "serve", "-m", str(model_folder), "--env-manager", "local",
             "-h", "127.0.0.1", "-p", str(port), "-w", "1"],
            cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        wait_ready(proc, f"{url}/ping", log)
        song = render_clip("jazz", seed=1, seconds=3.0, sample_rate=SR)
        requests_and_errors = [
            ({"dataframe_records": [{}]}, [NEITHER]),  # was HTTP 200 with no row
            ({"dataframe_records": [1, 2, 3]}, [NOT_AN_OBJECT] * 3),  # was HTTP 200 with no row
            ({"dataframe_records": [None, "x", True]}, [f"{NOT_AN_OBJECT}, got null", f"{NOT_AN_OBJECT}, got a string",
                                                        f"{NOT_AN_OBJECT}, got a boolean"]),
            ({"dataframe_records": [
                {"audio_base64": _wav_base64(song, SR)},
                {},
                {"waveform": "loud", "sample_rate": SR},
                {"waveform": song[:SR].round(5).tolist(), "sample_rate": "fast"},
                {"audio_base64": 7},
                {"title": "no audio here"},
            ]}, [None, NEITHER, "waveform must be a list of numbers", "sample_rate must be a number",
                 "audio_base64 must be a base64 string", f"{NEITHER} (unknown fields: title)"]),
            ({"dataframe_split": {"columns": ["song"], "data": [["a"], ["b"]]}}, [NEITHER] * 2),
            ({"inputs": [{"audio_base64": _wav_base64(song, SR)}, {"sample_rate": SR}]}, [None, NEITHER]),
            ({"instances": [4, "x"]}, [NOT_AN_OBJECT] * 2),
            ({"inputs": {"audio_base64": [_wav_base64(song, SR), "!!"]}}, [None, "not valid base64"]),
        ]
        for body, expected in requests_and_errors:
            response = requests.post(f"{url}/invocations", json={**body, "params": {"top_k": 2}}, timeout=60)
            assert response.status_code == 200, (body, response.text[:500])
            rows = response.json()["predictions"]
            assert len(rows) == len(expected), (body, rows)
            for row, fragment in zip(rows, expected):
                if fragment is None:
                    assert row["error"] is None and [g["label"] in GENRES for g in row["genres"]] == [True, True], row
                else:
                    assert row["genres"] == [] and fragment in row["error"], (fragment, row)
    finally:
        stop_session(proc)
