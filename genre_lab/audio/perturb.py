"""Perturbed audio for robustness evaluation (`evaluate perturb=<kind>`), the four kinds of Won,
Ferraro, Bogdanov and Serra (2020), "Evaluation of CNN-based automatic music tagging models":
time stretch, pitch shift, dynamic range compression and white noise.

Stretch and pitch shift use Rubber Band and compression JUCE's compressor, all through Spotify's
`pedalboard` (maintained native code, fast on a CPU; librosa's phase vocoder smears transients
audibly at the same factors); noise is `torchaudio.functional.add_noise` at a signal-to-noise
ratio. Each kind has levels ordered from none (level 0, the audio unchanged) to strongest, so a
degradation curve reads left to right.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class Perturbation:
    """One kind: its levels (the first is "none") and what a level's number means."""

    kind: str
    levels: tuple[float, ...]
    unit: str

    def apply(self, wave: np.ndarray, sample_rate: int, level: float, seed: int = 0) -> np.ndarray:
        """(samples,) float32 mono -> the same audio perturbed at `level` (float32)."""
        return _APPLY[self.kind](np.ascontiguousarray(wave, dtype=np.float32), sample_rate, float(level), seed)


def _stretch(wave: np.ndarray, sr: int, rate: float, seed: int) -> np.ndarray:
    if rate == 1.0:
        return wave
    from pedalboard import time_stretch

    return time_stretch(wave[None], sr, stretch_factor=rate)[0].astype(np.float32)


def _pitch(wave: np.ndarray, sr: int, semitones: float, seed: int) -> np.ndarray:
    if semitones == 0.0:
        return wave
    from pedalboard import PitchShift

    return _same_rms(wave, PitchShift(semitones=semitones)(wave, sr))


def _same_rms(wave: np.ndarray, out: np.ndarray) -> np.ndarray:
    """`out` at the RMS level of `wave`: a perturbation's loudness change is not what is tested."""
    rms_in, rms_out = float(np.sqrt(np.mean(wave**2))), float(np.sqrt(np.mean(out**2)))
    return (out * (rms_in / rms_out) if rms_out > 0 else out).astype(np.float32)


#: Compression threshold: -30 dBFS, under most of a mastered song, so every ratio acts.
COMPRESSION_THRESHOLD_DB = -30.0


def _compress(wave: np.ndarray, sr: int, ratio: float, seed: int) -> np.ndarray:
    if ratio == 1.0:
        return wave
    from pedalboard import Compressor

    out = Compressor(threshold_db=COMPRESSION_THRESHOLD_DB, ratio=ratio, attack_ms=5.0, release_ms=100.0)(wave, sr)
    return _same_rms(wave, out)  # make-up gain


def _noise(wave: np.ndarray, sr: int, snr_db: float, seed: int) -> np.ndarray:
    if snr_db == float("inf"):
        return wave
    import torchaudio

    signal = torch.from_numpy(wave)[None]
    noise = torch.randn(signal.shape, generator=torch.Generator().manual_seed(seed))
    return torchaudio.functional.add_noise(signal, noise, torch.tensor([snr_db]))[0].numpy().astype(np.float32)


_APPLY = {"time_stretch": _stretch, "pitch_shift": _pitch, "compression": _compress, "white_noise": _noise}

#: The kinds and their default levels, none first, then stronger and stronger.
PERTURBATIONS = {
    "time_stretch": Perturbation("time_stretch", (1.0, 1.1, 1.2, 1.35, 1.5), "rate"),
    "pitch_shift": Perturbation("pitch_shift", (0.0, 1.0, 2.0, 4.0, 6.0), "semitones"),
    "compression": Perturbation("compression", (1.0, 2.0, 4.0, 10.0, 20.0), "ratio"),
    "white_noise": Perturbation("white_noise", (float("inf"), 40.0, 20.0, 10.0, 0.0), "SNR dB"),
}


def resolve(kind: str, levels: Sequence[float] | None = None) -> list[Perturbation]:
    """The perturbations `perturb=<kind>` asks for (`all`: every kind), with `levels` replacing
    the default ones when given (one kind only); ValueError naming the setting otherwise."""
    if kind == "all":
        if levels:
            raise ValueError("perturb_levels needs one perturb kind, not perturb=all")
        return list(PERTURBATIONS.values())
    if kind not in PERTURBATIONS:
        raise ValueError(f"perturb must be one of {', '.join([*PERTURBATIONS, 'all'])}, got {kind!r}")
    base = PERTURBATIONS[kind]
    if not levels:
        return [base]
    values = tuple(float(v) for v in levels)
    if not all(np.isfinite(v) or (kind == "white_noise" and v == float("inf")) for v in values) or len(values) > 20:
        raise ValueError(f"perturb_levels must be at most 20 finite numbers for perturb={kind}, got {list(levels)}")
    valid = {"time_stretch": lambda v: 0.25 <= v <= 4.0, "pitch_shift": lambda v: -24.0 <= v <= 24.0,
             "compression": lambda v: 1.0 <= v <= 100.0, "white_noise": lambda v: v >= -20.0}[kind]
    if not all(valid(v) for v in values):
        raise ValueError(f"perturb_levels out of range for perturb={kind} ({base.unit}): {list(levels)}")
    return [Perturbation(kind, values, base.unit)]


def level_name(level: float) -> str:
    """A level as a metric-key segment: `inf` stays, `1.35` -> `1.35`, `-2` -> `-2`."""
    return "none" if level == float("inf") else f"{level:g}"
