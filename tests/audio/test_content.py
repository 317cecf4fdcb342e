"""The music-content rule (`genre_lab.audio.content`) on degenerate clips and music-like audio, and the
tagger applying it: a warning by default, an error with `min_content`; and the tagger refusing
a model whose probabilities are not finite."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from genre_lab.config import compose
from genre_lab.audio.content import content_problem, measure_content
from genre_lab.data.synthetic import GENRES, render_clip
from genre_lab.inference import TaggingError
from genre_lab.inference.tag_output import write_report
from genre_lab.inference.tagger import Tagger
from genre_lab.training.lightning_module import GenreClassifier
from tests.conftest import TINY

SR = 16000


def _tone(seconds: float, freqs: tuple[float, ...] = (440.0,), sr: int = SR) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return sum(0.5 / len(freqs) * np.sin(2 * np.pi * f * t) for f in freqs)


def _blip(sr: int = SR) -> np.ndarray:
    """10 ms of a tone padded with zeros to 3 s."""
    wave = np.zeros(3 * sr)
    wave[sr : sr + sr // 100] = _tone(0.01, sr=sr)
    return wave


def _chord_changes(sr: int = SR) -> np.ndarray:
    """Four three-note sine chords of 0.75 s each (A, G, F, E major-ish)."""
    chords = [(220, 277.2, 329.6), (196, 246.9, 293.7), (174.6, 220, 261.6), (164.8, 207.7, 246.9)]
    return np.concatenate([_tone(0.75, ch, sr) for ch in chords])


#: Degenerate clip -> a fragment of the reason it is reported.
DEGENERATE = {
    "dc": (lambda: np.full(3 * SR, 0.5), "constant DC offset of +0.500"),
    "dc_with_hiss": (lambda: 0.5 + 1e-5 * np.random.default_rng(0).standard_normal(3 * SR), "DC offset"),
    "near_silence": (lambda: 3e-4 * np.random.default_rng(0).standard_normal(3 * SR), "near-silent"),
    "blip_padded_to_3s": (_blip, "mostly silence or padding"),
    "pure_tone": (lambda: _tone(3.0), "a constant tone"),
    "low_hum": (lambda: _tone(3.0, (60.0,)), "a constant tone"),
    "square_wave": (lambda: 0.5 * np.sign(_tone(3.0)), "a constant tone"),
    "held_sine_chord": (lambda: _tone(3.0, (220, 277.2, 329.6)), "a constant tone"),
}


@pytest.mark.parametrize("name", DEGENERATE)
def test_degenerate_clip_is_named(name: str) -> None:
    make, fragment = DEGENERATE[name]
    problem = content_problem(make(), SR)
    assert problem is not None and fragment in problem, problem


def test_blip_reports_how_little_sounds() -> None:
    stats = measure_content(_blip(), SR)
    assert stats.active_fraction < 0.01
    assert "0.7% of the clip (0.02 s of 3.00 s)" in stats.problem()


@pytest.mark.parametrize("genre", GENRES)
def test_synthetic_music_passes(genre: str) -> None:
    for seed in range(3):
        for seconds in (1.0, 2.0, 5.0):
            stats = measure_content(render_clip(genre, seed, seconds, SR), SR)
            assert stats.problem() is None, (genre, seed, seconds, stats)
    for difficulty in ("medium", "hard"):
        for seconds in (1.0, 3.0):
            stats = measure_content(render_clip(genre, 4, seconds, SR, difficulty=difficulty), SR)
            assert stats.problem() is None, (genre, difficulty, seconds, stats)


def test_changing_and_varying_tones_pass() -> None:
    t = np.arange(3 * SR) / SR
    vibrato = 0.5 * np.sin(2 * np.pi * 440 * t + 3 * np.sin(2 * np.pi * 5 * t))
    for wave in (_chord_changes(), vibrato, _chord_changes(22050)):
        assert content_problem(wave, SR if len(wave) == 3 * SR else 22050) is None
    # A held note shorter than 1 s is one note, not a test tone.
    assert content_problem(_tone(0.5), SR) is None


@pytest.fixture(scope="module")
def tagger(tmp_path_factory: pytest.TempPathFactory) -> Tagger:
    """An untrained CNN: the content rule and the finite check do not depend on training."""
    root = tmp_path_factory.mktemp("content_model")
    cfg = compose([*TINY, "model=cnn", f"paths.root_dir={root}"], output_dir=root / "out")
    torch.manual_seed(0)
    return Tagger(GenreClassifier.from_config(cfg, list(GENRES)), device="cpu")


def test_tagger_warns_by_default_and_refuses_with_min_content(tagger: Tagger, tmp_path: Path) -> None:
    music = tagger.tag(render_clip("jazz", 1, 3.0, SR), sample_rate=SR)
    assert music.ok and music.warning is None and len(music.genres) == 3
    for name, (make, fragment) in DEGENERATE.items():
        wave = make()
        warned = tagger.tag(wave, sample_rate=SR)
        assert warned.ok and len(warned.genres) == 3 and fragment in warned.warning, name
        with pytest.raises(TaggingError, match=f"no music to classify: .*{re.escape(fragment)}"):
            tagger.tag(wave, sample_rate=SR, min_content=True)

    # Resampling leaves ringing at the ends of a DC signal (-62 dBFS): still named as DC.
    resampled = tagger.tag(np.full(3 * 11025, -0.25), sample_rate=11025)
    assert "constant DC offset of -0.250" in resampled.warning, resampled.warning

    # Files: a row with its warning, or with its error when asked; both in the reports.
    sf.write(str(tmp_path / "dc.wav"), np.full(SR, 0.5), SR, subtype="FLOAT")
    sf.write(str(tmp_path / "blip.flac"), _blip(22050), 22050)
    sf.write(str(tmp_path / "song.wav"), render_clip("rock", 2, 3.0, 22050), 22050)
    files = [tmp_path / n for n in ("dc.wav", "blip.flac", "song.wav")]
    rows = list(tagger.tag_files(files, workers=0))
    assert [r.ok for r in rows] == [True, True, True]
    assert ["DC offset" in (rows[0].warning or ""), "padding" in (rows[1].warning or ""), rows[2].warning] == [True, True, None]
    strict = list(tagger.tag_files(files, workers=1, min_content=True))
    assert [r.ok for r in strict] == [False, False, True]
    assert "DC offset" in strict[0].error and strict[0].genres == [] and strict[0].duration == pytest.approx(1.0)

    write_report(rows, "json", 3, tmp_path / "tags.json")
    assert [r["warning"] is not None for r in json.loads((tmp_path / "tags.json").read_text())] == [True, True, False]
    write_report(rows, "csv", 3, tmp_path / "tags.csv")
    header, *lines = (tmp_path / "tags.csv").read_text().splitlines()
    assert header.endswith(",error,warning") and "padding" in lines[1] and lines[2].endswith(",,")


def test_nan_weights_give_an_error_never_nan_genres(tagger: Tagger, tmp_path: Path) -> None:
    broken = Tagger(GenreClassifier.from_spec(tagger.model.spec), device="cpu")
    broken.model.load_state_dict(tagger.model.state_dict())
    with torch.no_grad():
        for p in broken.model.parameters():
            p.fill_(float("nan"))
    song = render_clip("pop", 0, 3.0, SR)
    assert tagger.tag(song, sample_rate=SR).ok  # the same song with intact weights
    with pytest.raises(TaggingError, match="NaN or infinite probabilities for 2 of 2 window"):
        broken.tag(song, sample_rate=SR)
    sf.write(str(tmp_path / "song.wav"), song, SR)
    (row,) = broken.tag_files([tmp_path / "song.wav"], workers=0)
    assert not row.ok and row.genres == [] and row.distribution == {} and "weights are damaged" in row.error
    write_report([row], "json", 3, tmp_path / "tags.json")
    assert json.loads((tmp_path / "tags.json").read_text())[0]["genres"] == []
