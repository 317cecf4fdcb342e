"""Does a waveform carry anything to classify? One rule for datasets, tagging and serving.

A model answers every input with a probability distribution, even silence or a test tone; a
confident-looking genre for such input is a lie. `SILENCE_DBFS` and `rms_dbfs` are the
silence rule the dataset scans and the tagger share: below it a clip is refused outright.

`content_problem` is the wider rule for clips that are not silent yet carry no music. It is
measured on the clip as given (before the tagger pads a short clip to one window), in this order:

1. **DC offset only**: with the mean removed, the level is below `NEAR_SILENCE_DBFS` while the
   mean is not (a constant DC signal of 0.5 has an RMS of -6 dBFS and passes the silence rule).
2. **Near-silence**: with the mean removed, the RMS is below `NEAR_SILENCE_DBFS` (-60 dBFS).
   The synthetic generator's clips (10 genres x 6 seeds x 0.7-30 s) measure -31 to -16 dBFS.
3. **Mostly padding**: fewer than `MIN_ACTIVE_FRACTION` (20%) of its 20 ms frames are within
   `ACTIVE_RANGE_DB` (40 dB) of the loudest frame (and above `SILENCE_DBFS`). A 10 ms blip in
   3 s measures 0.7%; synthetic clips of 2 s or more at least 82% (a sparse reggae bar).
4. **Constant tone** (clips of `MIN_TONE_SECONDS`, 1 s, or more): the spectrum does not change
   and is made of a few lines. The median cosine similarity of each 64 ms frame's magnitude
   spectrum to the clip's mean spectrum is at least `STEADY_SIMILARITY` (0.998), and 90% of the
   mean spectrum's energy lies in at most `TONAL_BIN_FRACTION` (2%) of the frequency bins.
   Measured: a pure tone (60 Hz-5 kHz), a square wave and a held three-note sine chord
   0.9995-1.0 similarity in <= 1.4% of the bins; 200 synthetic clips (easy) per length at most
   0.994 (1 s) and 0.975 (2 s), 360 medium/hard clips (1-10 s) at most 0.975, a chord progression 0.85, a tone with vibrato 0.87, white noise 0.89
   (in 88% of the bins). Shorter clips are not judged: one held note of a 0.5 s clip measures
   up to 0.997.

A clip that fails the rule is tagged with a `warning` by default, or refused when the caller
asks for minimum content (`--min-content`, `Tagger.tag(..., min_content=True)`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

#: Below this RMS level (dB relative to full scale) a recording is treated as silence: no
#: music to classify, and a model would still answer with a confident-looking distribution.
SILENCE_DBFS = -80.0
#: Below this RMS level (DC removed) a clip is near-silent: reported, not trusted.
NEAR_SILENCE_DBFS = -60.0
#: Frames quieter than the loudest frame by more than this carry no sound for the activity measure.
ACTIVE_RANGE_DB = 40.0
#: A clip with fewer active frames than this fraction is mostly silence or padding.
MIN_ACTIVE_FRACTION = 0.2
#: Median frame-to-mean spectral similarity at or above which the spectrum is constant.
STEADY_SIMILARITY = 0.998
#: Shorter clips are not judged constant: one held note would be (a 0.5 s reggae clip: 0.997).
MIN_TONE_SECONDS = 1.0
#: A constant spectrum whose energy (90%) sits in at most this fraction of the bins is a tone.
TONAL_BIN_FRACTION = 0.02

_FRAME_SECONDS = 0.02  # activity frames
_FFT_SECONDS = 0.064  # spectrum frames: resolves notes a semitone apart above ~250 Hz
_MAX_SPECTRA = 2000  # frames spread over a long clip are enough to judge whether it changes
_MIN_SPECTRA = 4  # fewer frames cannot show change
_BLOCK_SAMPLES = 1 << 20  # per block of the level and activity measures


def rms_dbfs(wave: torch.Tensor | np.ndarray) -> float:
    """RMS level of a waveform in dB relative to full scale (-inf for digital silence)."""
    x = torch.as_tensor(wave).flatten()
    # float64 in blocks of 1M samples: whole float64 copies of a 2-hour song at 16 kHz took 1.8 GB
    # (peak RSS of `predict` on it, genre_lab.bench).
    total = sum(float(part.double().square().sum()) for part in x.split(1 << 20))
    rms = math.sqrt(total / x.numel()) if x.numel() else 0.0
    return 20 * math.log10(rms) if rms > 0 else -math.inf


@dataclass(frozen=True)
class ContentStats:
    """The measurements behind `content_problem` (see the module docstring)."""

    dc_offset: float
    level_dbfs: float  # RMS with the mean removed
    active_fraction: float
    steadiness: float | None  # median frame-to-mean spectral similarity; None: too short to judge
    tonal_fraction: float | None  # fraction of bins holding 90% of the mean spectrum's energy
    duration: float
    #: RMS with the DC offset, the silence rule's measure (`rms_dbfs`, from the same pass).
    rms_level_dbfs: float = -math.inf
    #: Every sample is finite (NaN or infinity make every other measure meaningless).
    finite: bool = True

    def problem(self) -> str | None:
        """Why the clip carries no music to classify, or None when it does."""
        if not self.finite:
            return "the waveform contains NaN or infinite samples"
        if self.level_dbfs < NEAR_SILENCE_DBFS:
            # A resampled DC signal keeps some ringing at its ends (-62 dBFS for 0.5 resampled
            # from 11.025 to 16 kHz): judge the offset against near-silence, not silence.
            if rms_dbfs(torch.tensor([self.dc_offset])) >= NEAR_SILENCE_DBFS:
                return (f"no signal besides a constant DC offset of {self.dc_offset:+.3f} "
                        f"(RMS {self.level_dbfs:.0f} dBFS without it)")
            if self.level_dbfs < SILENCE_DBFS:
                return f"silent audio (RMS below {SILENCE_DBFS:.0f} dBFS)"
            return f"near-silent audio (RMS {self.level_dbfs:.0f} dBFS without DC, below {NEAR_SILENCE_DBFS:.0f} dBFS)"
        if self.active_fraction < MIN_ACTIVE_FRACTION:
            return (f"mostly silence or padding: {self.active_fraction:.1%} of the clip "
                    f"({self.active_fraction * self.duration:.2f} s of {self.duration:.2f} s) carries sound, "
                    f"below {MIN_ACTIVE_FRACTION:.0%}")
        if (self.steadiness is not None and self.tonal_fraction is not None and self.duration >= MIN_TONE_SECONDS
                and self.steadiness >= STEADY_SIMILARITY and self.tonal_fraction <= TONAL_BIN_FRACTION):
            return (f"a constant tone: the spectrum does not change (similarity {self.steadiness:.3f}) and "
                    f"90% of its energy is in {self.tonal_fraction:.1%} of the frequency bins")
        return None


def measure_content(wave: torch.Tensor | np.ndarray, sample_rate: int) -> ContentStats:
    """Measure a mono waveform for `content_problem`."""
    x = torch.as_tensor(wave).flatten().float()
    duration = len(x) / sample_rate
    if len(x) == 0:
        return ContentStats(0.0, -math.inf, 0.0, None, None, 0.0)
    # One pass serves the tagger's three checks (finite samples, silence, content): three passes
    # over every song cost 0.093-0.098 ms per second of audio, one 0.047 (8 Debian songs, 16 kHz).
    # float32 throughout: torch's float64-accumulating reductions of float32 took three times
    # as long (1.6 s against 0.5 s for 20 minutes at 16 kHz), and float32 sums are pairwise.
    dc = float(x.mean())
    frame = max(1, int(_FRAME_SECONDS * sample_rate))
    n = len(x) // frame
    # The signal minus its mean and its squares, one block of whole frames at a time: two
    # whole-song copies of a 2-hour song were 1.3 GB of `predict`'s peak memory.
    block = frame * max(1, _BLOCK_SAMPLES // frame)
    power = torch.empty(n)
    total = 0.0
    for start in range(0, len(x), block):
        squares = (x[start : start + block] - dc).square()
        total += float(squares.sum())
        whole = len(squares) // frame
        power[start // frame : start // frame + whole] = squares[: whole * frame].reshape(whole, frame).mean(1)
    if not (math.isfinite(dc) and math.isfinite(total)):
        # NaN or infinity reach the sums; so do finite samples beyond ~1e19 (their squares
        # overflow): the samples decide.
        if not all(bool(torch.isfinite(part).all()) for part in x.split(_BLOCK_SAMPLES)):
            return ContentStats(dc, math.nan, 0.0, None, None, duration, math.nan, finite=False)
    level = 10 * math.log10(total / len(x)) if total > 0 else -math.inf
    mean_square = total / len(x) + dc * dc
    rms_level = 10 * math.log10(mean_square) if mean_square > 0 else -math.inf
    if level < NEAR_SILENCE_DBFS or n == 0:
        return ContentStats(dc, level, 0.0 if n else 1.0, None, None, duration, rms_level)
    frame_db = 10 * torch.log10(power.clamp_min(1e-30))
    active = frame_db > max(float(frame_db.max()) - ACTIVE_RANGE_DB, SILENCE_DBFS)
    steadiness, tonal = _spectral_shape(x, dc, sample_rate)
    return ContentStats(dc, level, float(active.double().mean()), steadiness, tonal, duration, rms_level)


def content_problem(wave: torch.Tensor | np.ndarray, sample_rate: int) -> str | None:
    """Why a mono waveform carries no music to classify (DC only, near-silence, mostly
    padding, a constant tone), or None when it does."""
    return measure_content(wave, sample_rate).problem()


def _spectral_shape(x: torch.Tensor, dc: float, sample_rate: int) -> tuple[float | None, float | None]:
    """Steadiness and tonal fraction of `x` minus its mean `dc` (only the frames taken are
    copied)."""
    n_fft = 1 << max(4, round(math.log2(_FFT_SECONDS * sample_rate)))
    if len(x) < n_fft:
        return None, None
    hop = max(n_fft // 2, len(x) // _MAX_SPECTRA)
    frames = (x.unfold(0, n_fft, hop) - dc) * torch.hann_window(n_fft)
    mag = torch.fft.rfft(frames).abs()
    energy = mag.pow(2).sum(1)
    # Frames of padding or pauses would read as a steady (empty) spectrum: judge sounding ones.
    mag = mag[energy > energy.max() * 1e-4]
    if len(mag) < _MIN_SPECTRA:
        return None, None
    mean = mag.mean(0)
    similarity = (mag @ mean) / (mag.norm(dim=1) * mean.norm()).clamp_min(1e-30)
    power = mean.pow(2).sort(descending=True).values
    bins_90 = int((power.cumsum(0) < 0.9 * power.sum()).sum()) + 1
    return float(similarity.median()), bins_90 / len(power)
