"""Clips from seeds: one genre's recipe, the difficulty level's rearrangement (parts borrowed
from a neighbouring genre, parts left out, a voice on top), then mastering; and the
train/val/test splits drawn from disjoint seed ranges."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from genre_lab.data.synthetic.grooves import Clip
from genre_lab.data.synthetic.levels import NEIGHBOURS, Difficulty, level
from genre_lab.data.synthetic.mastering import master
from genre_lab.data.synthetic.recipes import RECIPES, vocal_line

GENRES: tuple[str, ...] = tuple(RECIPES)
SPLITS = ("train", "val", "test")


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


def render_clip(
    genre: str, seed: int, seconds: float = 6.0, sample_rate: int = 16000, difficulty: str = "easy",
) -> np.ndarray:
    """Mono float32 waveform of length round(seconds*sample_rate), peak <= 1.

    Deterministic in (genre, seed, seconds, sample_rate, difficulty); the genre is mixed into
    the seed, so equal seeds of different genres are unrelated. `seed` must be a non-negative
    integer; `difficulty` one of `levels.LEVELS` (`easy` is the original generator).
    """
    lvl = level(difficulty)
    gi = _genre_index(genre)
    n = _check_args(seconds, sample_rate)
    seed = int(seed)
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}")
    rng = np.random.default_rng(np.random.SeedSequence([seed, gi]))
    clip = Clip(rng, int(sample_rate), n, lvl)
    parts = RECIPES[genre](clip)
    if lvl.borrow_prob > 0.0 and genre in NEIGHBOURS and rng.random() < lvl.borrow_prob:
        parts = _borrow(parts, genre, clip, lvl)
    if lvl.drop_prob > 0.0:
        keep = rng.random(len(parts)) >= lvl.drop_prob
        keep[int(rng.integers(len(parts)))] = True  # never an empty mix
        parts = [p for p, k in zip(parts, keep) if k]
    if lvl.vocal_prob > 0.0 and rng.random() < lvl.vocal_prob:
        parts.append((vocal_line(clip), rng.uniform(-6.0, 0.0)))
    return master(parts, rng, int(sample_rate), n, lvl)


def _borrow(parts: list, genre: str, host: Clip, lvl: Difficulty) -> list:
    """Replace 1..`borrow_max_parts` of the host's parts (never its first, which carries the
    genre's identity least ambiguously) by parts a neighbouring genre plays in the host's key,
    tempo and bar grid: a rock clip with a metal drummer, a blues with a walking jazz bass."""
    rng = host.rng
    options = NEIGHBOURS[genre]
    guest = Clip(rng, host.sr, host.n, lvl, host=host)
    guest_parts = RECIPES[options[int(rng.integers(len(options)))]](guest)
    k = min(int(rng.integers(1, lvl.borrow_max_parts + 1)), len(parts) - 1, len(guest_parts))
    out = list(parts)
    if k < 1:
        return out + [guest_parts[int(rng.integers(len(guest_parts)))]]
    for i, j in zip(rng.choice(np.arange(1, len(parts)), size=k, replace=False),
                    rng.choice(len(guest_parts), size=k, replace=False)):
        out[int(i)] = guest_parts[int(j)]
    return out


def clip_seed(split: str, genre_index: int, index: int, seed: int = 0) -> int:
    """The render seed of clip `index` of class `genre_index` in `split`.

    Split k owns the range [k * 2**40, (k + 1) * 2**40), so the splits never share a seed;
    inside it the seed is hashed from (seed, split, class, index) by SeedSequence.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    k = SPLITS.index(split)
    words = np.random.SeedSequence([int(seed), k, int(genre_index), int(index)]).generate_state(2)
    return k * 2 ** 40 + ((int(words[0]) << 8) ^ int(words[1])) % 2 ** 40


def synthetic_split(
    split: str, clips_per_class: int, seconds: float, sample_rate: int, seed: int = 0,
    difficulty: str = "easy", on_clip: Callable[[], object] | None = None,
) -> tuple[list[np.ndarray], list[int], list[str]]:
    """Clips for split in {"train","val","test"}.

    Returns (waves, labels (index into GENRES), ids like "train/blues/0003"). `on_clip` is
    called after each clip is rendered (a progress bar).

    Per-clip seeds come from `clip_seed` (disjoint ranges per split), so no clip is shared
    between splits. Classes are balanced: `clips_per_class` per class, ordered class-major.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if int(clips_per_class) < 0:
        raise ValueError(f"clips_per_class must be >= 0, got {clips_per_class}")
    if int(seed) < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}")
    _check_args(seconds, sample_rate)
    level(difficulty)
    waves, labels, ids = [], [], []
    for gi, genre in enumerate(GENRES):
        for i in range(int(clips_per_class)):
            waves.append(render_clip(genre, clip_seed(split, gi, i, seed), seconds, sample_rate, difficulty))
            labels.append(gi)
            ids.append(f"{split}/{genre}/{i:04d}")
            if on_clip is not None:
                on_clip()
    return waves, labels, ids
