"""Windows: how a clip or a song of any length becomes fixed-length model inputs, and how their
outputs become one prediction per track. Training's evaluation (DataModule, LightningModule),
`genre_lab.cli.evaluate`, the Tagger and the explanations all cut and average the same way here,
so a file gets the same distribution from each of them.

A track's distribution is the mean of its windows' probabilities, or, for a model whose spec
says `model.track_average: logits` (a linear probe logged as a network:
`genre_lab.models.probe_file.probe_network`), the softmax of the mean of their logits, which is
the probe's own decision on the mean embedding. From the window probabilities that is their
normalised geometric mean: softmax(mean log p) = softmax(mean logits), the per-window
log-partition being a shift common to every class.
"""

from __future__ import annotations

import numpy as np
import torch


#: How window outputs become a track's: mean probabilities, or the softmax of mean logits.
TRACK_AVERAGES = ("probabilities", "logits")
#: Below float32's smallest normal number: a probability that underflowed to 0 stays finite in log.
_TINY = 1e-38


def samples(seconds: float, sample_rate: int) -> int:
    """Seconds of audio at `sample_rate`, in whole samples."""
    return int(round(seconds * sample_rate))


def chunk_starts(length: int, chunk: int, hop: int) -> list[int]:
    """Window starts covering a clip of `length` samples; the last window ends at the clip's end."""
    starts = list(range(0, length - chunk + 1, hop)) or [0]  # a short clip: one (padded) window
    if starts[-1] + chunk < length:
        starts.append(length - chunk)
    return starts


def window(wave: np.ndarray | torch.Tensor, start: int, chunk: int) -> torch.Tensor:
    """`chunk` samples of `wave` from `start`, zero-padded at the end when the clip is shorter."""
    out = torch.zeros(chunk, dtype=torch.float32)
    piece = torch.as_tensor(np.asarray(wave[start : start + chunk], dtype=np.float32))
    out[: len(piece)] = piece
    return out


def windows(wave: np.ndarray | torch.Tensor, chunk: int, hop: int) -> tuple[torch.Tensor, list[int]]:
    """Every window of a clip as a (windows, chunk) batch, and the windows' start samples."""
    starts = chunk_starts(len(wave), chunk, hop)
    return torch.stack([window(wave, s, chunk) for s in starts]), starts


def average_windows(probs: torch.Tensor, average: str = "probabilities") -> torch.Tensor:
    """(windows, classes) softmax probabilities of one track -> its (classes,) distribution
    (`average`: see the module docstring)."""
    if average == "logits":
        return probs.float().clamp_min(_TINY).log().mean(0).softmax(0)
    return probs.mean(0)



def track_probabilities(
    probs: torch.Tensor, labels: torch.Tensor, clips: torch.Tensor, average: str = "probabilities"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Average window probabilities per clip id -> (track probs, track labels), clips in id order.
    `labels` are class indices (batch,) or multi-hot tag rows (batch, tags); `average="logits"`:
    per clip, the softmax of the mean window logits (see the module docstring)."""
    if average == "logits":
        logs, track_labels = track_probabilities(probs.float().clamp_min(_TINY).log(), labels, clips)
        return logs.softmax(1), track_labels
    ids, inverse = torch.unique(clips, return_inverse=True)
    summed = torch.zeros(len(ids), probs.shape[1], device=probs.device, dtype=probs.dtype).index_add_(0, inverse, probs)
    counts = torch.bincount(inverse, minlength=len(ids)).unsqueeze(1)
    track_labels = labels.new_zeros((len(ids), *labels.shape[1:]))
    track_labels[inverse] = labels  # every window of a clip carries the clip's label
    return summed / counts, track_labels
