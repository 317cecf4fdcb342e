"""Mixing and mastering: part levels, room, master EQ, background noise, bus drive, tuning
and output loudness, each drawn per clip within the ranges of its difficulty level."""

from __future__ import annotations

import numpy as np

from genre_lab.data.synthetic.levels import Difficulty


def master(parts, rng: np.random.Generator, sr: int, n: int, level: Difficulty) -> np.ndarray:
    """Float32 mix of `parts` [(buffer, level dB)], peak <= 0.99.

    The draws of `easy` come first and in the original order, so its clips are unchanged; the
    extras of harder levels (room, drive, detune) only draw when they are switched on.
    """
    mix = np.zeros(n)
    spread = level.part_level_db
    for buf, level_db in parts:
        rms = np.sqrt(np.mean(buf * buf))
        if rms > 1e-12:
            mix += buf * (10.0 ** ((level_db + rng.uniform(-spread, spread)) / 20.0) / rms)
    if level.reverb_prob > 0.0 and rng.random() < level.reverb_prob:
        mix = _room(mix, rng, sr, level)
    spec = np.fft.rfft(mix)
    f = np.fft.rfftfreq(n, 1.0 / sr)
    fr = np.maximum(f, 20.0)
    gain = (fr / 1000.0) ** (rng.uniform(*level.tilt_db) / 6.0206)  # tilt, dB/octave
    fc = min(rng.uniform(*level.lowpass_hz), 0.45 * sr)
    gain /= np.sqrt(1.0 + (f / fc) ** 4)
    gain /= np.sqrt(1.0 + (rng.uniform(*level.highpass_hz) / fr) ** 4)
    spec *= gain
    # background noise, white (0) to brown (-2) power slope, `noise_db` below the music
    noise = rng.standard_normal(f.size) + 1j * rng.standard_normal(f.size)
    noise *= fr ** (rng.uniform(-2.0, 0.0) / 2.0)
    p_sig = np.sum(np.abs(spec[1:]) ** 2)
    p_noise = np.sum(np.abs(noise[1:]) ** 2)
    if p_sig <= 0.0:
        p_sig = p_noise
    noise *= np.sqrt(p_sig / p_noise * 10.0 ** (-rng.uniform(*level.noise_db) / 10.0))
    noise[0] = 0.0
    y = np.fft.irfft(spec + noise, n)
    if level.drive_prob > 0.0 and rng.random() < level.drive_prob:
        drive = rng.uniform(1.5, 5.0)
        y = np.tanh(drive * y / max(np.abs(y).max(), 1e-12))
    if level.detune_cents > 0.0:
        y = _retune(y, rng.uniform(-level.detune_cents, level.detune_cents))
    rms = np.sqrt(np.mean(y * y))
    target = np.exp(rng.uniform(np.log(0.03), np.log(0.15)))
    y *= target / max(rms, 1e-12)
    peak = np.abs(y).max()
    if peak > 0.99:
        y *= 0.99 / peak
    return y.astype(np.float32)


def _room(x: np.ndarray, rng: np.random.Generator, sr: int, level: Difficulty) -> np.ndarray:
    """Convolution with a synthetic room: a pre-delay, then noise decaying 60 dB in RT60
    seconds, darker as it decays; mixed at an equal-power wet share."""
    rt60 = rng.uniform(*level.reverb_rt60)
    length = int(min(rt60, 2.0) * sr)
    t = np.arange(length) / sr
    tail = rng.standard_normal(length) * np.exp(-6.9 * t / rt60)
    tail = np.convolve(tail, np.ones(3) / 3.0, mode="same")  # high frequencies die first
    ir = np.concatenate([np.zeros(int(rng.uniform(0.005, 0.04) * sr)), tail])
    size = 1 << int(np.ceil(np.log2(x.size + ir.size)))  # pocketfft is ~10x slower on sizes with large primes
    wet = np.fft.irfft(np.fft.rfft(x, size) * np.fft.rfft(ir, size), size)[: x.size]
    wet *= np.sqrt(np.mean(x * x) / max(np.mean(wet * wet), 1e-24))
    share = rng.uniform(*level.reverb_wet)
    return np.sqrt(1.0 - share) * x + np.sqrt(share) * wet


def _retune(y: np.ndarray, cents: float) -> np.ndarray:
    """Played `cents` sharp (positive) or flat, as a tape or turntable speed change would; a
    sharp clip ends in up to 4% of silence (60 cents), the same for every genre."""
    src = np.arange(y.size) * 2.0 ** (cents / 1200.0)
    return np.interp(src, np.arange(y.size), y, right=0.0)
