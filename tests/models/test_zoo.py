"""The field's architectures (`model=fcn|shortchunk|shortchunk_res|cnnsa|ast|samplecnn|
samplecnn_se`): their documented input lengths reduce as the papers' do, their sizes are bounded
before anything is built, and each trains on the easy synthetic level, well above chance, into
a model that predict and the served pyfunc load."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pandas as pd
import pytest
import soundfile as sf
import torch

from genre_lab.config import compose
from genre_lab.data.synthetic import render_clip
from genre_lab.features import HarmonicFilterbank
from genre_lab.models import CNNSA, FCN, HarmonicCNN, SampleCNN, ShortChunkCNN, ShortChunkResCNN, SpectrogramTransformer, bounds
from genre_lab.models import model_file
from genre_lab.cli.predict import main as predict_main
from genre_lab.registry import ConfigSecurityError
from genre_lab.training.fit import fit_and_test
from genre_lab.training.lightning_module import GenreClassifier
from tests.conftest import TINY, write_tone

#: Each new model at a width that trains in seconds (the architecture, not the papers' widths).
TINY_SIZES = {
    "fcn": ["model.backbone.channels=[16,32,32,32,16]"],
    "shortchunk": ["model.backbone.width=8"],
    "shortchunk_res": ["model.backbone.width=16"],
    "cnnsa": ["model.backbone.width=8", "model.backbone.dim=16", "model.backbone.layers=1", "model.backbone.heads=2",
              "model.backbone.ff_dim=32", "model.backbone.dropout=0.1"],
    # Attention learns slowly from 120 clips: ten epochs instead of six.
    "ast": ["model.backbone.dim=32", "model.backbone.layers=1", "model.backbone.heads=2", "model.backbone.ff_dim=64",
            "model.backbone.stride=16", "trainer.max_epochs=10"],
    "harmoniccnn": ["model.backbone.width=8", "features.frontend.harmonics=3"],
    "samplecnn": ["model.backbone.widths=[16,16,16,32,32,32,32,32,32,64,64]"],
    "samplecnn_se": ["model.backbone.widths=[16,16,16,32,32,32,32,32,32,64,64]"],
}


def test_fcn_pools_its_29s_input_to_one_cell() -> None:
    net = FCN(96).eval()
    frames = int(29.1 * 16000) // 256 + 1  # 1819 frames of the paper's 96-band input
    # 96 bands -> 1 row; 1819 frames -> 455, 114, 29, 6, 2 (the pools round up), then max over them.
    assert net.blocks(torch.randn(1, 1, 96, frames)).shape[2:] == (1, 2)
    assert net(torch.randn(2, 1, 96, frames)).shape == (2, 64)
    assert net(torch.randn(2, 1, 96, 40)).shape == (2, 64)  # shorter windows work too


@pytest.mark.parametrize("cls", [ShortChunkCNN, ShortChunkResCNN])
def test_short_chunk_models_halve_seven_times(cls) -> None:
    net = cls(128, width=8).eval()
    frames = 59049 // 256 + 1  # 3.69 s at 16 kHz, hop 256
    assert net.stack(torch.randn(1, 1, 128, frames)).shape[1:] == (32, 1, 2)  # 128 bands -> 1, 231 frames -> 2
    assert net(torch.randn(2, 1, 128, frames)).shape == (2, 32) and net.out_dim == 32


def test_samplecnn_reduces_3_to_the_10_samples_to_one_step() -> None:
    for se in (False, True):
        net = SampleCNN(1, widths=(8, 8, 8, 16, 16, 16, 16, 16, 16, 32, 32), se=se).eval()
        assert net.layers(torch.randn(1, 1, 3**10)).shape == (1, 32, 1)
        assert net(torch.randn(2, 1, 1, 3**10)).shape == (2, 32)
    with pytest.raises(ValueError, match="features=waveform"):
        SampleCNN(64)


def test_attention_models_shapes_and_token_limits() -> None:
    cnnsa = CNNSA(128, width=8, dim=16, layers=1, heads=2, ff_dim=32).eval()
    assert cnnsa(torch.randn(2, 1, 128, 231)).shape == (2, 16)
    ast = SpectrogramTransformer(128, dim=32, layers=1, heads=2, ff_dim=64, max_positions=30).eval()
    assert ast(torch.randn(2, 1, 128, 231)).shape == (2, 32)  # 12 rows x 22 columns of patches
    with pytest.raises(ValueError, match="max_positions=30"):
        ast(torch.randn(1, 1, 128, 400))
    with pytest.raises(ValueError, match="multiple of model.backbone.heads"):
        SpectrogramTransformer(128, dim=30, heads=4)
    with pytest.raises(ValueError, match="tokens a window"):
        SpectrogramTransformer(512, stride=1, max_positions=8192)


@pytest.mark.parametrize("model", sorted(TINY_SIZES))
def test_every_new_model_builds_from_its_config_with_the_papers_input(model: str) -> None:
    cfg = compose([f"model={model}"])
    assert cfg.data.sample_rate == 16000
    paper_seconds = {"fcn": 29.1, "harmoniccnn": 5.0}.get(model, 59049 / 16000)
    assert cfg.data.chunk_seconds == pytest.approx(paper_seconds, abs=1e-3)
    net = GenreClassifier.from_config(compose([f"model={model}", *TINY_SIZES[model]]), ["a", "b"]).net.eval()
    wave = torch.randn(2, int(cfg.data.chunk_seconds * 16000))
    assert net(wave).shape == (2, 2)


def test_harmonic_filterbank_finds_a_tone_in_each_harmonic_and_learns_its_filters() -> None:
    fb = HarmonicFilterbank(16000, harmonics=6, semitone_scale=2).eval()
    assert (fb.harmonics, fb.levels) == (6, 128)  # C1 up to the pitch whose 6th harmonic is Nyquist
    t = torch.arange(16000) / 16000
    bands = fb(torch.sin(2 * torch.pi * 440.0 * t)[None])[0, 0].mean(-1).reshape(6, 128)
    midi = fb.f0_midi.detach()
    # A 440 Hz tone is the 1st harmonic of A4 (MIDI 69), the 2nd of A3 (57), the 4th of A2 (45).
    for harmonic, note in ((1, 69), (2, 57), (4, 45)):
        assert midi[bands[harmonic - 1].argmax()].item() == pytest.approx(note, abs=0.5), harmonic
    fb.train()
    fb(torch.randn(2, 8000)).sum().backward()
    assert fb.f0_midi.grad.abs().sum() > 0 and fb.log_q.grad.abs().sum() > 0
    frozen = HarmonicFilterbank(16000, learn_f0=False)
    assert not frozen.f0_midi.requires_grad and frozen.log_q.requires_grad


def test_harmonic_cnn_reads_one_channel_per_harmonic() -> None:
    net = HarmonicCNN(6 * 128, harmonics=6, width=8).eval()
    assert net.blocks[0][0].in_channels == 6
    assert net(torch.randn(2, 1, 768, 313)).shape == (2, 16)
    with pytest.raises(ValueError, match="model.backbone.harmonics=5"):
        HarmonicCNN(768, harmonics=5)


def test_sizes_from_a_model_file_are_bounded_before_building() -> None:
    """A spec's sizes are checked by range, then what they hold together is counted on the
    meta device (no storage), so a crafted file cannot make a loader allocate gigabytes."""
    cfg = compose(["model=shortchunk_res"])
    spec = GenreClassifier.from_config(compose(["model=shortchunk_res", "model.backbone.width=8"]), ["a", "b"]).config
    features, model = spec["features"], spec["model"]
    huge = {**model, "backbone": {**model["backbone"], "width": 1024}}  # ~770M values
    with pytest.raises(ConfigSecurityError, match="values"):
        bounds.check(features, huge, 16000, cfg.data.chunk_seconds, 2)
    out_of_range = {**model, "backbone": {**model["backbone"], "width": 10**6}}
    with pytest.raises(ConfigSecurityError, match="model.backbone.width"):
        bounds.check(features, out_of_range, 16000, cfg.data.chunk_seconds, 2)
    bad_heads = {**model, "backbone": {"_target_": "genre_lab.models.SpectrogramTransformer", "dim": 30, "heads": 4}}
    with pytest.raises(ConfigSecurityError, match="multiple of model.backbone.heads"):
        bounds.check(features, bad_heads, 16000, cfg.data.chunk_seconds, 2)


def test_a_crafted_huge_model_file_is_refused_by_predict(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "1000")
    model = GenreClassifier.from_config(compose(["model=cnnsa", *TINY_SIZES["cnnsa"]]), ["a", "b"])
    spec = model.config
    spec["model"]["backbone"] = {**spec["model"]["backbone"], "width": 1024, "dim": 2048, "layers": 24, "ff_dim": 8192}
    path = tmp_path / "huge.ckpt"
    torch.save({"state_dict": model.net.state_dict(), model_file.CONFIG_KEY: spec}, path)
    song = write_tone(tmp_path / "song.wav", seconds=4.0, sr=16000)
    assert predict_main([str(path), str(song), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "values" in err


@pytest.mark.slow
@pytest.mark.parametrize("model", sorted(TINY_SIZES))
def test_each_new_model_learns_and_serves(model: str, mlflow_uri: str, tmp_path: Path) -> None:
    overrides = [*TINY, "data.chunk_seconds=2.0", "throughput_seconds=0", f"paths.root_dir={tmp_path}",
                 f"model={model}", *TINY_SIZES[model]]
    result = fit_and_test(compose(overrides, output_dir=tmp_path / "out"))
    # 10 classes: chance is 0.1; held-out test clips come from seeds never seen in training.
    assert result.metrics["test/track_acc"] >= 0.5, result.metrics
    run = mlflow.MlflowClient(mlflow_uri).get_run(result.run_id)
    assert run.data.params["model.name"] == model
    net = GenreClassifier.from_config(compose(overrides, output_dir=tmp_path / "again"), result.classes)
    assert run.data.metrics["model/params"] == sum(p.numel() for p in net.parameters() if p.requires_grad)

    # The saved model tags a song through predict, and answers as the served pyfunc.
    wave = render_clip(result.classes[0], seed=123, seconds=4.0, sample_rate=16000, difficulty="easy")
    song = tmp_path / "song.wav"
    sf.write(song, wave, 16000)
    assert predict_main([result.run_id, str(song), "--no-progress", "--output", str(tmp_path / "tags.csv")]) == 0
    assert (tmp_path / "tags.csv").read_text().count(song.name) == 1
    client = mlflow.MlflowClient(mlflow_uri)
    experiment = client.get_run(result.run_id).info.experiment_id
    (logged,) = client.search_logged_models([experiment], filter_string=f"source_run_id = '{result.run_id}'")
    served = mlflow.pyfunc.load_model(f"models:/{logged.model_id}")
    (row,) = served.predict(pd.DataFrame([{"waveform": wave.tolist(), "sample_rate": 16000}])).to_dict("records")
    assert not row.get("error") and {g["label"] for g in row["genres"]} <= set(result.classes), row
