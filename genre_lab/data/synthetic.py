"""Procedurally generated music clips in ten genre-like classes (a stand-in for GTZAN).

Every clip is rendered from a seed with numpy only: one-shot drum sounds and wavetable notes
(sums of harmonics with envelopes) are added into a buffer at onset positions computed from a
tempo, a bar grid and the genre's rhythm patterns. The classes differ the way genres do -- in
rhythm, tempo range, which instruments play and their timbre -- while everything that a
single loudness or pitch number could latch onto is randomised per clip and shared by all
classes: tempo (within overlapping genre ranges), key (12 transpositions), where in the bar
and the chord progression the clip starts, the level of every part (+-5 dB around the
genre's mix), per-clip timbre (harmonic amplitudes, decays), a master EQ (tilt of -2..+1.5
dB/octave, a low-pass at 2.5-8 kHz, a high-pass at 25-90 Hz), background noise (white to
brown, 12-40 dB below the music) and the output RMS (0.03-0.15, log-uniform). Timing and
velocities are humanised a little.

Recipes (tempo in quarter-note BPM; positions are beats of a 4/4 bar counted from 1):

blues      60-100 BPM, shuffle (swung eighths, ratio 0.60-0.70), 12-bar I-IV-V with dominant
           sevenths. A plucked guitar plays the boogie figure (root with 5th/6th/b7th on
           swung eighths), a bass walks root-5th-6th-5th quarters, an optional lead guitar
           plays minor-pentatonic/blue notes bent up into pitch with vibrato; light kick on
           1/3, snare backbeat on 2/4, shuffled hats.
classical  50-90 BPM with rubato (the beat clock drifts sinusoidally), no drums and no bass
           pulse: a four-voice string section (two detuned saw voices per note, vibrato,
           slow attack and release) holds diatonic chords that change every 2-4 beats, an
           expressive violin/flute-like melody moves stepwise on top, and sometimes a soft
           harp arpeggio ripples underneath.
country    100-140 BPM, straight "boom-chick": bass alternates root (beat 1) and fifth (beat 3)
           with walk-ups, a bright twangy acoustic chord is strummed on 2/4, light brushy
           snare on 2/4 (sometimes a soft train-beat of sixteenths), I-IV-I-V changes, and
           often a banjo-like roll of bright plucked eighths.
disco      110-130 BPM, four-on-the-floor kick, open hi-hat on every off-beat, soft closed
           sixteenths, clap/snare on 2/4, octave-bouncing eighth-note bass on minor-seventh
           vamps, short string stabs on syncopated positions and often a muted
           sixteenth-note "chicken-scratch" guitar.
hiphop     80-100 BPM, boom-bap: a syncopated kick pattern (one of several), a hard snare with
           clap on 2/4, swung sixteenth hats with accents, a long-decay sub "808" sine bass
           that follows the kick, a mellow electric-piano chord once or twice a bar and
           sometimes a sparse bell motif.
jazz       120-200 BPM, swing: ride cymbal "ding ding-a ding ding-a", hi-hat foot on 2/4,
           brushed or ghost-note snare, feathered kick, a walking upright bass (a quarter
           note per beat, random walk over chord tones and approach notes) and
           electric-piano comping with rootless 7th/9th voicings on syncopated positions over
           ii-V-I progressions.
metal      140-200 BPM, low-tuned power chords (root, fifth, octave) from saw waves,
           double-tracked and hard-clipped (drive 12-40): palm-muted sixteenth chugs with
           accented sustained chords on phrygian/tritone roots; double-kick sixteenths (or
           gallops), snare on 2/4 (sometimes blast-like), crash on every bar plus random
           crashes and a ride bell; distorted bass.
pop        100-130 BPM, kick on 1/3 (plus an "and of 2"), snare/clap on 2/4, straight eighth
           hats, soft synth-pad chords on I-V-vi-IV, a clean pulse-wave lead singing a
           major-pentatonic line with vibrato, synth bass on the roots and sometimes a
           plucked arpeggio synth.
reggae     60-90 BPM, one-drop: kick and rim-shot snare together on beat 3 only, lightly swung
           eighth hats, staccato off-beat skank chords (every "and", or 2/4 with a double
           chop), sometimes an organ "bubble", and a deep round bass riff with rests that
           repeats every bar on one- or two-chord minor vamps.
rock       100-140 BPM, kick on 1/3 (sometimes the "and of 3"), snare on 2/4, eighth hats or
           ride, crashes on some bar starts, moderately overdriven (tanh, drive 2.5-6) guitar
           chords strummed in eighths or held, bass on root eighths, I-bVII-IV or I-IV-V
           progressions.

Public API: `GENRES`, `render_clip` and `synthetic_split`.
"""

from __future__ import annotations

import numpy as np

GENRES: tuple[str, ...] = (
    "blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock",
)
_SPLITS = ("train", "val", "test")

# --------------------------------------------------------------------------------------------
# Low-level sound building blocks
# --------------------------------------------------------------------------------------------

_TAB_N = 2048  # wavetable length (power of two: index with a mask)
_TAB_MASK = _TAB_N - 1
_MAX_H = 48
# sin(2*pi*k*t) for harmonics k = 1.._MAX_H over one period, shared by all wavetables
_BASIS = np.sin(2.0 * np.pi * np.outer(np.arange(1, _MAX_H + 1), np.arange(_TAB_N) / _TAB_N))

_CHORDS = {
    "maj": (0, 4, 7), "min": (0, 3, 7), "dom7": (0, 4, 7, 10), "maj7": (0, 4, 7, 11),
    "min7": (0, 3, 7, 10), "dom9": (4, 10, 14, 19), "min9": (3, 10, 14, 19),
    "maj9": (4, 11, 14, 19), "dom13": (4, 10, 14, 21), "5": (0, 7, 12),
}


def _hz(midi: float) -> float:
    return 440.0 * 2.0 ** ((midi - 69.0) / 12.0)


def _saw(h: int = _MAX_H, roll: float = 1.0) -> np.ndarray:
    return 1.0 / np.arange(1, h + 1) ** roll


def _square(h: int = _MAX_H, roll: float = 1.0) -> np.ndarray:
    k = np.arange(1, h + 1)
    return np.where(k % 2 == 1, 1.0 / k ** roll, 0.0)


class _Inst:
    """A pitched instrument: a sustained "body" wavetable plus a brighter attack wavetable."""

    def __init__(self, sr, body, bright=None, bright_tau=0.04, bright_mix=0.0, f_top=1000.0,
                 rng=None, jitter=0.25):
        self.sr = sr
        self.body = self._table(body, f_top, rng, jitter)
        self.bright = self._table(bright, f_top, rng, jitter) if bright is not None else None
        self.bright_tau, self.bright_mix = bright_tau, bright_mix

    def _table(self, amps, f_top, rng, jitter):
        amps = np.asarray(amps, dtype=np.float64)[:_MAX_H]
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
            f0 = _hz(midi)
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


def _place(buf, start, sound, gain=1.0):
    n, length = buf.shape[0], sound.shape[0]
    a = max(0, -start)
    b = min(length, n - start)
    if b > a:
        buf[start + a:start + b] += gain * sound[a:b]


def _hp(x, order=1):
    for _ in range(order):
        x = np.diff(x, prepend=0.0)
    return x


def _smooth(x, taps=3):
    return np.convolve(x, np.ones(taps) / taps, mode="same")


class _Kit:
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
        click = _hp(self.rng.standard_normal(t.size)) * np.exp(-t / 0.003) * 0.15
        return x + click

    def _snare(self, tone, decay):
        t = self._t(min(0.6, 4 * decay))
        noise = self.rng.standard_normal(t.size)
        noise = 0.5 * noise + _hp(noise)
        body = self._sines(t, [tone, tone * 1.6], [1.0, 0.5], 0.05)
        return 0.5 * noise * np.exp(-t / decay) + 0.8 * body

    def _noise_hit(self, decay, order, length):
        t = self._t(min(length, 6 * decay))
        return _hp(self.rng.standard_normal(t.size), order) * 0.5 * np.exp(-t / decay)

    def clap(self):
        t = self._t(0.3)
        env = np.zeros_like(t)
        for d in (0.0, 0.011, 0.022):
            env += (t >= d) * np.exp(-np.maximum(t - d, 0) / 0.006)
        env += (t >= 0.03) * 0.5 * np.exp(-np.maximum(t - 0.03, 0) / 0.09)
        return _hp(self.rng.standard_normal(t.size)) * env

    def crash(self, decay=None):
        decay = decay or self.rng.uniform(0.7, 1.4)
        t = self._t(min(2.5, 3 * decay))
        x = _hp(self.rng.standard_normal(t.size), 1)
        return (0.6 * x + 0.3 * _hp(x)) * np.exp(-t / decay)

    def ride(self, bell=0.4):
        t = self._t(0.9)
        x = _hp(self.rng.standard_normal(t.size), 2) * 0.3 * np.exp(-t / 0.3)
        base = self.rng.uniform(2400, 3400)
        x += bell * self._sines(t, [base, base * 1.48, base * 1.93, base * 2.6], [1, .7, .5, .3], 0.45)
        return x

    def rim(self):
        t = self._t(0.08)
        return self._sines(t, [1700.0, 820.0], [1.0, 0.6], 0.012) + \
            0.4 * _hp(self.rng.standard_normal(t.size)) * np.exp(-t / 0.004)

    def brush(self, beat_s):
        t = self._t(beat_s)
        noise = _hp(self.rng.standard_normal(t.size))
        return noise * 0.3 * np.sin(np.pi * t / t[-1]) ** 2


# --------------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------------

def _swing(pos, ratio, unit=1.0):
    """Map straight positions (beats) to swung ones: the off-beat of each `unit` moves to `ratio`."""
    pos = np.asarray(pos, dtype=np.float64)
    base = np.floor(pos / unit) * unit
    f = (pos - base) / unit
    g = np.where(f < 0.5, f / 0.5 * ratio, ratio + (f - 0.5) / 0.5 * (1.0 - ratio))
    return base + g * unit


class _Clip:
    """Per-clip state: rng, sample rate, length and a beat clock."""

    def __init__(self, rng, sr, n):
        self.rng, self.sr, self.n = rng, sr, n
        self.dur = n / sr
        self.key = int(rng.integers(12))
        self.jit = rng.uniform(0.002, 0.007)

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
            pos = _swing(pos, swing, swing_unit)
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
            _place(buf, int(s), sound, v)


def _prog_root(prog, c, bar, per_bar=1, sub=0):
    return prog[((c.bar0 + bar) * per_bar + sub) % len(prog)]


def _voice(root_pc, intervals, low):
    """Chord voicing: the root pitch class placed at or above `low`, then the intervals."""
    r = low + (root_pc - low) % 12
    return [r + i for i in intervals]


# --------------------------------------------------------------------------------------------
# Genre recipes: each returns a list of (part buffer, mix level in dB)
# --------------------------------------------------------------------------------------------

def _blues(c):
    r, sr = c.rng, c.sr
    c.tempo(r.uniform(60, 100))
    sw = r.uniform(0.60, 0.70)
    prog = [0, 0, 0, 0, 5, 5, 0, 0, 7, 5, 0, 7]
    kit = _Kit(r, sr, kick_decay=(0.1, 0.2))
    gtr = _Inst(sr, _saw(roll=1.3), _saw(roll=0.8), bright_tau=0.03, bright_mix=1.0, f_top=400, rng=r)
    # boogie figure: root + (5, 5, 6, 6, b7, b7, 6, 6) on swung eighths
    boogie = c.buf()
    tops = [7, 7, 9, 9, 10, 10, 9, 9]
    on, bar, pi = c.events(np.arange(8) * 0.5, swing=sw)
    low = 40 + r.integers(0, 3)
    note_len = c.secs(0.45)
    acc = r.uniform(0.6, 0.9)
    for s, b, p in zip(on, bar, pi):
        root = _voice((c.key + _prog_root(prog, c, b)) % 12, [0], low)[0]
        g = 1.0 if p % 2 == 0 else acc
        gtr.chord(boogie, int(s), (root, root + tops[p]), note_len, tau=0.25, hold=0.35 * c.beat_s,
                  release=0.03, gain=g)
    bass = c.buf()
    b_inst = _Inst(sr, [1, 0.5, 0.2, 0.1], f_top=150, rng=r)
    walk = [0, 7, 9, 7]
    on, bar, pi = c.events([0, 1, 2, 3])
    for s, b, p in zip(on, bar, pi):
        root = _voice((c.key + _prog_root(prog, c, b)) % 12, [0], 28)[0]
        b_inst.note(bass, int(s), root + walk[p], c.secs(0.95), tau=0.5, hold=0.8 * c.beat_s)
    parts = [(boogie, 0.0), (bass, -4.0)]
    if r.random() < 0.7:  # lead licks with bends
        lead = c.buf()
        li = _Inst(sr, _saw(roll=1.2), _saw(roll=0.7), bright_mix=0.6, bright_tau=0.05, f_top=900, rng=r)
        scale = [0, 3, 5, 6, 7, 10, 12, 15]
        on, bar, pi = c.events(np.arange(8) * 0.5, swing=sw, prob=0.35)
        deg = int(r.integers(len(scale)))
        for s in on:
            deg = int(np.clip(deg + r.integers(-2, 3), 0, len(scale) - 1))
            m = 64 + (c.key % 12) + scale[deg]
            bend = -r.choice([0.0, 1.0, 2.0], p=[0.4, 0.3, 0.3])
            li.note(lead, int(s), m, c.secs(1.0), tau=0.5, hold=0.7 * c.beat_s, release=0.08,
                    bend=bend, bend_tau=0.07, vib_rate=5.5, vib_depth=0.006, phase=r.random())
        parts.append((lead, -3.0))
    kick, snare, hat = c.buf(), c.buf(), c.buf()
    c.hits(kick, kit.kick, [0, 2])
    c.hits(snare, kit.snare, [1, 3])
    c.hits(hat, kit.hat if r.random() < 0.5 else kit.ride(0.2), np.arange(8) * 0.5, swing=sw,
           accents=[1, .6] * 4)
    parts += [(kick, -7.0), (snare, -7.0), (hat, -12.0)]
    return parts


def _classical(c):
    r, sr = c.rng, c.sr
    c.tempo(r.uniform(50, 90), rubato=r.uniform(0.3, 0.7))
    minor = r.random() < 0.5
    if minor:
        progs = [[(0, "min"), (5, "min"), (7, "maj"), (0, "min")],
                 [(0, "min"), (8, "maj"), (3, "maj"), (7, "maj")]]
    else:
        progs = [[(0, "maj"), (5, "maj"), (7, "maj"), (0, "maj")],
                 [(0, "maj"), (9, "min"), (5, "maj"), (7, "maj")],
                 [(0, "maj"), (7, "maj"), (9, "min"), (4, "min"),
                  (5, "maj"), (0, "maj"), (5, "maj"), (7, "maj")]]
    prog = progs[int(r.integers(len(progs)))]
    per_bar = int(r.choice([1, 2]))
    strings = c.buf()
    st = _Inst(sr, _saw(roll=1.25), f_top=900, rng=r, jitter=0.3)
    att, rel = r.uniform(0.15, 0.5), r.uniform(0.3, 0.8)
    detune = r.uniform(0.04, 0.1)  # semitones
    chord_beats = 4.0 / per_bar
    starts = np.arange(per_bar) * chord_beats
    on, bar, pi = c.events(starts, preroll=3.0)
    hold_s = chord_beats * c.beat_s
    length = int((hold_s + 4 * rel) * sr)
    for s, b, p in zip(on, bar, pi):
        root, q = _prog_root(prog, c, b, per_bar, p)
        pc = (c.key + root) % 12
        ivs = _CHORDS[q]
        voices = [_voice(pc, [0], 36)[0], _voice(pc, [ivs[2]], 53)[0],
                  _voice(pc, [ivs[1]], 57)[0], _voice(pc, [0], 62)[0]]
        st.chord(strings, int(s), [m + d for m in voices for d in (-detune, detune)], length,
                 attack=att, hold=hold_s, release=rel, vib_rate=r.uniform(4.8, 6.2),
                 vib_depth=r.uniform(0.002, 0.005), phases=r.random(2 * len(voices)))
    parts = [(strings, 0.0)]
    if r.random() < 0.85:
        mel = c.buf()
        flute = r.random() < 0.4
        mi = _Inst(sr, [1, 0.3, 0.1, 0.05] if flute else _saw(roll=1.1), f_top=1500, rng=r)
        scale = [0, 2, 3, 5, 7, 8, 11] if minor else [0, 2, 4, 5, 7, 9, 11]
        pos, t = [], 0.0
        while t < 4.0:
            pos.append(t)
            t += r.choice([0.5, 1.0, 1.0, 1.5, 2.0])
        on, bar, pi = c.events(pos)
        deg = int(r.integers(7))
        for k, s in enumerate(on):
            deg = int(np.clip(deg + r.choice([-2, -1, -1, 1, 1, 2]), 0, 13))
            m = 72 + (c.key % 12) - 12 * (c.key > 6) + scale[deg % 7] + 12 * (deg // 7)
            nxt = on[k + 1] if k + 1 < len(on) else s + c.secs(1.0)
            hold = max(nxt - s, 1) / sr
            mi.note(mel, int(s), m, int((hold + 0.4) * sr), attack=r.uniform(0.04, 0.12),
                    hold=hold, release=0.1, vib_rate=r.uniform(5, 6.5), vib_depth=0.006,
                    phase=r.random())
        parts.append((mel, -2.0))
    if r.random() < 0.4:
        harp = c.buf()
        hi = _Inst(sr, [1, 0.4, 0.2, 0.1, 0.05], f_top=1000, rng=r)
        on, bar, pi = c.events(np.arange(8) * 0.5)
        for s, b, p in zip(on, bar, pi):
            root, q = _prog_root(prog, c, b, per_bar, int(p * per_bar // 8))
            ivs = list(_CHORDS[q]) + [12, 12 + _CHORDS[q][1], 12 + _CHORDS[q][2], 24]
            m = _voice((c.key + root) % 12, [ivs[p % len(ivs)]], 48)[0]
            hi.note(harp, int(s), m, int(1.2 * sr), attack=0.002, tau=0.5)
        parts.append((harp, -8.0))
    return parts


def _strum(inst, buf, start, notes, length, gap, up=False, **kw):
    order = notes[::-1] if up else notes
    for i, m in enumerate(order):
        inst.note(buf, start + i * gap, m, length, **kw)


def _country(c):
    r, sr = c.rng, c.sr
    c.tempo(r.uniform(100, 140))
    prog = [[0, 5, 0, 7], [0, 0, 5, 7], [0, 5, 7, 0]][int(r.integers(3))]
    kit = _Kit(r, sr, snare_decay=(0.06, 0.12))
    bass = c.buf()
    bi = _Inst(sr, [1, 0.6, 0.25, 0.1], [1, 0.8, 0.6, 0.4, 0.3], bright_mix=0.5, f_top=200, rng=r)
    on, bar, pi = c.events([0, 2])
    walk_up = r.random() < 0.5
    for s, b, p in zip(on, bar, pi):
        root = _voice((c.key + _prog_root(prog, c, b)) % 12, [0], 36)[0]
        m = root if p == 0 else root - 5
        bi.note(bass, int(s), m, c.secs(1.5), tau=0.3, hold=1.4 * c.beat_s)
    if walk_up:
        on, bar, pi = c.events([3.0, 3.5], prob=0.6)
        for s, b, p in zip(on, bar, pi):
            nxt = _voice((c.key + _prog_root(prog, c, b + 1)) % 12, [0], 36)[0]
            bi.note(bass, int(s), nxt - 2 + p, c.secs(0.5), tau=0.2)
    chords = c.buf()
    ac = _Inst(sr, _saw(roll=0.9), _saw(roll=0.5), bright_mix=0.8, bright_tau=0.02, f_top=700, rng=r)
    on, bar, pi = c.events([1, 3])
    gap = int(r.uniform(0.007, 0.014) * sr)
    for s, b, p in zip(on, bar, pi):
        pc = (c.key + _prog_root(prog, c, b)) % 12
        notes = _voice(pc, [0, 7, 12, 16, 19, 24], 45)
        _strum(ac, chords, int(s), notes, c.secs(0.9), gap, up=bool(p), tau=0.18,
               gain=0.5)
    parts = [(bass, -2.0), (chords, 0.0)]
    if r.random() < 0.6:  # banjo-like roll
        banjo = c.buf()
        bj = _Inst(sr, _saw(roll=0.7), f_top=1200, rng=r)
        pattern = [0, 2, 4, 1, 3, 2, 4, 1]
        on, bar, pi = c.events(np.arange(8) * 0.5)
        for s, b, p in zip(on, bar, pi):
            pc = (c.key + _prog_root(prog, c, b)) % 12
            notes = _voice(pc, [0, 4, 7, 12, 16], 62)
            bj.note(banjo, int(s), notes[pattern[p]], c.secs(0.6), tau=0.08)
        parts.append((banjo, -5.0))
    snare, kick = c.buf(), c.buf()
    if r.random() < 0.35:  # train beat
        c.hits(snare, kit.snare, np.arange(16) * 0.25, accents=([1, .3, .4, .3] * 4), vel_sd=0.15)
    else:
        c.hits(snare, kit.snare, [1, 3])
    c.hits(kick, kit.kick, [0, 2], gain=0.7)
    parts += [(snare, -9.0), (kick, -10.0)]
    return parts


def _disco(c):
    r, sr = c.rng, c.sr
    c.tempo(r.uniform(110, 130))
    prog = [[(0, "min7"), (5, "min7")], [(0, "min7"), (3, "maj7")], [(2, "min7"), (7, "dom7")],
            [(0, "min7"), (0, "min7"), (5, "dom7"), (5, "dom7")]][int(r.integers(4))]
    kit = _Kit(r, sr, kick_decay=(0.15, 0.28))
    kick, snare, oh, ch = c.buf(), c.buf(), c.buf(), c.buf()
    c.hits(kick, kit.kick, [0, 1, 2, 3], vel_sd=0.05)
    c.hits(snare, kit.clap() if r.random() < 0.5 else kit.snare, [1, 3])
    c.hits(oh, kit.open_hat, [0.5, 1.5, 2.5, 3.5], vel_sd=0.05)
    c.hits(ch, kit.hat, np.arange(16) * 0.25, prob=0.7, accents=[.6, .4, 0, .4] * 4)
    bass = c.buf()
    bi = _Inst(sr, _saw(roll=1.4), _saw(roll=0.9), bright_mix=0.7, bright_tau=0.03, f_top=250, rng=r)
    on, bar, pi = c.events(np.arange(8) * 0.5)
    for s, b, p in zip(on, bar, pi):
        root, _q = _prog_root(prog, c, b)
        m = _voice((c.key + root) % 12, [0], 31)[0] + 12 * (p % 2)
        bi.note(bass, int(s), m, c.secs(0.5), tau=0.12, hold=0.4 * c.beat_s, release=0.02)
    stabs = c.buf()
    si = _Inst(sr, _saw(roll=1.0), f_top=1000, rng=r)
    pos = [[1.5, 3.5], [0.5, 2.5, 3.0], [1.75, 3.5], [0.0, 1.5, 3.5]][int(r.integers(4))]
    on, bar, pi = c.events(pos, prob=0.85)
    for s, b, p in zip(on, bar, pi):
        root, q = _prog_root(prog, c, b)
        si.chord(stabs, int(s), _voice((c.key + root) % 12, _CHORDS[q], 60), c.secs(0.6),
                 attack=0.01, tau=0.1, hold=0.12, release=0.04)
    parts = [(kick, -2.0), (snare, -6.0), (oh, -8.0), (ch, -14.0), (bass, -1.0), (stabs, -5.0)]
    if r.random() < 0.6:  # muted sixteenth guitar scratch
        gtr = c.buf()
        gi = _Inst(sr, _saw(roll=0.8), f_top=1200, rng=r)
        on, bar, pi = c.events(np.arange(16) * 0.25, prob=0.9)
        for s, b, p in zip(on, bar, pi):
            root, q = _prog_root(prog, c, b)
            g = 1.0 if p % 4 == 2 else 0.4
            gi.chord(gtr, int(s), _voice((c.key + root) % 12, _CHORDS[q][:3], 64), c.secs(0.2),
                     tau=0.025, gain=g)
        parts.append((gtr, -9.0))
    return parts


def _hiphop(c):
    r, sr = c.rng, c.sr
    c.tempo(r.uniform(80, 100))
    sw = r.uniform(0.55, 0.65)
    prog = [[(0, "min9")], [(0, "min9"), (8, "maj9")], [(0, "min9"), (5, "min9")],
            [(0, "min7"), (10, "dom9")]][int(r.integers(4))]
    kit = _Kit(r, sr, kick_hz=(42, 58), kick_decay=(0.2, 0.35), snare_decay=(0.12, 0.22))
    kpat = [[0, 0.75, 2.5], [0, 1.75, 2.5, 3.25], [0, 0.5, 2.25, 2.75], [0, 2.5, 2.75],
            [0, 1.5, 2.25]][int(r.integers(5))]
    kick, snare, hat = c.buf(), c.buf(), c.buf()
    c.hits(kick, kit.kick, kpat, swing=sw, swing_unit=0.5)
    snd = kit.snare + 0.6 * np.pad(kit.clap(), (0, max(0, kit.snare.size - int(0.3 * sr))))[:kit.snare.size]
    c.hits(snare, snd, [1, 3])
    c.hits(hat, kit.hat, np.arange(16) * 0.25, swing=sw, swing_unit=0.5, prob=0.9,
           accents=[1, .4, .7, .4] * 4)
    sub = c.buf()
    si = _Inst(sr, [1, 0.08, 0.03], f_top=120, rng=r, jitter=0.0)
    on, bar, pi = c.events(kpat, swing=sw, swing_unit=0.5, prob=0.85)
    decay = r.uniform(0.35, 0.7)
    for s, b, p in zip(on, bar, pi):
        root, _q = _prog_root(prog, c, b)
        m = _voice((c.key + root) % 12, [0], 26)[0]
        si.note(sub, int(s), m, int(min(2.0, 4 * decay) * sr), attack=0.004, tau=decay,
                bend=r.choice([0.0, 3.0]), bend_tau=0.04)
    sub = np.tanh(1.5 * sub / max(np.abs(sub).max(), 1e-9))
    keys = c.buf()
    ki = _Inst(sr, [1, 0.25, 0.08], [0, 0, 0, 0, 0, 0, 0.3, 0, 0, 0, 0, 0, 0, 1.0], bright_mix=0.4,
               bright_tau=0.02, f_top=600, rng=r)
    kp = [[0.0], [0.0, 2.5], [1.5], [0.0, 3.0]][int(r.integers(4))]
    on, bar, pi = c.events(kp, swing=sw, swing_unit=0.5)
    for s, b, p in zip(on, bar, pi):
        root, q = _prog_root(prog, c, b)
        ki.chord(keys, int(s), _voice((c.key + root) % 12, _CHORDS[q], 55), c.secs(2.5),
                 attack=0.005, tau=0.9, hold=1.6 * c.beat_s, release=0.15)
    parts = [(kick, 0.0), (snare, -2.0), (hat, -10.0), (sub, -2.0), (keys, -8.0)]
    if r.random() < 0.4:
        bell = c.buf()
        bi = _Inst(sr, [1, 0, 0.3, 0, 0.15], f_top=1500, rng=r)
        on, bar, pi = c.events([0.5, 1.25, 3.0], prob=0.7, swing=sw, swing_unit=0.5)
        for s in on:
            bi.note(bell, int(s), 74 + c.key % 12 + int(r.choice([0, 3, 7, 10])), c.secs(1.5), tau=0.3)
        parts.append((bell, -12.0))
    return parts


def _jazz(c):
    r, sr = c.rng, c.sr
    c.tempo(r.uniform(120, 200))
    sw = r.uniform(0.60, 0.67)
    progs = [[(2, "min7"), (7, "dom7"), (0, "maj7"), (9, "dom7")],
             [(2, "min9"), (7, "dom13"), (0, "maj9"), (0, "maj9")],
             [(0, "maj7"), (9, "min7"), (2, "min7"), (7, "dom7")]]
    prog = progs[int(r.integers(len(progs)))]
    kit = _Kit(r, sr, kick_decay=(0.1, 0.2), snare_decay=(0.06, 0.12))
    ride, hh, snare, kick = c.buf(), c.buf(), c.buf(), c.buf()
    c.hits(ride, kit.ride(r.uniform(0.3, 0.7)), [0, 1, 1.5, 2, 3, 3.5], swing=sw,
           accents=[.8, 1, .5, .8, 1, .5], vel_sd=0.08)
    c.hits(hh, kit.hat, [1, 3], gain=0.8)
    if r.random() < 0.5:
        c.hits(snare, kit.brush(c.beat_s), [0, 1, 2, 3], vel_sd=0.2)
    else:
        c.hits(snare, kit.snare, np.arange(8) * 0.5, swing=sw, prob=0.25, gain=0.5, vel_sd=0.3)
    c.hits(kick, kit.kick, [0, 1, 2, 3], gain=0.3, vel_sd=0.2)
    c.hits(kick, kit.kick, np.arange(8) * 0.5, swing=sw, prob=0.05, gain=1.0)
    bass = c.buf()
    bi = _Inst(sr, [1, 0.6, 0.3, 0.12, 0.05], [0, 1, 0.7, 0.5, 0.3], bright_mix=0.5,
               bright_tau=0.015, f_top=200, rng=r)
    on, bar, pi = c.events([0, 1, 2, 3])
    prev = None
    for s, b, p in zip(on, bar, pi):
        root, q = _prog_root(prog, c, b)
        base = _voice((c.key + root) % 12, [0], 33)[0]
        if p == 0 or prev is None:
            m = base
        elif p == 3:  # approach the next bar's root chromatically or by fifth
            nxt = _voice((c.key + _prog_root(prog, c, b + 1)[0]) % 12, [0], 33)[0]
            m = nxt + int(r.choice([-1, 1, 7 - 12]))
        else:
            tones = [base + i for i in _CHORDS[q if q in ("maj7", "min7", "dom7") else "min7"]] + [base + 12]
            m = int(r.choice(tones))
        prev = m
        bi.note(bass, int(s), m, c.secs(1.0), attack=0.003, tau=0.45, hold=0.9 * c.beat_s, release=0.03)
    keys = c.buf()
    ep = _Inst(sr, [1, 0.2, 0.05], [0, 0, 0, 0, 0, 0, 0.2, 0, 0, 0, 0, 0, 0, 1.0], bright_mix=0.5,
               bright_tau=0.015, f_top=700, rng=r)
    comp = [[0, 1.5], [1.5, 3.5], [0.5, 2.0, 3.5], [1.0, 2.5], [0, 2.5]]
    on, bar, pi = c.events(comp[int(r.integers(len(comp)))], swing=sw, prob=0.85)
    for s, b, p in zip(on, bar, pi):
        root, q = _prog_root(prog, c, b)
        if q in ("maj", "min", "5"):
            q = "maj7"
        ivs = _CHORDS[q] if q.endswith(("9", "13")) else _CHORDS[q][1:] + (14,)
        hold = r.choice([0.5, 1.0, 1.5]) * c.beat_s
        ep.chord(keys, int(s), _voice((c.key + root) % 12, ivs, 52), int((hold + 0.3) * sr),
                 attack=0.003, tau=0.7, hold=hold, release=0.06)
    return [(ride, -6.0), (hh, -14.0), (snare, -13.0), (kick, -14.0), (bass, -1.0), (keys, -3.0)]


def _metal(c):
    r, sr = c.rng, c.sr
    c.tempo(r.uniform(140, 200))
    kit = _Kit(r, sr, kick_hz=(50, 70), kick_decay=(0.06, 0.12))
    kick, snare, cym = c.buf(), c.buf(), c.buf()
    style = r.choice(["double", "gallop", "eighths"], p=[0.6, 0.2, 0.2])
    if style == "double":
        c.hits(kick, kit.kick, np.arange(16) * 0.25, vel_sd=0.05)
    elif style == "gallop":
        c.hits(kick, kit.kick, [p + d for p in range(4) for d in (0, 0.5, 0.75)], vel_sd=0.05)
    else:
        c.hits(kick, kit.kick, np.arange(8) * 0.5, vel_sd=0.05)
    if r.random() < 0.2:
        c.hits(snare, kit.snare, [0.5, 1.5, 2.5, 3.5])
    else:
        c.hits(snare, kit.snare, [1, 3])
    crash = kit.crash()
    c.hits(cym, crash, [0], gain=1.0)
    c.hits(cym, crash, [1, 2, 3], prob=0.3, gain=0.8)
    c.hits(cym, kit.ride(0.9), np.arange(8) * 0.5, gain=0.3)
    # guitars: palm-muted chugs + accented power chords on dark roots
    riff_roots = [0, 1, 3, 5, 6, 7]
    accents = sorted(set(int(x) for x in r.choice(16, size=int(r.integers(2, 6)), replace=False)))
    acc_root = {a: int(r.choice(riff_roots[1:])) for a in accents}
    low = int(r.integers(33, 41))
    gtr = c.buf()
    gi = _Inst(sr, _saw(roll=0.9), f_top=500, rng=r)
    on, bar, pi = c.events(np.arange(16) * 0.25)
    for trk, det in enumerate((-0.06, 0.06)):
        for s, b, p in zip(on, bar, pi):
            if p in acc_root:
                root = low + (c.key + acc_root[p]) % 12 - 12 * ((c.key + acc_root[p]) % 12 > 7)
                length, tau = c.secs(0.75), 0.6
            else:
                root = low + c.key % 12 - 12 * (c.key % 12 > 7)
                length, tau = c.secs(0.25), 0.05
            gi.chord(gtr, int(s) + trk * int(0.004 * sr), (root + det, root + 7 + det, root + 12 + det),
                     length, tau=tau, phases=r.random(3))
    drive = r.uniform(12.0, 40.0)
    gtr = np.clip(drive * gtr / max(np.abs(gtr).max(), 1e-9), -1.0, 1.0)
    gtr = _smooth(_smooth(gtr, 3), 2)
    bass = c.buf()
    bi = _Inst(sr, _saw(roll=1.2), f_top=200, rng=r)
    on, bar, pi = c.events(np.arange(8) * 0.5)
    for s, b, p in zip(on, bar, pi):
        bi.note(bass, int(s), low - 12 + c.key % 12 - 12 * (c.key % 12 > 7) + 12, c.secs(0.5), tau=0.15)
    bass = np.tanh(3.0 * bass / max(np.abs(bass).max(), 1e-9))
    return [(gtr, 0.0), (kick, -4.0), (snare, -5.0), (cym, -8.0), (bass, -6.0)]


def _pop(c):
    r, sr = c.rng, c.sr
    c.tempo(r.uniform(100, 130))
    prog = [(0, "maj"), (7, "maj"), (9, "min"), (5, "maj")]
    kit = _Kit(r, sr)
    kick, snare, hat = c.buf(), c.buf(), c.buf()
    c.hits(kick, kit.kick, [0, 2])
    c.hits(kick, kit.kick, [1.5], prob=0.5)
    c.hits(snare, kit.clap() if r.random() < 0.5 else kit.snare, [1, 3])
    c.hits(hat, kit.hat, np.arange(8) * 0.5, accents=[1, .7] * 4)
    pad = c.buf()
    pi_ = _Inst(sr, _saw(roll=1.6) if r.random() < 0.5 else _square(roll=1.5), f_top=800, rng=r)
    on, bar, pi = c.events([0], preroll=3.0)
    bar_s = 4 * c.beat_s
    for s, b, p in zip(on, bar, pi):
        root, q = _prog_root(prog, c, b)
        pi_.chord(pad, int(s), _voice((c.key + root) % 12, _CHORDS[q], 55), int((bar_s + 0.6) * sr),
                  attack=r.uniform(0.05, 0.2), hold=bar_s, release=0.15, vib_rate=0.4,
                  vib_depth=0.002, phases=r.random(3))
    lead = c.buf()
    duty = _square(roll=1.0) * (1 + 0.5 * np.cos(np.arange(1, _MAX_H + 1)))
    li = _Inst(sr, duty, f_top=1200, rng=r, jitter=0.1)
    pent = [0, 2, 4, 7, 9]
    slots = np.arange(8) * 0.5
    on, bar, pi = c.events(slots, prob=r.uniform(0.4, 0.7))
    deg = int(r.integers(5, 10))
    for k, s in enumerate(on):
        deg = int(np.clip(deg + r.choice([-2, -1, 0, 1, 2]), 0, 12))
        m = 64 + c.key % 12 - 12 * (c.key % 12 > 6) + pent[deg % 5] + 12 * (deg // 5)
        nxt = on[k + 1] if k + 1 < len(on) else s + c.secs(1.0)
        hold = min(max(nxt - s, 1) / sr, c.beat_s * 1.5) * 0.9
        li.note(lead, int(s), m, int((hold + 0.3) * sr), attack=0.01, hold=hold, release=0.05,
                vib_rate=5.5, vib_depth=0.004, phase=r.random())
    bass = c.buf()
    bi = _Inst(sr, [1, 0.5, 0.3, 0.15, 0.1], f_top=200, rng=r)
    bp = np.arange(8) * 0.5 if r.random() < 0.5 else np.array([0, 1.5, 2, 3])
    on, bar, pi = c.events(bp)
    for s, b, p in zip(on, bar, pi):
        root, q = _prog_root(prog, c, b)
        bi.note(bass, int(s), _voice((c.key + root) % 12, [0], 33)[0], c.secs(0.9), tau=0.3,
                hold=0.45 * c.beat_s, release=0.03)
    parts = [(kick, -3.0), (snare, -4.0), (hat, -11.0), (pad, -5.0), (lead, -1.0), (bass, -3.0)]
    if r.random() < 0.5:
        arp = c.buf()
        ai = _Inst(sr, _saw(roll=1.1), f_top=1500, rng=r)
        on, bar, pi = c.events(np.arange(16) * 0.25)
        for s, b, p in zip(on, bar, pi):
            root, q = _prog_root(prog, c, b)
            notes = _voice((c.key + root) % 12, list(_CHORDS[q]) + [12], 67)
            ai.note(arp, int(s), notes[p % 4], c.secs(0.3), tau=0.06)
        parts.append((arp, -10.0))
    return parts


def _reggae(c):
    r, sr = c.rng, c.sr
    c.tempo(r.uniform(60, 90))
    sw = r.uniform(0.5, 0.6)
    prog = [[(0, "min")], [(0, "min"), (5, "min")], [(0, "maj"), (5, "maj")],
            [(0, "min"), (10, "maj")]][int(r.integers(4))]
    kit = _Kit(r, sr, kick_decay=(0.15, 0.3))
    kick, snare, hat = c.buf(), c.buf(), c.buf()
    c.hits(kick, kit.kick, [2])
    c.hits(snare, kit.rim() if r.random() < 0.6 else kit.snare, [2])
    c.hits(hat, kit.hat, np.arange(8) * 0.5, swing=sw, prob=0.9, accents=[.5, 1] * 4)
    skank = c.buf()
    sk = _Inst(sr, _saw(roll=1.0), _saw(roll=0.6), bright_mix=0.6, bright_tau=0.01, f_top=1000, rng=r)
    style = r.random() < 0.6
    pos = [0.5, 1.5, 2.5, 3.5] if style else [1.0, 1.25, 3.0, 3.25]
    on, bar, pi = c.events(pos, swing=sw)
    for s, b, p in zip(on, bar, pi):
        root, q = _prog_root(prog, c, b)
        g = 1.0 if (style or p % 2 == 0) else 0.6
        sk.chord(skank, int(s), _voice((c.key + root) % 12, _CHORDS[q] + (12,), 60), c.secs(0.4),
                 attack=0.002, tau=0.04, hold=0.06, release=0.015, gain=g)
    parts = [(kick, -3.0), (snare, -6.0), (hat, -13.0), (skank, -4.0)]
    if r.random() < 0.5:  # organ bubble
        organ = c.buf()
        oi = _Inst(sr, [1, 0.8, 0.6, 0.5, 0, 0.4, 0, 0.3], f_top=800, rng=r, jitter=0.1)
        on, bar, pi = c.events([0.25, 0.75, 1.25, 1.75, 2.25, 2.75, 3.25, 3.75], swing=sw, swing_unit=0.5)
        for s, b, p in zip(on, bar, pi):
            root, q = _prog_root(prog, c, b)
            oi.chord(organ, int(s), _voice((c.key + root) % 12, _CHORDS[q], 55), c.secs(0.3),
                     attack=0.005, hold=0.12 * c.beat_s, release=0.02)
        parts.append((organ, -10.0))
    bass = c.buf()
    bi = _Inst(sr, [1, 0.25, 0.06], f_top=150, rng=r, jitter=0.1)
    n_notes = int(r.integers(3, 6))
    grid = np.arange(8) * 0.5
    slots = np.sort(r.choice(grid[grid != 0.0], size=n_notes, replace=False))
    rel_notes = r.choice([0, 0, 3, 5, 7, 10, 12], size=n_notes)
    on, bar, pi = c.events(slots, swing=sw)
    for s, b, p in zip(on, bar, pi):
        root, _q = _prog_root(prog, c, b)
        base = _voice((c.key + root) % 12, [0], 28)[0]
        nxt = slots[p + 1] if p + 1 < n_notes else 4.0
        hold = (nxt - slots[p]) * c.beat_s * 0.8
        bi.note(bass, int(s), base + int(rel_notes[p]), int((hold + 0.2) * sr), attack=0.01, tau=0.8,
                hold=hold, release=0.04)
    parts.append((bass, 1.0))
    return parts


def _rock(c):
    r, sr = c.rng, c.sr
    c.tempo(r.uniform(100, 140))
    prog = [[0, 10, 5, 0], [0, 5, 7, 5], [0, 0, 5, 7], [9, 5, 0, 7]][int(r.integers(4))]
    kit = _Kit(r, sr)
    kick, snare, hat, cym = c.buf(), c.buf(), c.buf(), c.buf()
    c.hits(kick, kit.kick, [0, 2])
    c.hits(kick, kit.kick, [2.5], prob=0.5)
    c.hits(snare, kit.snare, [1, 3])
    c.hits(hat, kit.hat if r.random() < 0.7 else kit.ride(0.5), np.arange(8) * 0.5, accents=[1, .6] * 4)
    c.hits(cym, kit.crash(), [0], prob=0.4)
    gtr = c.buf()
    gi = _Inst(sr, _saw(roll=1.0), f_top=700, rng=r)
    power = r.random() < 0.6
    held = r.random() < 0.35
    pos = [0, 2] if held else np.arange(8) * 0.5
    on, bar, pi = c.events(pos)
    gap = int(0.006 * sr)
    for s, b, p in zip(on, bar, pi):
        pc = (c.key + _prog_root(prog, c, b)) % 12
        notes = _voice(pc, [0, 7, 12] if power else [0, 7, 12, 16, 19], 40)
        length = c.secs(2.0 if held else 0.5)
        _strum(gi, gtr, int(s), notes, length, gap, tau=1.0 if held else 0.3,
               hold=(1.9 if held else 0.45) * c.beat_s, release=0.03, phase=r.random())
    drive = r.uniform(2.5, 6.0)
    gtr = np.tanh(drive * gtr / max(np.abs(gtr).max(), 1e-9))
    gtr = _smooth(gtr, 3)
    bass = c.buf()
    bi = _Inst(sr, [1, 0.6, 0.35, 0.2, 0.1], f_top=200, rng=r)
    on, bar, pi = c.events(np.arange(8) * 0.5)
    for s, b, p in zip(on, bar, pi):
        m = _voice((c.key + _prog_root(prog, c, b)) % 12, [0], 28)[0]
        bi.note(bass, int(s), m, c.secs(0.5), tau=0.25, hold=0.42 * c.beat_s, release=0.02)
    return [(gtr, 0.0), (kick, -4.0), (snare, -4.0), (hat, -11.0), (cym, -10.0), (bass, -3.0)]


_RECIPES = {
    "blues": _blues, "classical": _classical, "country": _country, "disco": _disco,
    "hiphop": _hiphop, "jazz": _jazz, "metal": _metal, "pop": _pop, "reggae": _reggae, "rock": _rock,
}


# --------------------------------------------------------------------------------------------
# Mixing and mastering
# --------------------------------------------------------------------------------------------

def _master(parts, rng, sr, n):
    mix = np.zeros(n)
    for buf, level_db in parts:
        rms = np.sqrt(np.mean(buf * buf))
        if rms > 1e-12:
            mix += buf * (10.0 ** ((level_db + rng.uniform(-5.0, 5.0)) / 20.0) / rms)
    spec = np.fft.rfft(mix)
    f = np.fft.rfftfreq(n, 1.0 / sr)
    fr = np.maximum(f, 20.0)
    gain = (fr / 1000.0) ** (rng.uniform(-2.0, 1.5) / 6.0206)  # tilt, dB/octave
    fc = min(rng.uniform(2500.0, 8000.0), 0.45 * sr)
    gain /= np.sqrt(1.0 + (f / fc) ** 4)
    gain /= np.sqrt(1.0 + (rng.uniform(25.0, 90.0) / fr) ** 4)
    spec *= gain
    # background noise, white (0) to brown (-2) power slope, 12-40 dB below the music
    noise = rng.standard_normal(f.size) + 1j * rng.standard_normal(f.size)
    noise *= fr ** (rng.uniform(-2.0, 0.0) / 2.0)
    p_sig = np.sum(np.abs(spec[1:]) ** 2)
    p_noise = np.sum(np.abs(noise[1:]) ** 2)
    if p_sig <= 0.0:
        p_sig = p_noise
    noise *= np.sqrt(p_sig / p_noise * 10.0 ** (-rng.uniform(12.0, 40.0) / 10.0))
    noise[0] = 0.0
    y = np.fft.irfft(spec + noise, n)
    rms = np.sqrt(np.mean(y * y))
    target = np.exp(rng.uniform(np.log(0.03), np.log(0.15)))
    y *= target / max(rms, 1e-12)
    peak = np.abs(y).max()
    if peak > 0.99:
        y *= 0.99 / peak
    return y.astype(np.float32)


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------

def _genre_index(genre: str) -> int:
    try:
        return GENRES.index(genre)
    except ValueError:
        raise ValueError(f"unknown genre {genre!r}; valid genres: {', '.join(GENRES)}") from None


def _check_args(seconds, sample_rate) -> int:
    if not np.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"seconds must be positive, got {seconds}")
    if int(sample_rate) != sample_rate or sample_rate < 4000:
        raise ValueError(f"sample_rate must be an integer >= 4000, got {sample_rate}")
    n = int(round(seconds * sample_rate))
    if n < 1:
        raise ValueError(f"seconds={seconds} is shorter than one sample at {sample_rate} Hz")
    return n


def render_clip(genre: str, seed: int, seconds: float = 6.0, sample_rate: int = 16000) -> np.ndarray:
    """Mono float32 waveform of length round(seconds*sample_rate), peak <= 1.

    Deterministic in (genre, seed, seconds, sample_rate); the genre is mixed into the seed, so
    equal seeds of different genres are unrelated. `seed` must be a non-negative integer.
    """
    gi = _genre_index(genre)
    n = _check_args(seconds, sample_rate)
    seed = int(seed)
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}")
    rng = np.random.default_rng(np.random.SeedSequence([seed, gi]))
    clip = _Clip(rng, int(sample_rate), n)
    parts = _RECIPES[genre](clip)
    return _master(parts, rng, int(sample_rate), n)


def _clip_seed(split: str, genre_index: int, index: int, seed: int = 0) -> int:
    """The render seed of clip `index` of class `genre_index` in `split`.

    Split k owns the range [k * 2**40, (k + 1) * 2**40), so the splits never share a seed;
    inside it the seed is hashed from (seed, split, class, index) by SeedSequence.
    """
    if split not in _SPLITS:
        raise ValueError(f"split must be one of {_SPLITS}, got {split!r}")
    k = _SPLITS.index(split)
    words = np.random.SeedSequence([int(seed), k, int(genre_index), int(index)]).generate_state(2)
    return k * 2 ** 40 + ((int(words[0]) << 8) ^ int(words[1])) % 2 ** 40


def synthetic_split(
    split: str, clips_per_class: int, seconds: float, sample_rate: int, seed: int = 0,
) -> tuple[list[np.ndarray], list[int], list[str]]:
    """Clips for split in {"train","val","test"}.

    Returns (waves, labels (index into GENRES), ids like "train/blues/0003").

    Per-clip seeds come from `_clip_seed` (disjoint ranges per split), so no clip is shared
    between splits. Classes are balanced: `clips_per_class` per class, ordered class-major.
    """
    if split not in _SPLITS:
        raise ValueError(f"split must be one of {_SPLITS}, got {split!r}")
    if int(clips_per_class) < 0:
        raise ValueError(f"clips_per_class must be >= 0, got {clips_per_class}")
    if int(seed) < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}")
    _check_args(seconds, sample_rate)
    waves, labels, ids = [], [], []
    for gi, genre in enumerate(GENRES):
        for i in range(int(clips_per_class)):
            waves.append(render_clip(genre, _clip_seed(split, gi, i, seed), seconds, sample_rate))
            labels.append(gi)
            ids.append(f"{split}/{genre}/{i:04d}")
    return waves, labels, ids
