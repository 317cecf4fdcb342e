"""Sound sources: wavetable instruments (sums of harmonics with envelopes), one-shot drum
kits, and a formant voice. Every sound is numpy only and drawn from the caller's rng."""

from __future__ import annotations

import numpy as np

_TAB_N = 2048  # wavetable length (power of two: index with a mask)
_TAB_MASK = _TAB_N - 1
MAX_HARMONICS = 48
# sin(2*pi*k*t) for harmonics k = 1..MAX_HARMONICS over one period, shared by all wavetables
_BASIS = np.sin(2.0 * np.pi * np.outer(np.arange(1, MAX_HARMONICS + 1), np.arange(_TAB_N) / _TAB_N))


def hz(midi: float) -> float:
    return 440.0 * 2.0 ** ((midi - 69.0) / 12.0)


def saw(h: int = MAX_HARMONICS, roll: float = 1.0) -> np.ndarray:
    return 1.0 / np.arange(1, h + 1) ** roll


def square(h: int = MAX_HARMONICS, roll: float = 1.0) -> np.ndarray:
    k = np.arange(1, h + 1)
    return np.where(k % 2 == 1, 1.0 / k ** roll, 0.0)


class Instrument:
    """A pitched instrument: a sustained "body" wavetable plus a brighter attack wavetable."""

    def __init__(self, sr, body, bright=None, bright_tau=0.04, bright_mix=0.0, f_top=1000.0,
                 rng=None, jitter=0.25):
        self.sr = sr
        self.body = self._table(body, f_top, rng, jitter)
        self.bright = self._table(bright, f_top, rng, jitter) if bright is not None else None
        self.bright_tau, self.bright_mix = bright_tau, bright_mix

    def _table(self, amps, f_top, rng, jitter):
        amps = np.asarray(amps, dtype=np.float64)[:MAX_HARMONICS]
        h = max(1, min(amps.size, int(0.47 * self.sr / max(f_top, 1.0))))
        amps = amps[:h].copy()
        if rng is not None and jitter > 0:
            amps[1:] *= rng.uniform(1.0 - jitter, 1.0 + jitter, h - 1)
        tab = amps @ _BASIS[:h]
        return tab / max(np.abs(tab).max(), 1e-9)

    def note(self, buf, start, midi, length, attack=0.005, tau=None, hold=None, release=0.05,
             gain=1.0, vib_rate=0.0, vib_depth=0.0, bend=0.0, bend_tau=0.06, phase=0.0):
        """Add one note to `buf` from sample `start` (may be negative) for `length` samples.

        Envelope: linear attack, optional exponential decay (`tau` s), optional gate at `hold`
        seconds followed by an exponential release. `bend` semitones glide to pitch with time
        constant `bend_tau`; vibrato is relative frequency modulation at `vib_rate` Hz.
        """
        self.chord(buf, start, (midi,), length, attack, tau, hold, release, gain, vib_rate,
                   vib_depth, bend, bend_tau, (phase,))

    def chord(self, buf, start, midis, length, attack=0.005, tau=None, hold=None, release=0.05,
              gain=1.0, vib_rate=0.0, vib_depth=0.0, bend=0.0, bend_tau=0.06, phases=None):
        """Several simultaneous notes sharing one envelope (see `note`)."""
        n = buf.shape[0]
        a = max(0, -start)
        b = min(length, n - start)
        if b <= a:
            return
        sr = self.sr
        t = np.arange(a, b) / sr
        env = np.minimum(t / attack, 1.0) if attack > 0 else np.ones_like(t)
        if tau is not None:
            env *= np.exp(-t / tau)
        if hold is not None:
            env *= np.exp(-np.maximum(t - hold, 0.0) / release)
        if phases is None:
            phases = np.linspace(0.0, 1.0, len(midis), endpoint=False)
        glide = 2.0 ** (bend * np.exp(-t / bend_tau) / 12.0) if bend != 0.0 else None
        w = 2.0 * np.pi * vib_rate
        x = np.zeros_like(t)
        bright = self.bright is not None and self.bright_mix > 0
        xb = np.zeros_like(t) if bright else None
        for midi, phase in zip(midis, phases):
            f0 = hz(midi)
            if glide is not None:  # integrate the instantaneous frequency
                f = f0 * glide
                if vib_depth > 0.0:
                    f = f * (1.0 + vib_depth * np.sin(w * t + phase * 7.0))
                ph = np.cumsum(f) / sr + phase
            elif vib_depth > 0.0:  # vibrato alone has a closed-form phase
                ph = f0 * t - (f0 * vib_depth / w) * np.cos(w * t + phase * 7.0) + phase
            else:
                ph = f0 * t + phase
            idx = (ph * _TAB_N).astype(np.int64) & _TAB_MASK
            x += self.body[idx]
            if bright:
                xb += self.bright[idx]
        if bright:
            x += (self.bright_mix * np.exp(-t / self.bright_tau)) * xb
        buf[start + a:start + b] += (gain * env) * x


def place(buf, start, sound, gain=1.0):
    n, length = buf.shape[0], sound.shape[0]
    a = max(0, -start)
    b = min(length, n - start)
    if b > a:
        buf[start + a:start + b] += gain * sound[a:b]


def diff_highpass(x, order=1):
    for _ in range(order):
        x = np.diff(x, prepend=0.0)
    return x


def smooth(x, taps=3):
    return np.convolve(x, np.ones(taps) / taps, mode="same")


class DrumKit:
    """One drum kit per clip: each one-shot is rendered once and reused for every hit."""

    def __init__(self, rng, sr, kick_hz=(45, 65), kick_decay=(0.12, 0.3), snare_decay=(0.08, 0.2)):
        self.rng, self.sr = rng, sr
        self.nyq = 0.45 * sr
        self.kick = self._kick(rng.uniform(*kick_hz), rng.uniform(2.0, 3.5), rng.uniform(*kick_decay))
        self.snare = self._snare(rng.uniform(160, 240), rng.uniform(*snare_decay))
        self.hat = self._noise_hit(rng.uniform(0.02, 0.045), 2, length=0.15)
        self.open_hat = self._noise_hit(rng.uniform(0.14, 0.3), 2, length=0.6)

    def _t(self, seconds):
        return np.arange(int(seconds * self.sr)) / self.sr

    def _sines(self, t, freqs, amps, decay):
        out = np.zeros_like(t)
        for f, a in zip(freqs, amps):
            if f < self.nyq:
                out += a * np.sin(2 * np.pi * f * t)
        return out * np.exp(-t / decay)

    def _kick(self, f_end, ratio, decay):
        t = self._t(min(0.7, 5 * decay))
        f = f_end * (1.0 + (ratio - 1.0) * np.exp(-t / 0.03))
        x = np.sin(2 * np.pi * np.cumsum(f) / self.sr) * np.exp(-t / decay)
        click = diff_highpass(self.rng.standard_normal(t.size)) * np.exp(-t / 0.003) * 0.15
        return x + click

    def _snare(self, tone, decay):
        t = self._t(min(0.6, 4 * decay))
        noise = self.rng.standard_normal(t.size)
        noise = 0.5 * noise + diff_highpass(noise)
        body = self._sines(t, [tone, tone * 1.6], [1.0, 0.5], 0.05)
        return 0.5 * noise * np.exp(-t / decay) + 0.8 * body

    def _noise_hit(self, decay, order, length):
        t = self._t(min(length, 6 * decay))
        return diff_highpass(self.rng.standard_normal(t.size), order) * 0.5 * np.exp(-t / decay)

    def clap(self):
        t = self._t(0.3)
        env = np.zeros_like(t)
        for d in (0.0, 0.011, 0.022):
            env += (t >= d) * np.exp(-np.maximum(t - d, 0) / 0.006)
        env += (t >= 0.03) * 0.5 * np.exp(-np.maximum(t - 0.03, 0) / 0.09)
        return diff_highpass(self.rng.standard_normal(t.size)) * env

    def crash(self, decay=None):
        decay = decay or self.rng.uniform(0.7, 1.4)
        t = self._t(min(2.5, 3 * decay))
        x = diff_highpass(self.rng.standard_normal(t.size), 1)
        return (0.6 * x + 0.3 * diff_highpass(x)) * np.exp(-t / decay)

    def ride(self, bell=0.4):
        t = self._t(0.9)
        x = diff_highpass(self.rng.standard_normal(t.size), 2) * 0.3 * np.exp(-t / 0.3)
        base = self.rng.uniform(2400, 3400)
        x += bell * self._sines(t, [base, base * 1.48, base * 1.93, base * 2.6], [1, .7, .5, .3], 0.45)
        return x

    def rim(self):
        t = self._t(0.08)
        return self._sines(t, [1700.0, 820.0], [1.0, 0.6], 0.012) + \
            0.4 * diff_highpass(self.rng.standard_normal(t.size)) * np.exp(-t / 0.004)

    def brush(self, beat_s):
        t = self._t(beat_s)
        noise = diff_highpass(self.rng.standard_normal(t.size))
        return noise * 0.3 * np.sin(np.pi * t / t[-1]) ** 2



def strum(inst, buf, start, notes, length, gap, up=False, **kw):
    order = notes[::-1] if up else notes
    for i, m in enumerate(order):
        inst.note(buf, start + i * gap, m, length, **kw)


#: First three formant frequencies (Hz) of sung vowels (averages of adult voices).
VOWELS: dict[str, tuple[float, float, float]] = {
    "a": (730.0, 1090.0, 2440.0), "e": (530.0, 1840.0, 2480.0), "i": (270.0, 2290.0, 3010.0),
    "o": (570.0, 840.0, 2410.0), "u": (300.0, 870.0, 2240.0),
}
_FORMANT_BW = np.array([90.0, 110.0, 170.0])
_FORMANT_GAIN = np.array([1.0, 0.6, 0.3])


def vowel_harmonics(f0: float, vowel: str) -> np.ndarray:
    """Harmonic amplitudes of a voice singing `vowel` at `f0` Hz: a glottal source falling
    12 dB/octave shaped by three resonances (the vowel's formants)."""
    f = f0 * np.arange(1, MAX_HARMONICS + 1)
    formants = np.asarray(VOWELS[vowel])
    shape = (_FORMANT_GAIN / (1.0 + ((f[:, None] - formants) / (0.5 * _FORMANT_BW)) ** 2)).sum(axis=1)
    return (0.05 + shape) / np.arange(1, MAX_HARMONICS + 1) ** 1.0
