"""The four perturbations of robustness evaluation do what their levels say, on real signals."""

from __future__ import annotations

import numpy as np
import pytest

from genre_lab.audio.perturb import PERTURBATIONS, resolve

SR = 16000


def _tone(freq: float = 440.0, seconds: float = 2.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _peak_hz(wave: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(wave * np.hanning(len(wave))))
    return float(np.fft.rfftfreq(len(wave), 1 / SR)[spectrum.argmax()])


def test_level_zero_of_every_kind_is_the_audio_unchanged() -> None:
    wave = _tone()
    for p in PERTURBATIONS.values():
        assert np.array_equal(p.apply(wave, SR, p.levels[0]), wave), p.kind


def test_each_kind_does_what_its_level_says() -> None:
    wave = _tone()
    stretched = PERTURBATIONS["time_stretch"].apply(wave, SR, 1.25)
    assert len(stretched) == pytest.approx(len(wave) / 1.25, rel=0.01)
    assert _peak_hz(stretched) == pytest.approx(440.0, abs=5)  # faster, same pitch
    shifted = PERTURBATIONS["pitch_shift"].apply(wave, SR, 2.0)
    assert len(shifted) == len(wave) and _peak_hz(shifted[4000:]) == pytest.approx(440 * 2 ** (2 / 12), abs=5)
    noisy = PERTURBATIONS["white_noise"].apply(wave, SR, 10.0, seed=1)
    snr = 10 * np.log10(np.mean(wave**2) / np.mean((noisy - wave) ** 2))
    assert snr == pytest.approx(10.0, abs=0.5)
    assert np.array_equal(noisy, PERTURBATIONS["white_noise"].apply(wave, SR, 10.0, seed=1))  # seeded
    # A loud burst over a quiet bed: compression narrows the gap, loudness (RMS) kept.
    burst = np.concatenate([0.01 * _tone(seconds=1.0), 0.9 * _tone(seconds=1.0) / 0.5]).astype(np.float32)
    squeezed = PERTURBATIONS["compression"].apply(burst, SR, 10.0)
    gap = lambda w: np.sqrt(np.mean(w[SR + 2000:] ** 2)) / np.sqrt(np.mean(w[2000:SR] ** 2))  # noqa: E731
    assert gap(squeezed) < gap(burst) / 3
    assert np.sqrt(np.mean(squeezed**2)) == pytest.approx(np.sqrt(np.mean(burst**2)), rel=0.01)


def test_levels_are_checked() -> None:
    assert [p.kind for p in resolve("all")] == list(PERTURBATIONS)
    assert resolve("white_noise", [float("inf"), 0])[0].levels == (float("inf"), 0.0)
    for kind, levels, message in (("reverb", None, "must be one of"), ("time_stretch", [0.0], "out of range"),
                                  ("compression", [float("nan")], "finite"), ("all", [1.0], "one perturb kind"),
                                  ("pitch_shift", list(range(25)), "at most 20")):
        with pytest.raises(ValueError, match=message):
            resolve(kind, levels)
