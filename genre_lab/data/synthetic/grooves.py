"""Time and harmony: the per-clip beat clock (tempo, swing, rubato, humanised onsets), chord
qualities and voicings. A recipe asks the clock where its bar positions fall in the clip."""

from __future__ import annotations

import numpy as np

from genre_lab.data.synthetic.instruments import place
from genre_lab.data.synthetic.levels import Difficulty

CHORDS = {
    "maj": (0, 4, 7), "min": (0, 3, 7), "dom7": (0, 4, 7, 10), "maj7": (0, 4, 7, 11),
    "min7": (0, 3, 7, 10), "dom9": (4, 10, 14, 19), "min9": (3, 10, 14, 19),
    "maj9": (4, 11, 14, 19), "dom13": (4, 10, 14, 21), "5": (0, 7, 12),
}


def swing_positions(pos, ratio, unit=1.0):
    """Map straight positions (beats) to swung ones: the off-beat of each `unit` moves to `ratio`."""
    pos = np.asarray(pos, dtype=np.float64)
    base = np.floor(pos / unit) * unit
    f = (pos - base) / unit
    g = np.where(f < 0.5, f / 0.5 * ratio, ratio + (f - 0.5) / 0.5 * (1.0 - ratio))
    return base + g * unit


class Clip:
    """Per-clip state: rng, sample rate, length, difficulty and a beat clock.

    A clip built with `host=` is a guest band: it plays in the host's key, tempo and bar grid
    (its own tempo draws are made and ignored), so its parts can be mixed into the host's.
    """

    def __init__(self, rng, sr, n, difficulty: Difficulty, host: Clip | None = None):
        self.rng, self.sr, self.n = rng, sr, n
        self.level = difficulty
        self.host = host
        self.dur = n / sr
        self.key = int(rng.integers(12))
        self.jit = rng.uniform(0.002, 0.007)
        if host is not None:
            self.key = host.key

    def draw_bpm(self, lo, hi):
        """A tempo from the genre's range [lo, hi] BPM, stretched by the difficulty level."""
        w = self.level.tempo_widen
        return self.rng.uniform(lo / (1.0 + w), hi * (1.0 + w))

    def tempo(self, bpm, rubato=0.0):
        r = self.rng
        self.bpm = bpm
        self.beat_s = 60.0 / bpm
        self.rub_a = rubato
        self.rub_p = r.uniform(6.0, 12.0)
        self.rub_ph = r.uniform(0, 2 * np.pi)
        self.start_beat = r.uniform(0.0, 4.0)
        beats = self.dur / self.beat_s / (1.0 - 0.9 * min(rubato * 2 * np.pi / self.rub_p, 0.9))
        self.n_bars = int(np.ceil((self.start_beat + beats) / 4.0)) + 1
        self.bar0 = int(r.integers(64))  # where in a progression the clip starts
        if self.host is not None:
            for name in ("bpm", "beat_s", "rub_a", "rub_p", "rub_ph", "start_beat", "n_bars", "bar0"):
                setattr(self, name, getattr(self.host, name))

    def time(self, beats):
        """Seconds from the clip start of absolute beat positions (bar 0 beat 0 = 0)."""
        x = np.asarray(beats, dtype=np.float64) - self.start_beat
        if self.rub_a > 0:
            w = 2 * np.pi / self.rub_p
            x = x + self.rub_a * (np.sin(w * x + self.rub_ph) - np.sin(self.rub_ph))
        return x * self.beat_s

    def buf(self):
        return np.zeros(self.n)

    def events(self, positions, prob=1.0, swing=None, swing_unit=1.0, preroll=2.5):
        """Occurrences of bar positions (in beats, 0..4) over the clip.

        Returns (sample onsets, bar index, position index); hits that start up to `preroll`
        seconds before the clip are kept so long sounds ring into it.
        """
        pos = np.asarray(positions, dtype=np.float64)
        if swing is not None:
            pos = swing_positions(pos, swing, swing_unit)
        bars = np.arange(self.n_bars)
        beats = (bars[:, None] * 4.0 + pos[None, :]).ravel()
        bar_i = np.repeat(bars, pos.size)
        pos_i = np.tile(np.arange(pos.size), self.n_bars)
        t = self.time(beats)
        keep = (t > -preroll) & (t < self.dur)
        if prob < 1.0:
            keep &= self.rng.random(t.size) < prob
        t, bar_i, pos_i = t[keep], bar_i[keep], pos_i[keep]
        t = t + self.rng.normal(0.0, self.jit, t.size)
        return np.round(t * self.sr).astype(np.int64), bar_i, pos_i

    def secs(self, beats):
        return int(beats * self.beat_s * self.sr)

    def hits(self, buf, sound, positions, gain=1.0, vel_sd=0.1, accents=None, **kw):
        on, _, pi = self.events(positions, **kw)
        vel = gain * np.clip(1.0 + vel_sd * self.rng.standard_normal(on.size), 0.3, 1.6)
        if accents is not None:
            vel = vel * np.asarray(accents, dtype=np.float64)[pi]
        for s, v in zip(on, vel):
            place(buf, int(s), sound, v)


def prog_root(prog, c, bar, per_bar=1, sub=0):
    return prog[((c.bar0 + bar) * per_bar + sub) % len(prog)]


def voicing(root_pc, intervals, low):
    """Chord voicing: the root pitch class placed at or above `low`, then the intervals."""
    r = low + (root_pc - low) % 12
    return [r + i for i in intervals]

