"""What a dataset holds before anything is trained on it: the findings of `genre-lab audit`.

Everything here works on the splits a `ClipSource` returns (decoded, mono, at the dataset's
sample rate), so every dataset is audited the same way:

- **Exact duplicates**: clips whose decoded samples are equal (SHA-1 of the float32 samples):
  the same recording under two names or in two formats (a `.wav` and a `.flac` of it decode to
  the same samples). Grouped, each member with its split; a group spanning splits is a leak.
- **Near-duplicates**: pairs whose embeddings have a cosine similarity at or above a threshold
  (`near_pairs`): a re-encoded copy, a copy at another gain or with some noise. The embeddings
  are a model's (the caller's choice) or `fingerprints`, a cheap deterministic summary of the
  spectrum computed here. Similarities are computed block by block, so memory stays
  O(block x n) and the pairs kept are bounded, whatever the number of clips.
- **The same artist across splits**, where the source knows each clip's artist
  (`AudioSplit.artists`): a classifier that learns an artist's production scores on its
  other songs (Sturm 2013; the reason for GTZAN's artist-filtered split).
- **Class balance per split**, and **files that are not used**: unreadable, silent, too short,
  listed without audio (the source's `skipped` and `unassigned` lists, with their reasons).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torchaudio

from genre_lab.data.clips import SPLITS, AudioSplit
from genre_lab.data.screen import SHORT_REASON

#: Rows of the similarity matrix computed at once (a block is BLOCK x n floats).
BLOCK = 1024
#: Most near-duplicate pairs kept (the most similar first); the count above it is reported.
MAX_PAIRS = 10_000
#: Kinds of file that is not used, by the start of the reason the source gave.
PROBLEM_KINDS = ("missing", "silent", "short", "unreadable")


@dataclass(frozen=True)
class Clip:
    """One clip of the audited splits: its id, split, position in that split, label and artist."""

    clip_id: str
    split: str
    index: int
    label: int
    artist: str | None = None


def clips_of(splits: Mapping[str, AudioSplit]) -> list[Clip]:
    """Every clip of the splits, in split order (train, val, test) then in each split's order."""
    out = []
    for split in SPLITS:
        s = splits[split]
        artists = s.artists or [None] * len(s)
        out += [Clip(s.ids[i], split, i, s.labels[i], artists[i]) for i in range(len(s))]
    return out


def waves_of(splits: Mapping[str, AudioSplit]) -> Iterator[np.ndarray]:
    """The waves of the splits, in the order of `clips_of`."""
    for split in SPLITS:
        yield from splits[split].waves


def sample_hash(wave: np.ndarray) -> str:
    """SHA-1 of the samples as float32 (the decoded, resampled, mono audio)."""
    return hashlib.sha1(memoryview(np.ascontiguousarray(wave, dtype=np.float32)).cast("B")).hexdigest()


def exact_duplicates(clips: Sequence[Clip], hashes: Sequence[str]) -> list[dict[str, Any]]:
    """Groups of two or more clips with equal samples: {"hash", "across_splits", "clips":
    [{"clip", "split"}]}, groups spanning splits first."""
    by_hash: dict[str, list[Clip]] = defaultdict(list)
    for clip, digest in zip(clips, hashes):
        by_hash[digest].append(clip)
    groups = [{"hash": digest, "across_splits": len({c.split for c in members}) > 1,
               "clips": [{"clip": c.clip_id, "split": c.split} for c in members]}
              for digest, members in by_hash.items() if len(members) > 1]
    return sorted(groups, key=lambda g: (not g["across_splits"], g["clips"][0]["clip"]))


def fingerprint(wave: np.ndarray, sample_rate: int) -> np.ndarray:
    """A deterministic summary of a clip's spectrum, for finding near-duplicates without a model.

    From the mel spectrogram (64 bands up to 11 kHz): the long-term average spectrum in dB
    (60 dB range), and, from the log-mel frames floored 30 dB below the clip's loudest bin,
    each band's spread over time and the mean, spread and frame-to-frame change of 20 MFCCs
    (the cosine transform of those frames). The clip's mean level is subtracted from both, so a
    gain change moves nothing; the high floor keeps light noise in the quiet frames between
    notes from counting (measured on the synthetic genres: a copy at -2 dB with noise 40 dB
    below its peak, or re-encoded to Ogg Vorbis, scores >= 0.99 against its original, distinct
    clips below 0.9 after `standardize`). Order in time is summarised away, so a copy cut at
    another offset still matches. 188 values; compare them after `standardize`."""
    x = torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32))
    n_fft = 2048 if sample_rate > 24000 else 1024
    mel = torchaudio.transforms.MelSpectrogram(sample_rate, n_fft=n_fft, hop_length=n_fft // 2, n_mels=64,
                                               f_min=30.0, f_max=min(sample_rate / 2, 11025.0))(x)
    average = torchaudio.functional.amplitude_to_DB(mel.mean(1, keepdim=True), 10.0, 1e-10, 0.0, top_db=60.0)[:, 0]
    frames = torchaudio.functional.amplitude_to_DB(mel, 10.0, 1e-10, 0.0, top_db=30.0)
    average, frames = average - average.mean(), frames - frames.mean()
    mfcc = frames.T @ torchaudio.functional.create_dct(20, 64, "ortho")  # (frames, 20)
    change = (mfcc[1:] - mfcc[:-1]).abs().mean(0) if len(mfcc) > 1 else torch.zeros(20)
    parts = [average, frames.std(1, unbiased=False), mfcc.mean(0), mfcc.std(0, unbiased=False), change]
    return torch.cat(parts).numpy().astype(np.float32)


def standardize(embeddings: np.ndarray) -> np.ndarray:
    """Each dimension centred on the dataset's mean and scaled to unit spread, then each row to
    unit length. Raw summaries of music all point one way (cosine near 1 for any two clips);
    centred, the cosine measures how two clips differ from the dataset in the same way.
    Dimensions that do not vary keep scale 1."""
    x = np.asarray(embeddings, dtype=np.float64)
    x = x - x.mean(0, keepdims=True)
    spread = x.std(0, keepdims=True)
    x = x / np.where(spread > 1e-8, spread, 1.0)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.where(norm > 0, norm, 1.0)).astype(np.float32)


def near_pairs(unit: np.ndarray, threshold: float, block: int = BLOCK,
               max_pairs: int = MAX_PAIRS) -> tuple[list[tuple[int, int, float]], int]:
    """(i, j, cosine) of every pair i < j of rows of `unit` (unit-length rows) whose cosine is
    at least `threshold`, most similar first, at most `max_pairs` of them; and how many pairs
    reached the threshold in all. Computed a block of rows against the rows from that block on:
    the n x n matrix is never held."""
    n = len(unit)
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    sims: list[np.ndarray] = []
    total = kept = 0
    for start in range(0, n, block):
        stop = min(start + block, n)
        s = unit[start:stop] @ unit[start:].T  # (block, n - start)
        # Only j > i: the block's own square keeps its strict upper triangle.
        s[np.tril_indices(stop - start, 0, s.shape[1])] = -np.inf
        i, j = np.nonzero(s >= threshold)
        total += len(i)
        rows.append(i + start)
        cols.append(j + start)
        sims.append(s[i, j])
        kept += len(i)
        if kept > 2 * max_pairs:  # trim as we go: the kept pairs stay bounded
            r, c, v = _top(np.concatenate(rows), np.concatenate(cols), np.concatenate(sims), max_pairs)
            rows, cols, sims, kept = [r], [c], [v], len(r)
    if not rows:
        return [], 0
    r, c, v = _top(np.concatenate(rows), np.concatenate(cols), np.concatenate(sims), max_pairs)
    return [(int(a), int(b), float(x)) for a, b, x in zip(r, c, v)], total


def _top(rows: np.ndarray, cols: np.ndarray, sims: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    order = np.lexsort((cols, rows, -sims))[:k]
    return rows[order], cols[order], sims[order]


def near_duplicates(clips: Sequence[Clip], hashes: Sequence[str], embeddings: np.ndarray, threshold: float,
                    block: int = BLOCK, max_pairs: int = MAX_PAIRS) -> tuple[list[dict[str, Any]], int]:
    """Near-duplicate pairs as report rows {"first": {"clip", "split"}, "second": ..., "similarity",
    "across_splits"}, leaving out pairs of exact duplicates (listed as those), and the count of
    pairs that reached the threshold (exact duplicates included)."""
    pairs, total = near_pairs(standardize(embeddings), threshold, block, max_pairs)
    out = []
    for i, j, sim in pairs:
        if hashes[i] == hashes[j]:
            continue
        a, b = clips[i], clips[j]
        out.append({"first": {"clip": a.clip_id, "split": a.split}, "second": {"clip": b.clip_id, "split": b.split},
                    "similarity": round(sim, 6), "across_splits": a.split != b.split})
    return out, total


def artists_across_splits(clips: Sequence[Clip]) -> list[dict[str, Any]] | None:
    """Artists with clips in more than one split: {"artist", "splits": {split: [clip ids]}};
    None when the source gave no artist for any clip."""
    if not any(c.artist for c in clips):
        return None
    where: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for c in clips:
        if c.artist:
            where[c.artist][c.split].append(c.clip_id)
    return [{"artist": artist, "splits": {s: splits[s] for s in SPLITS if s in splits}}
            for artist, splits in sorted(where.items()) if len(splits) > 1]


def class_balance(splits: Mapping[str, AudioSplit], classes: Sequence[str]) -> dict[str, dict[str, int]]:
    """{split: {class: clips}} (a multi-label clip counts once for each of its tags)."""
    out = {}
    for split in SPLITS:
        counts = np.zeros(len(classes), dtype=int)
        for tags in splits[split].tag_sets():
            counts[list(tags)] += 1
        out[split] = {name: int(n) for name, n in zip(classes, counts)}
    return out


def problem_kind(reason: str) -> str:
    """`missing`, `silent`, `short` or `unreadable`, from the reason a source gave for a file."""
    if reason.startswith("silent"):
        return "silent"
    if reason.startswith(SHORT_REASON):
        return "short"
    if reason == "no such file" or "not found" in reason or reason.startswith("dangling symbolic link"):
        return "missing"
    return "unreadable"


def unused_files(splits: Mapping[str, AudioSplit], unassigned: Sequence[tuple[str, str]]) -> list[dict[str, str]]:
    """Every file the source left out, with its split (`unassigned`: before any split), kind
    (`problem_kind`) and reason."""
    listed = [(split, path, reason) for split in SPLITS for path, reason in splits[split].skipped]
    listed += [("unassigned", path, reason) for path, reason in unassigned]
    return [{"path": str(path), "split": split, "kind": problem_kind(str(reason)), "reason": str(reason)}
            for split, path, reason in listed]
