"""Difficulty levels: how far a clip may stray from its genre's textbook recipe.

`easy` is the original generator, draw for draw: every extra below is off, so its clips are
bit-identical to those rendered before levels existed. `medium` and `hard` add what makes
real genre recognition hard: neighbouring genres share parts, parts go missing, tempo, level,
tuning and production vary more, rooms and noise blur the mix, and a voice may sing over any
genre. `medium` aims at test track accuracies of roughly 0.70-0.90 for the default models;
its first setting below landed there (test track accuracy over training seeds 0-2: cnn
0.85 ± 0.02, crnn 0.74 ± 0.02, rnn 0.69 ± 0.03, `experiments/synthetic_compare/`), so it was
not tuned further.
`hard` scales every knob up and is not calibrated against a target.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Difficulty:
    name: str
    #: Tempo ranges are stretched to [lo / (1 + w), hi * (1 + w)].
    tempo_widen: float = 0.0
    #: Each part's level is drawn within +-this many dB of the genre's mix.
    part_level_db: float = 5.0
    #: Chance that a clip borrows parts from a neighbouring genre (see NEIGHBOURS)...
    borrow_prob: float = 0.0
    #: ...and the most parts it replaces by the neighbour's.
    borrow_max_parts: int = 0
    #: Chance that each part is left out of the mix (at least one part always plays).
    drop_prob: float = 0.0
    #: Chance of a vocal-like line (formant voice) over the mix, in any genre.
    vocal_prob: float = 0.0
    #: Chance of a room (synthetic reverb), its RT60 range in seconds and its wet share.
    reverb_prob: float = 0.0
    reverb_rt60: tuple[float, float] = (0.3, 1.5)
    reverb_wet: tuple[float, float] = (0.1, 0.4)
    #: Master EQ: tilt in dB/octave, low-pass and high-pass corners in Hz.
    tilt_db: tuple[float, float] = (-2.0, 1.5)
    lowpass_hz: tuple[float, float] = (2500.0, 8000.0)
    highpass_hz: tuple[float, float] = (25.0, 90.0)
    #: Background noise this many dB below the music.
    noise_db: tuple[float, float] = (12.0, 40.0)
    #: Chance of bus saturation (tanh drive 1.5-5) as a production difference.
    drive_prob: float = 0.0
    #: The whole clip is played up to this many cents sharp or flat (and as much faster/slower).
    detune_cents: float = 0.0


LEVELS: dict[str, Difficulty] = {
    "easy": Difficulty("easy"),
    "medium": Difficulty(
        "medium", tempo_widen=0.12, part_level_db=8.0, borrow_prob=0.35, borrow_max_parts=2,
        drop_prob=0.2, vocal_prob=0.4, reverb_prob=0.6, reverb_rt60=(0.3, 2.0), reverb_wet=(0.1, 0.5),
        tilt_db=(-3.0, 2.0), lowpass_hz=(1800.0, 8000.0), highpass_hz=(25.0, 150.0),
        noise_db=(4.0, 35.0), drive_prob=0.3, detune_cents=30.0,
    ),
    "hard": Difficulty(
        "hard", tempo_widen=0.25, part_level_db=10.0, borrow_prob=0.6, borrow_max_parts=3,
        drop_prob=0.35, vocal_prob=0.6, reverb_prob=0.8, reverb_rt60=(0.3, 3.0), reverb_wet=(0.2, 0.7),
        tilt_db=(-4.0, 3.0), lowpass_hz=(1200.0, 8000.0), highpass_hz=(25.0, 250.0),
        noise_db=(0.0, 30.0), drive_prob=0.5, detune_cents=60.0,
    ),
}

#: Genres whose recipes overlap at `medium`/`hard`: a clip may take parts from one of these.
NEIGHBOURS: dict[str, tuple[str, ...]] = {
    "rock": ("metal",), "metal": ("rock",),
    "disco": ("pop",), "pop": ("disco",),
    "blues": ("jazz", "country"), "jazz": ("blues",), "country": ("blues",),
    "hiphop": ("reggae",), "reggae": ("hiphop",),
}


def level(name: str, setting: str = "difficulty") -> Difficulty:
    """The level called `name`; a clear error naming `setting` otherwise."""
    try:
        return LEVELS[str(name)]
    except KeyError:
        raise ValueError(f"{setting} must be one of {', '.join(LEVELS)}, got {name!r}") from None
