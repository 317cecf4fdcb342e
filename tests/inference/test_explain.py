"""Explanations: a model trained where one class is defined by a band-limited sound attributes
most of that class's evidence to the band (and a re-initialised model does not: Adebayo et
al. 2018's randomisation check); `genre_lab.cli.explain` draws figures for real files of any
length and reports bad ones without stopping."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from mlflow import MlflowClient

from genre_lab.config import compose
from genre_lab.cli.explain import main as explain_main
from genre_lab.inference import Tagger
from genre_lab.inference.attribution import Explainer, band_hz
from tests.conftest import TINY
from tests.training_procs import train_in_own_store

SR = 16000
BAND = (2000.0, 4000.0)


def _background(rng: np.random.Generator, seconds: float) -> np.ndarray:
    """Low tones that wander, plus faint noise: the same in both classes."""
    t = np.arange(int(seconds * SR)) / SR
    tones = sum(0.15 * np.sin(2 * np.pi * rng.uniform(100, 800) * t + rng.uniform(0, 6)) for _ in range(3))
    # A noise floor well above the band noise's spectral leakage (Hann sidelobes), so the band is
    # the only difference between the classes even on a log scale.
    return tones + 0.05 * rng.standard_normal(len(t))


def _band_noise(rng: np.random.Generator, n: int) -> np.ndarray:
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / SR)
    spectrum[(freqs < BAND[0]) | (freqs > BAND[1])] = 0
    band = np.fft.irfft(spectrum, n)
    return 0.2 * band / np.abs(band).max()


@pytest.fixture(scope="module")
def band_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """A CNN trained on a folder dataset: `band` = background + 2-4 kHz noise, `plain` = background."""
    root = tmp_path_factory.mktemp("explain")
    rng = np.random.default_rng(0)
    for label in ("band", "plain"):
        (root / "music" / label).mkdir(parents=True)
        for i in range(30):
            wave = _background(rng, 4.0)
            if label == "band":
                wave = wave + _band_noise(rng, len(wave))
            sf.write(root / "music" / label / f"{label}{i:02d}.wav", wave.astype(np.float32), SR)
    result, _ = train_in_own_store(root, ["data=folder", f"data.root={root / 'music'}", "data.sample_rate=16000",
                                          "data.val_fraction=0.2", "data.test_fraction=0.2",
                                          f"data.cache_dir={root / 'cache'}", "model=cnn", "trainer.max_epochs=8",
                                          "data.train_chunks_per_clip=8", "throughput_seconds=0"],
                                   without=("data.source",))
    assert result.metrics["test/track_acc"] >= 0.9, result.metrics  # two classes: chance is 0.5
    return result.best_checkpoint, root


def _band_share(tagger: Tagger, attribution: torch.Tensor) -> float:
    """Share of the positive attribution that falls in the mel bands inside BAND."""
    hz = band_hz(tagger.model)
    in_band = torch.tensor((hz >= BAND[0]) & (hz <= BAND[1]))
    positive = attribution.clamp_min(0)
    return float(positive[..., in_band, :].sum() / positive.sum())


@pytest.mark.slow
def test_band_defined_class_is_attributed_to_its_band(band_model) -> None:
    checkpoint, root = band_model
    tagger = Tagger.load(checkpoint, device="cpu")
    rng = np.random.default_rng(99)
    waves = torch.stack([torch.from_numpy((_background(rng, 2.0) + _band_noise(rng, 2 * SR)).astype(np.float32))
                         for _ in range(6)])
    target = tagger.classes.index("band")
    trained = Explainer(tagger.model, "integrated_gradients", steps=16).attribute(waves, target)
    share = _band_share(tagger, trained)
    band_bins = _band_share(tagger, torch.ones_like(trained))  # the band's share of the bins
    assert share > 2 * band_bins and share > 0.4, (share, band_bins)

    # Randomisation check: the same explainer on re-initialised weights gives other maps.
    random_model = Tagger.load(checkpoint, device="cpu").model
    torch.manual_seed(0)
    for module in random_model.backbone.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
    random_model.head.reset_parameters()
    randomised = Explainer(random_model, "integrated_gradients", steps=16).attribute(waves, target)
    a, b = trained.flatten(), randomised.flatten()
    correlation = float(torch.corrcoef(torch.stack([a, b]))[0, 1])
    assert correlation < 0.5, correlation
    assert _band_share(tagger, randomised) < share


@pytest.mark.slow
def test_explain_cli_draws_every_method_and_reports_bad_files(band_model, tmp_path: Path, capsys) -> None:
    checkpoint, root = band_model
    rng = np.random.default_rng(5)
    long_song = tmp_path / "long.flac"
    sf.write(long_song, (_background(rng, 9.5) + _band_noise(rng, int(9.5 * SR))).astype(np.float32), SR)
    short = tmp_path / "short.ogg"
    sf.write(short, _background(rng, 1.0).astype(np.float32), SR)
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot audio")
    for method in ("integrated_gradients", "occlusion", "gradcam"):
        out = tmp_path / method
        code = explain_main([checkpoint, str(long_song), str(short), str(broken), "--output", str(out),
                             "--method", method, "--steps", "4"])
        assert code == 1  # the broken file failed; the others were drawn
        assert sorted(p.name for p in out.iterdir()) == ["long.png", "short.png"]
        printed = capsys.readouterr()
        assert "broken.wav" in printed.err and "long.flac: band" in printed.out
    assert explain_main([checkpoint, str(long_song), "--output", str(tmp_path / "t"), "--target", "polka"]) == 1
    assert "'polka' is not one of the model's classes" in capsys.readouterr().err
    # `run=<model>`, as in every command that takes one.
    assert explain_main([str(short), f"run={checkpoint}", "--output", str(tmp_path / "named"), "--method", "occlusion"]) == 0
    assert [p.name for p in (tmp_path / "named").iterdir()] == ["short.png"]


def test_gradcam_needs_a_conv_block() -> None:
    from genre_lab.training.lightning_module import GenreClassifier

    model = GenreClassifier.from_config(compose([*TINY, "model=rnn"]), ["a", "b"])
    with pytest.raises(ValueError, match="gradcam needs a convolutional block; model 'rnn' has none"):
        Explainer(model, "gradcam")


@pytest.mark.slow
def test_evaluate_logs_per_class_explanations(band_model, monkeypatch) -> None:
    from genre_lab.inference.evaluation import evaluate

    checkpoint, root = band_model
    uri = f"sqlite:///{root / 'mlflow.db'}"
    cfg = compose([f"run={checkpoint}", f"tracking_uri={uri}", "progress=false", "data=folder",
                   f"data.root={root / 'music'}", "data.val_fraction=0.2", "data.test_fraction=0.2",
                   f"data.cache_dir={root / 'cache'}", "explain.max_tracks_per_class=3"], config_name="evaluate")
    result = evaluate(cfg)
    client = MlflowClient(uri)
    names = {a.path for a in client.list_artifacts(result.run_id, "explain")}
    assert {"explain/band.png", "explain/plain.png", "explain/summary.json"} <= names
    summary = client.load_dict(f"runs:/{result.run_id}/explain/summary.json") if hasattr(client, "load_dict") else None
    if summary is None:
        import json
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            summary = json.loads(Path(client.download_artifacts(result.run_id, "explain/summary.json", tmp)).read_text())
    band = summary["band"]
    # The band class's frequency profile peaks inside the band it is defined by.
    assert band["tracks"] >= 1 and BAND[0] <= band["peak_band_hz"] <= BAND[1] * 1.25, band
    assert band["most_confident"] and "most_confused" in band
