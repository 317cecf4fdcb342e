"""The model as tagging holds it: built for one device, prepared for the CPU, never exported by
mistake, and tagging leaves torch's thread count as the caller had it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from genre_lab.models import model_file as checkpoint
from genre_lab.bench.tag import default_model
from genre_lab.models.mlflow_model import export_weights
from genre_lab.models.loading import ModelSourceError, load_model
from genre_lab.inference.tagger import Tagger
from genre_lab.models.network import exportable
from tests.conftest import write_tone


@pytest.fixture()
def model_file(tmp_path: Path) -> Path:
    model = default_model()
    path = tmp_path / "model.ckpt"
    checkpoint.write(path, model.spec, model.state_dict())
    return path


def test_a_model_built_for_the_cpu_answers_like_the_portable_one(model_file: Path) -> None:
    portable, cpu_only = load_model(model_file).network, load_model(model_file, device="cpu").network
    assert set(portable.frontend.impls) == {"nnaudio", "torchaudio"} and list(cpu_only.frontend.impls) == ["torchaudio"]
    wave = torch.randn(4, 48000) * 0.1
    with torch.inference_mode():
        assert torch.allclose(portable(wave), cpu_only(wave), atol=1e-5)
    prepared = Tagger(portable, device="cpu").model  # batch norm folded, channels-last
    with torch.inference_mode():
        assert torch.allclose(portable(wave).softmax(1), prepared(wave).softmax(1), atol=1e-6)


def test_models_prepared_for_one_device_are_never_exported(model_file: Path, tmp_path: Path) -> None:
    portable = load_model(model_file).network
    assert exportable(portable)
    for prepared in (load_model(model_file, device="cpu").network, Tagger(portable, device="cpu").model):
        assert not exportable(prepared)
        with pytest.raises(ValueError, match="prepared to run on one device"):
            export_weights(prepared, tmp_path / "bad.pt")
    export_weights(portable, tmp_path / "good.pt")
    assert isinstance(load_model(tmp_path / "good.pt").network, type(portable))
    assert exportable(portable)  # preparing a Tagger left the caller's model as it was


def test_a_portable_load_stays_strict(model_file: Path, tmp_path: Path) -> None:
    spec, weights = checkpoint.read(model_file)
    stray = tmp_path / "stray.ckpt"
    checkpoint.write(stray, spec, {**weights, "frontend.impls.nnaudio.extra": torch.zeros(1)})
    with pytest.raises(ModelSourceError, match="extra"):
        load_model(stray)


def test_tagging_leaves_the_callers_thread_count(model_file: Path, tmp_path: Path) -> None:
    songs = [write_tone(tmp_path / f"s{i}.wav", seconds=4.0, sr=16000, freq=300.0 + 100 * i) for i in range(3)]
    tagger = Tagger.load(model_file, device="cpu")
    before = torch.get_num_threads()
    try:
        for threads in (1, before):
            torch.set_num_threads(threads)
            for result in tagger.tag_files(songs, workers=2):
                assert result.ok, result.error
                assert torch.get_num_threads() == threads  # between results: the caller's count
            assert torch.get_num_threads() == threads
    finally:
        torch.set_num_threads(before)


def test_the_predict_command_flushes_its_report_and_exit_status(model_file: Path, tmp_path: Path) -> None:
    """`python -m genre_lab.predict` leaves through `os._exit`: the report on stdout, the summary
    on stderr and the exit status (1: a file could not be tagged) must all get out."""
    import json
    import subprocess
    import sys

    from genre_lab.config import PROJECT_ROOT

    song = write_tone(tmp_path / "song.wav", seconds=4.0, sr=16000)
    proc = subprocess.run([sys.executable, "-m", "genre_lab.cli.predict", str(model_file), str(song),
                           str(tmp_path / "missing.wav"), "--format", "json", "--no-progress"],
                          cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr[-2000:]
    rows = json.loads(proc.stdout)
    assert [Path(r["path"]).name for r in rows] == ["song.wav", "missing.wav"]
    assert rows[0]["genres"] and rows[0]["error"] is None and "no such file" in rows[1]["error"]
    assert "1 of 2 file(s) could not be tagged" in proc.stderr
