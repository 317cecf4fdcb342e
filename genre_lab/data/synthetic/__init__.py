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

Those are the recipes of `difficulty="easy"`. `medium` and `hard` (`levels.py`) blur them the
way real recordings blur genres: neighbouring genres share parts (rock/metal, disco/pop,
blues/jazz/country, hiphop/reggae), parts go missing, tempo ranges widen, levels and master EQ
vary more, rooms (reverb), louder noise, bus drive and off-grid tuning change the production
within a class, and a formant voice may sing over any genre.

Modules: `instruments` (wavetable instruments, drum kits, the formant voice), `grooves` (the
beat clock, chords and voicings), `recipes` (one function per genre: the genre list),
`levels` (difficulty settings), `mastering` (mix, room, EQ, noise, loudness) and `render`
(clips from seeds, splits). Public API: `GENRES`, `LEVELS`, `render_clip`, `synthetic_split`,
`clip_seed`.
"""

from genre_lab.data.synthetic.levels import LEVELS, Difficulty
from genre_lab.data.synthetic.render import GENRES, SPLITS, clip_seed, render_clip, synthetic_split

__all__ = ["GENRES", "LEVELS", "SPLITS", "Difficulty", "clip_seed", "render_clip", "synthetic_split"]
