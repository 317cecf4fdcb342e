"""Genre recipes. Each takes a `Clip` (rng, sample rate, beat clock) and returns its parts as
(buffer, mix level in dB); the docstring of the `synthetic` package lists what each plays."""

from __future__ import annotations

import numpy as np

from genre_lab.data.synthetic.grooves import CHORDS, Clip, prog_root, voicing
from genre_lab.data.synthetic.instruments import (
    MAX_HARMONICS, VOWELS, DrumKit, Instrument, diff_highpass, hz, place, saw, smooth, square,
    strum, vowel_harmonics,
)

def blues(c):
    r, sr = c.rng, c.sr
    c.tempo(c.draw_bpm(60, 100))
    sw = r.uniform(0.60, 0.70)
    prog = [0, 0, 0, 0, 5, 5, 0, 0, 7, 5, 0, 7]
    kit = DrumKit(r, sr, kick_decay=(0.1, 0.2))
    gtr = Instrument(sr, saw(roll=1.3), saw(roll=0.8), bright_tau=0.03, bright_mix=1.0, f_top=400, rng=r)
    # boogie figure: root + (5, 5, 6, 6, b7, b7, 6, 6) on swung eighths
    boogie = c.buf()
    tops = [7, 7, 9, 9, 10, 10, 9, 9]
    on, bar, pi = c.events(np.arange(8) * 0.5, swing=sw)
    low = 40 + r.integers(0, 3)
    note_len = c.secs(0.45)
    acc = r.uniform(0.6, 0.9)
    for s, b, p in zip(on, bar, pi):
        root = voicing((c.key + prog_root(prog, c, b)) % 12, [0], low)[0]
        g = 1.0 if p % 2 == 0 else acc
        gtr.chord(boogie, int(s), (root, root + tops[p]), note_len, tau=0.25, hold=0.35 * c.beat_s,
                  release=0.03, gain=g)
    bass = c.buf()
    b_inst = Instrument(sr, [1, 0.5, 0.2, 0.1], f_top=150, rng=r)
    walk = [0, 7, 9, 7]
    on, bar, pi = c.events([0, 1, 2, 3])
    for s, b, p in zip(on, bar, pi):
        root = voicing((c.key + prog_root(prog, c, b)) % 12, [0], 28)[0]
        b_inst.note(bass, int(s), root + walk[p], c.secs(0.95), tau=0.5, hold=0.8 * c.beat_s)
    parts = [(boogie, 0.0), (bass, -4.0)]
    if r.random() < 0.7:  # lead licks with bends
        lead = c.buf()
        li = Instrument(sr, saw(roll=1.2), saw(roll=0.7), bright_mix=0.6, bright_tau=0.05, f_top=900, rng=r)
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


def classical(c):
    r, sr = c.rng, c.sr
    c.tempo(c.draw_bpm(50, 90), rubato=r.uniform(0.3, 0.7))
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
    st = Instrument(sr, saw(roll=1.25), f_top=900, rng=r, jitter=0.3)
    att, rel = r.uniform(0.15, 0.5), r.uniform(0.3, 0.8)
    detune = r.uniform(0.04, 0.1)  # semitones
    chord_beats = 4.0 / per_bar
    starts = np.arange(per_bar) * chord_beats
    on, bar, pi = c.events(starts, preroll=3.0)
    hold_s = chord_beats * c.beat_s
    length = int((hold_s + 4 * rel) * sr)
    for s, b, p in zip(on, bar, pi):
        root, q = prog_root(prog, c, b, per_bar, p)
        pc = (c.key + root) % 12
        ivs = CHORDS[q]
        voices = [voicing(pc, [0], 36)[0], voicing(pc, [ivs[2]], 53)[0],
                  voicing(pc, [ivs[1]], 57)[0], voicing(pc, [0], 62)[0]]
        st.chord(strings, int(s), [m + d for m in voices for d in (-detune, detune)], length,
                 attack=att, hold=hold_s, release=rel, vib_rate=r.uniform(4.8, 6.2),
                 vib_depth=r.uniform(0.002, 0.005), phases=r.random(2 * len(voices)))
    parts = [(strings, 0.0)]
    if r.random() < 0.85:
        mel = c.buf()
        flute = r.random() < 0.4
        mi = Instrument(sr, [1, 0.3, 0.1, 0.05] if flute else saw(roll=1.1), f_top=1500, rng=r)
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
        hi = Instrument(sr, [1, 0.4, 0.2, 0.1, 0.05], f_top=1000, rng=r)
        on, bar, pi = c.events(np.arange(8) * 0.5)
        for s, b, p in zip(on, bar, pi):
            root, q = prog_root(prog, c, b, per_bar, int(p * per_bar // 8))
            ivs = list(CHORDS[q]) + [12, 12 + CHORDS[q][1], 12 + CHORDS[q][2], 24]
            m = voicing((c.key + root) % 12, [ivs[p % len(ivs)]], 48)[0]
            hi.note(harp, int(s), m, int(1.2 * sr), attack=0.002, tau=0.5)
        parts.append((harp, -8.0))
    return parts


def country(c):
    r, sr = c.rng, c.sr
    c.tempo(c.draw_bpm(100, 140))
    prog = [[0, 5, 0, 7], [0, 0, 5, 7], [0, 5, 7, 0]][int(r.integers(3))]
    kit = DrumKit(r, sr, snare_decay=(0.06, 0.12))
    bass = c.buf()
    bi = Instrument(sr, [1, 0.6, 0.25, 0.1], [1, 0.8, 0.6, 0.4, 0.3], bright_mix=0.5, f_top=200, rng=r)
    on, bar, pi = c.events([0, 2])
    walk_up = r.random() < 0.5
    for s, b, p in zip(on, bar, pi):
        root = voicing((c.key + prog_root(prog, c, b)) % 12, [0], 36)[0]
        m = root if p == 0 else root - 5
        bi.note(bass, int(s), m, c.secs(1.5), tau=0.3, hold=1.4 * c.beat_s)
    if walk_up:
        on, bar, pi = c.events([3.0, 3.5], prob=0.6)
        for s, b, p in zip(on, bar, pi):
            nxt = voicing((c.key + prog_root(prog, c, b + 1)) % 12, [0], 36)[0]
            bi.note(bass, int(s), nxt - 2 + p, c.secs(0.5), tau=0.2)
    chords = c.buf()
    ac = Instrument(sr, saw(roll=0.9), saw(roll=0.5), bright_mix=0.8, bright_tau=0.02, f_top=700, rng=r)
    on, bar, pi = c.events([1, 3])
    gap = int(r.uniform(0.007, 0.014) * sr)
    for s, b, p in zip(on, bar, pi):
        pc = (c.key + prog_root(prog, c, b)) % 12
        notes = voicing(pc, [0, 7, 12, 16, 19, 24], 45)
        strum(ac, chords, int(s), notes, c.secs(0.9), gap, up=bool(p), tau=0.18,
               gain=0.5)
    parts = [(bass, -2.0), (chords, 0.0)]
    if r.random() < 0.6:  # banjo-like roll
        banjo = c.buf()
        bj = Instrument(sr, saw(roll=0.7), f_top=1200, rng=r)
        pattern = [0, 2, 4, 1, 3, 2, 4, 1]
        on, bar, pi = c.events(np.arange(8) * 0.5)
        for s, b, p in zip(on, bar, pi):
            pc = (c.key + prog_root(prog, c, b)) % 12
            notes = voicing(pc, [0, 4, 7, 12, 16], 62)
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


def disco(c):
    r, sr = c.rng, c.sr
    c.tempo(c.draw_bpm(110, 130))
    prog = [[(0, "min7"), (5, "min7")], [(0, "min7"), (3, "maj7")], [(2, "min7"), (7, "dom7")],
            [(0, "min7"), (0, "min7"), (5, "dom7"), (5, "dom7")]][int(r.integers(4))]
    kit = DrumKit(r, sr, kick_decay=(0.15, 0.28))
    kick, snare, oh, ch = c.buf(), c.buf(), c.buf(), c.buf()
    c.hits(kick, kit.kick, [0, 1, 2, 3], vel_sd=0.05)
    c.hits(snare, kit.clap() if r.random() < 0.5 else kit.snare, [1, 3])
    c.hits(oh, kit.open_hat, [0.5, 1.5, 2.5, 3.5], vel_sd=0.05)
    c.hits(ch, kit.hat, np.arange(16) * 0.25, prob=0.7, accents=[.6, .4, 0, .4] * 4)
    bass = c.buf()
    bi = Instrument(sr, saw(roll=1.4), saw(roll=0.9), bright_mix=0.7, bright_tau=0.03, f_top=250, rng=r)
    on, bar, pi = c.events(np.arange(8) * 0.5)
    for s, b, p in zip(on, bar, pi):
        root, _q = prog_root(prog, c, b)
        m = voicing((c.key + root) % 12, [0], 31)[0] + 12 * (p % 2)
        bi.note(bass, int(s), m, c.secs(0.5), tau=0.12, hold=0.4 * c.beat_s, release=0.02)
    stabs = c.buf()
    si = Instrument(sr, saw(roll=1.0), f_top=1000, rng=r)
    pos = [[1.5, 3.5], [0.5, 2.5, 3.0], [1.75, 3.5], [0.0, 1.5, 3.5]][int(r.integers(4))]
    on, bar, pi = c.events(pos, prob=0.85)
    for s, b, p in zip(on, bar, pi):
        root, q = prog_root(prog, c, b)
        si.chord(stabs, int(s), voicing((c.key + root) % 12, CHORDS[q], 60), c.secs(0.6),
                 attack=0.01, tau=0.1, hold=0.12, release=0.04)
    parts = [(kick, -2.0), (snare, -6.0), (oh, -8.0), (ch, -14.0), (bass, -1.0), (stabs, -5.0)]
    if r.random() < 0.6:  # muted sixteenth guitar scratch
        gtr = c.buf()
        gi = Instrument(sr, saw(roll=0.8), f_top=1200, rng=r)
        on, bar, pi = c.events(np.arange(16) * 0.25, prob=0.9)
        for s, b, p in zip(on, bar, pi):
            root, q = prog_root(prog, c, b)
            g = 1.0 if p % 4 == 2 else 0.4
            gi.chord(gtr, int(s), voicing((c.key + root) % 12, CHORDS[q][:3], 64), c.secs(0.2),
                     tau=0.025, gain=g)
        parts.append((gtr, -9.0))
    return parts


def hiphop(c):
    r, sr = c.rng, c.sr
    c.tempo(c.draw_bpm(80, 100))
    sw = r.uniform(0.55, 0.65)
    prog = [[(0, "min9")], [(0, "min9"), (8, "maj9")], [(0, "min9"), (5, "min9")],
            [(0, "min7"), (10, "dom9")]][int(r.integers(4))]
    kit = DrumKit(r, sr, kick_hz=(42, 58), kick_decay=(0.2, 0.35), snare_decay=(0.12, 0.22))
    kpat = [[0, 0.75, 2.5], [0, 1.75, 2.5, 3.25], [0, 0.5, 2.25, 2.75], [0, 2.5, 2.75],
            [0, 1.5, 2.25]][int(r.integers(5))]
    kick, snare, hat = c.buf(), c.buf(), c.buf()
    c.hits(kick, kit.kick, kpat, swing=sw, swing_unit=0.5)
    snd = kit.snare + 0.6 * np.pad(kit.clap(), (0, max(0, kit.snare.size - int(0.3 * sr))))[:kit.snare.size]
    c.hits(snare, snd, [1, 3])
    c.hits(hat, kit.hat, np.arange(16) * 0.25, swing=sw, swing_unit=0.5, prob=0.9,
           accents=[1, .4, .7, .4] * 4)
    sub = c.buf()
    si = Instrument(sr, [1, 0.08, 0.03], f_top=120, rng=r, jitter=0.0)
    on, bar, pi = c.events(kpat, swing=sw, swing_unit=0.5, prob=0.85)
    decay = r.uniform(0.35, 0.7)
    for s, b, p in zip(on, bar, pi):
        root, _q = prog_root(prog, c, b)
        m = voicing((c.key + root) % 12, [0], 26)[0]
        si.note(sub, int(s), m, int(min(2.0, 4 * decay) * sr), attack=0.004, tau=decay,
                bend=r.choice([0.0, 3.0]), bend_tau=0.04)
    sub = np.tanh(1.5 * sub / max(np.abs(sub).max(), 1e-9))
    keys = c.buf()
    ki = Instrument(sr, [1, 0.25, 0.08], [0, 0, 0, 0, 0, 0, 0.3, 0, 0, 0, 0, 0, 0, 1.0], bright_mix=0.4,
               bright_tau=0.02, f_top=600, rng=r)
    kp = [[0.0], [0.0, 2.5], [1.5], [0.0, 3.0]][int(r.integers(4))]
    on, bar, pi = c.events(kp, swing=sw, swing_unit=0.5)
    for s, b, p in zip(on, bar, pi):
        root, q = prog_root(prog, c, b)
        ki.chord(keys, int(s), voicing((c.key + root) % 12, CHORDS[q], 55), c.secs(2.5),
                 attack=0.005, tau=0.9, hold=1.6 * c.beat_s, release=0.15)
    parts = [(kick, 0.0), (snare, -2.0), (hat, -10.0), (sub, -2.0), (keys, -8.0)]
    if r.random() < 0.4:
        bell = c.buf()
        bi = Instrument(sr, [1, 0, 0.3, 0, 0.15], f_top=1500, rng=r)
        on, bar, pi = c.events([0.5, 1.25, 3.0], prob=0.7, swing=sw, swing_unit=0.5)
        for s in on:
            bi.note(bell, int(s), 74 + c.key % 12 + int(r.choice([0, 3, 7, 10])), c.secs(1.5), tau=0.3)
        parts.append((bell, -12.0))
    return parts


def jazz(c):
    r, sr = c.rng, c.sr
    c.tempo(c.draw_bpm(120, 200))
    sw = r.uniform(0.60, 0.67)
    progs = [[(2, "min7"), (7, "dom7"), (0, "maj7"), (9, "dom7")],
             [(2, "min9"), (7, "dom13"), (0, "maj9"), (0, "maj9")],
             [(0, "maj7"), (9, "min7"), (2, "min7"), (7, "dom7")]]
    prog = progs[int(r.integers(len(progs)))]
    kit = DrumKit(r, sr, kick_decay=(0.1, 0.2), snare_decay=(0.06, 0.12))
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
    bi = Instrument(sr, [1, 0.6, 0.3, 0.12, 0.05], [0, 1, 0.7, 0.5, 0.3], bright_mix=0.5,
               bright_tau=0.015, f_top=200, rng=r)
    on, bar, pi = c.events([0, 1, 2, 3])
    prev = None
    for s, b, p in zip(on, bar, pi):
        root, q = prog_root(prog, c, b)
        base = voicing((c.key + root) % 12, [0], 33)[0]
        if p == 0 or prev is None:
            m = base
        elif p == 3:  # approach the next bar's root chromatically or by fifth
            nxt = voicing((c.key + prog_root(prog, c, b + 1)[0]) % 12, [0], 33)[0]
            m = nxt + int(r.choice([-1, 1, 7 - 12]))
        else:
            tones = [base + i for i in CHORDS[q if q in ("maj7", "min7", "dom7") else "min7"]] + [base + 12]
            m = int(r.choice(tones))
        prev = m
        bi.note(bass, int(s), m, c.secs(1.0), attack=0.003, tau=0.45, hold=0.9 * c.beat_s, release=0.03)
    keys = c.buf()
    ep = Instrument(sr, [1, 0.2, 0.05], [0, 0, 0, 0, 0, 0, 0.2, 0, 0, 0, 0, 0, 0, 1.0], bright_mix=0.5,
               bright_tau=0.015, f_top=700, rng=r)
    comp = [[0, 1.5], [1.5, 3.5], [0.5, 2.0, 3.5], [1.0, 2.5], [0, 2.5]]
    on, bar, pi = c.events(comp[int(r.integers(len(comp)))], swing=sw, prob=0.85)
    for s, b, p in zip(on, bar, pi):
        root, q = prog_root(prog, c, b)
        if q in ("maj", "min", "5"):
            q = "maj7"
        ivs = CHORDS[q] if q.endswith(("9", "13")) else CHORDS[q][1:] + (14,)
        hold = r.choice([0.5, 1.0, 1.5]) * c.beat_s
        ep.chord(keys, int(s), voicing((c.key + root) % 12, ivs, 52), int((hold + 0.3) * sr),
                 attack=0.003, tau=0.7, hold=hold, release=0.06)
    return [(ride, -6.0), (hh, -14.0), (snare, -13.0), (kick, -14.0), (bass, -1.0), (keys, -3.0)]


def metal(c):
    r, sr = c.rng, c.sr
    c.tempo(c.draw_bpm(140, 200))
    kit = DrumKit(r, sr, kick_hz=(50, 70), kick_decay=(0.06, 0.12))
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
    gi = Instrument(sr, saw(roll=0.9), f_top=500, rng=r)
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
    gtr = smooth(smooth(gtr, 3), 2)
    bass = c.buf()
    bi = Instrument(sr, saw(roll=1.2), f_top=200, rng=r)
    on, bar, pi = c.events(np.arange(8) * 0.5)
    for s, b, p in zip(on, bar, pi):
        bi.note(bass, int(s), low - 12 + c.key % 12 - 12 * (c.key % 12 > 7) + 12, c.secs(0.5), tau=0.15)
    bass = np.tanh(3.0 * bass / max(np.abs(bass).max(), 1e-9))
    return [(gtr, 0.0), (kick, -4.0), (snare, -5.0), (cym, -8.0), (bass, -6.0)]


def pop(c):
    r, sr = c.rng, c.sr
    c.tempo(c.draw_bpm(100, 130))
    prog = [(0, "maj"), (7, "maj"), (9, "min"), (5, "maj")]
    kit = DrumKit(r, sr)
    kick, snare, hat = c.buf(), c.buf(), c.buf()
    c.hits(kick, kit.kick, [0, 2])
    c.hits(kick, kit.kick, [1.5], prob=0.5)
    c.hits(snare, kit.clap() if r.random() < 0.5 else kit.snare, [1, 3])
    c.hits(hat, kit.hat, np.arange(8) * 0.5, accents=[1, .7] * 4)
    pad = c.buf()
    pi_ = Instrument(sr, saw(roll=1.6) if r.random() < 0.5 else square(roll=1.5), f_top=800, rng=r)
    on, bar, pi = c.events([0], preroll=3.0)
    bar_s = 4 * c.beat_s
    for s, b, p in zip(on, bar, pi):
        root, q = prog_root(prog, c, b)
        pi_.chord(pad, int(s), voicing((c.key + root) % 12, CHORDS[q], 55), int((bar_s + 0.6) * sr),
                  attack=r.uniform(0.05, 0.2), hold=bar_s, release=0.15, vib_rate=0.4,
                  vib_depth=0.002, phases=r.random(3))
    lead = c.buf()
    duty = square(roll=1.0) * (1 + 0.5 * np.cos(np.arange(1, MAX_HARMONICS + 1)))
    li = Instrument(sr, duty, f_top=1200, rng=r, jitter=0.1)
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
    bi = Instrument(sr, [1, 0.5, 0.3, 0.15, 0.1], f_top=200, rng=r)
    bp = np.arange(8) * 0.5 if r.random() < 0.5 else np.array([0, 1.5, 2, 3])
    on, bar, pi = c.events(bp)
    for s, b, p in zip(on, bar, pi):
        root, q = prog_root(prog, c, b)
        bi.note(bass, int(s), voicing((c.key + root) % 12, [0], 33)[0], c.secs(0.9), tau=0.3,
                hold=0.45 * c.beat_s, release=0.03)
    parts = [(kick, -3.0), (snare, -4.0), (hat, -11.0), (pad, -5.0), (lead, -1.0), (bass, -3.0)]
    if r.random() < 0.5:
        arp = c.buf()
        ai = Instrument(sr, saw(roll=1.1), f_top=1500, rng=r)
        on, bar, pi = c.events(np.arange(16) * 0.25)
        for s, b, p in zip(on, bar, pi):
            root, q = prog_root(prog, c, b)
            notes = voicing((c.key + root) % 12, list(CHORDS[q]) + [12], 67)
            ai.note(arp, int(s), notes[p % 4], c.secs(0.3), tau=0.06)
        parts.append((arp, -10.0))
    return parts


def reggae(c):
    r, sr = c.rng, c.sr
    c.tempo(c.draw_bpm(60, 90))
    sw = r.uniform(0.5, 0.6)
    prog = [[(0, "min")], [(0, "min"), (5, "min")], [(0, "maj"), (5, "maj")],
            [(0, "min"), (10, "maj")]][int(r.integers(4))]
    kit = DrumKit(r, sr, kick_decay=(0.15, 0.3))
    kick, snare, hat = c.buf(), c.buf(), c.buf()
    c.hits(kick, kit.kick, [2])
    c.hits(snare, kit.rim() if r.random() < 0.6 else kit.snare, [2])
    c.hits(hat, kit.hat, np.arange(8) * 0.5, swing=sw, prob=0.9, accents=[.5, 1] * 4)
    skank = c.buf()
    sk = Instrument(sr, saw(roll=1.0), saw(roll=0.6), bright_mix=0.6, bright_tau=0.01, f_top=1000, rng=r)
    style = r.random() < 0.6
    pos = [0.5, 1.5, 2.5, 3.5] if style else [1.0, 1.25, 3.0, 3.25]
    on, bar, pi = c.events(pos, swing=sw)
    for s, b, p in zip(on, bar, pi):
        root, q = prog_root(prog, c, b)
        g = 1.0 if (style or p % 2 == 0) else 0.6
        sk.chord(skank, int(s), voicing((c.key + root) % 12, CHORDS[q] + (12,), 60), c.secs(0.4),
                 attack=0.002, tau=0.04, hold=0.06, release=0.015, gain=g)
    parts = [(kick, -3.0), (snare, -6.0), (hat, -13.0), (skank, -4.0)]
    if r.random() < 0.5:  # organ bubble
        organ = c.buf()
        oi = Instrument(sr, [1, 0.8, 0.6, 0.5, 0, 0.4, 0, 0.3], f_top=800, rng=r, jitter=0.1)
        on, bar, pi = c.events([0.25, 0.75, 1.25, 1.75, 2.25, 2.75, 3.25, 3.75], swing=sw, swing_unit=0.5)
        for s, b, p in zip(on, bar, pi):
            root, q = prog_root(prog, c, b)
            oi.chord(organ, int(s), voicing((c.key + root) % 12, CHORDS[q], 55), c.secs(0.3),
                     attack=0.005, hold=0.12 * c.beat_s, release=0.02)
        parts.append((organ, -10.0))
    bass = c.buf()
    bi = Instrument(sr, [1, 0.25, 0.06], f_top=150, rng=r, jitter=0.1)
    n_notes = int(r.integers(3, 6))
    grid = np.arange(8) * 0.5
    slots = np.sort(r.choice(grid[grid != 0.0], size=n_notes, replace=False))
    rel_notes = r.choice([0, 0, 3, 5, 7, 10, 12], size=n_notes)
    on, bar, pi = c.events(slots, swing=sw)
    for s, b, p in zip(on, bar, pi):
        root, _q = prog_root(prog, c, b)
        base = voicing((c.key + root) % 12, [0], 28)[0]
        nxt = slots[p + 1] if p + 1 < n_notes else 4.0
        hold = (nxt - slots[p]) * c.beat_s * 0.8
        bi.note(bass, int(s), base + int(rel_notes[p]), int((hold + 0.2) * sr), attack=0.01, tau=0.8,
                hold=hold, release=0.04)
    parts.append((bass, 1.0))
    return parts


def rock(c):
    r, sr = c.rng, c.sr
    c.tempo(c.draw_bpm(100, 140))
    prog = [[0, 10, 5, 0], [0, 5, 7, 5], [0, 0, 5, 7], [9, 5, 0, 7]][int(r.integers(4))]
    kit = DrumKit(r, sr)
    kick, snare, hat, cym = c.buf(), c.buf(), c.buf(), c.buf()
    c.hits(kick, kit.kick, [0, 2])
    c.hits(kick, kit.kick, [2.5], prob=0.5)
    c.hits(snare, kit.snare, [1, 3])
    c.hits(hat, kit.hat if r.random() < 0.7 else kit.ride(0.5), np.arange(8) * 0.5, accents=[1, .6] * 4)
    c.hits(cym, kit.crash(), [0], prob=0.4)
    gtr = c.buf()
    gi = Instrument(sr, saw(roll=1.0), f_top=700, rng=r)
    power = r.random() < 0.6
    held = r.random() < 0.35
    pos = [0, 2] if held else np.arange(8) * 0.5
    on, bar, pi = c.events(pos)
    gap = int(0.006 * sr)
    for s, b, p in zip(on, bar, pi):
        pc = (c.key + prog_root(prog, c, b)) % 12
        notes = voicing(pc, [0, 7, 12] if power else [0, 7, 12, 16, 19], 40)
        length = c.secs(2.0 if held else 0.5)
        strum(gi, gtr, int(s), notes, length, gap, tau=1.0 if held else 0.3,
               hold=(1.9 if held else 0.45) * c.beat_s, release=0.03, phase=r.random())
    drive = r.uniform(2.5, 6.0)
    gtr = np.tanh(drive * gtr / max(np.abs(gtr).max(), 1e-9))
    gtr = smooth(gtr, 3)
    bass = c.buf()
    bi = Instrument(sr, [1, 0.6, 0.35, 0.2, 0.1], f_top=200, rng=r)
    on, bar, pi = c.events(np.arange(8) * 0.5)
    for s, b, p in zip(on, bar, pi):
        m = voicing((c.key + prog_root(prog, c, b)) % 12, [0], 28)[0]
        bi.note(bass, int(s), m, c.secs(0.5), tau=0.25, hold=0.42 * c.beat_s, release=0.02)
    return [(gtr, 0.0), (kick, -4.0), (snare, -4.0), (hat, -11.0), (cym, -10.0), (bass, -3.0)]


#: The genres and their recipes, in GTZAN's (alphabetical) order: the one list of genres.
RECIPES = {
    "blues": blues, "classical": classical, "country": country, "disco": disco,
    "hiphop": hiphop, "jazz": jazz, "metal": metal, "pop": pop, "reggae": reggae, "rock": rock,
}


def vocal_line(c: Clip) -> np.ndarray:
    """A sung-like line that fits any genre (`medium`/`hard`): a glottal source through the
    formants of a vowel per syllable, a pentatonic melody in the clip's key with vibrato and
    scoops, and a short consonant noise at some syllable starts."""
    r, sr = c.rng, c.sr
    low = int(r.integers(45, 58))  # low male to high female register
    scale = [0, 3, 5, 7, 10] if r.random() < 0.5 else [0, 2, 4, 7, 9]
    vowels = list(VOWELS)
    buf = c.buf()
    on, bar, pi = c.events(np.arange(8) * 0.5, prob=r.uniform(0.35, 0.7))
    deg = int(r.integers(5))
    for k, s in enumerate(on):
        deg = int(np.clip(deg + r.integers(-2, 3), 0, 9))
        m = low + (c.key + scale[deg % 5]) % 12 + 12 * (deg // 5)
        nxt = on[k + 1] if k + 1 < len(on) else s + c.secs(1.0)
        hold = min(max(nxt - s, 1) / sr, 1.5 * c.beat_s) * r.uniform(0.6, 0.95)
        f0 = hz(m)
        voice = Instrument(sr, vowel_harmonics(f0, vowels[int(r.integers(len(vowels)))]), f_top=1.03 * f0)
        voice.note(buf, int(s), m, int((hold + 0.2) * sr), attack=0.03, hold=hold, release=0.07,
                   vib_rate=r.uniform(4.5, 6.5), vib_depth=0.008, bend=-float(r.choice([0.0, 0.0, 1.0])),
                   bend_tau=0.05, phase=r.random())
        if r.random() < 0.5:  # consonant: a few ms of bright noise before the vowel
            t = np.arange(int(0.03 * sr)) / sr
            place(buf, int(s), diff_highpass(r.standard_normal(t.size)) * np.exp(-t / 0.01), 0.15)
    return buf
