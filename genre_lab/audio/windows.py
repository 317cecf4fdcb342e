"""Windows: how a clip or a song of any length becomes fixed-length model inputs, and how their
outputs become one prediction per track. Training's evaluation (DataModule, LightningModule),
`genre_lab.cli.evaluate`, the Tagger and the explanations all cut and average the same way here,
so a file gets the same distribution from each of them.

Test-time choices for the track decision (`evaluate pooling=... tta_shifts=...`, `predict
--pooling --tta-shifts`), one implementation here for both:

- pooling of a track's window probabilities p_w (`POOLINGS`): `mean` (default) 1/W sum_w p_w;
  `max` max_w p_w per class; `logmean` (the geometric mean) exp(1/W sum_w log max(p_w, 1e-7)).
  For a single-label model `max` and `logmean` are renormalised to sum to 1 over the classes
  (the metrics read a distribution); a multi-label model's tags stay independent.
- `tta_shifts=N`: the windows at offsets 0, hop/N, ..., (N-1)hop/N of the hop grid, all pooled
  together (N=1: the grid alone). Measured in docs/benchmarks.md.

A model's own default pooling comes from its spec (`own_pooling`, by `TRACK_POOLING`): `mean`,
except for a linear probe logged as a network (`genre_lab.models.probe_file.probe_network`),
whose spec says `model.track_average: logits`: its track distribution is the softmax of its
windows' mean logits, the probe's own decision on the mean embedding. From the window probabilities that is their
normalised geometric mean with no floor (`logits`, not offered on the command line): softmax(mean
log p) = softmax(mean logits), the per-window log-partition being a shift common to every class.
"""

from __future__ import annotations

import numpy as np
import torch


def samples(seconds: float, sample_rate: int) -> int:
    """Seconds of audio at `sample_rate`, in whole samples."""
    return int(round(seconds * sample_rate))


def chunk_starts(length: int, chunk: int, hop: int) -> list[int]:
    """Window starts covering a clip of `length` samples; the last window ends at the clip's end."""
    starts = list(range(0, length - chunk + 1, hop)) or [0]  # a short clip: one (padded) window
    if starts[-1] + chunk < length:
        starts.append(length - chunk)
    return starts


def shifted_starts(length: int, chunk: int, hop: int, shifts: int = 1) -> list[int]:
    """`chunk_starts` of the clip and of the same grid shifted by k*hop/shifts (k < shifts),
    without repeats, in order: test-time augmentation by shifted windows."""
    if shifts < 1:
        raise ValueError(f"tta_shifts must be an integer >= 1, got {shifts}")
    starts = set(chunk_starts(length, chunk, hop))
    for k in range(1, shifts):
        offset = k * hop // shifts
        if offset and length - offset >= chunk:
            starts.update(offset + s for s in chunk_starts(length - offset, chunk, hop))
    return sorted(starts)


def window(wave: np.ndarray | torch.Tensor, start: int, chunk: int) -> torch.Tensor:
    """`chunk` samples of `wave` from `start`, zero-padded at the end when the clip is shorter."""
    out = torch.zeros(chunk, dtype=torch.float32)
    piece = torch.as_tensor(np.asarray(wave[start : start + chunk], dtype=np.float32))
    out[: len(piece)] = piece
    return out


def windows(wave: np.ndarray | torch.Tensor, chunk: int, hop: int) -> tuple[torch.Tensor, list[int]]:
    """Every window of a clip as a (windows, chunk) batch, and the windows' start samples."""
    if not isinstance(wave, torch.Tensor):
        wave = np.asarray(wave)  # read once: a cached clip's reference would read each window apart
    starts = chunk_starts(len(wave), chunk, hop)
    return torch.stack([window(wave, s, chunk) for s in starts]), starts


#: Poolings of window probabilities into a track's (see the module docstring).
POOLINGS = ("mean", "max", "logmean")
#: Probability floor of `logmean` (a float32 softmax reaches exact zeros): one window's near-zero
#: probability cannot veto a class. `logits` floors at the smallest normal float32 only.
LOG_FLOOR = 1e-7
_TINY = 1e-38
#: A model spec's `model.track_average` -> the pooling it implies (see the module docstring).
TRACK_POOLING = {"probabilities": "mean", "logits": "logits"}


def own_pooling(model: object) -> str:
    """The pooling `model` (a network or its spec) implies by its `track_average`
    (`TRACK_POOLING`): `mean` for one that names none (an ensemble: its members' mean)."""
    return TRACK_POOLING.get(str(getattr(model, "track_average", "probabilities")), "mean")


def check_pooling(pooling: str, setting: str = "pooling") -> str:
    """`pooling` when it is one of `POOLINGS`; else a ValueError naming `setting`."""
    if pooling not in POOLINGS:
        raise ValueError(f"{setting} must be one of {', '.join(POOLINGS)}, got {pooling!r}")
    return pooling


def pool_windows(probs: torch.Tensor, inverse: torch.Tensor, n: int, pooling: str = "mean",
                 normalize: bool = True) -> torch.Tensor:
    """(windows, classes) probabilities -> (n, classes), window w pooled into track
    `inverse[w]`; `normalize` (single-label) rescales `max` and `logmean` rows to sum to 1."""
    if pooling != "logits":
        check_pooling(pooling)
    shape = (n, probs.shape[1])
    counts = torch.bincount(inverse, minlength=n).unsqueeze(1)
    if pooling == "mean":
        return probs.new_zeros(shape).index_add_(0, inverse, probs) / counts
    if pooling == "max":
        index = inverse.unsqueeze(1).expand_as(probs)
        out = probs.new_zeros(shape).scatter_reduce_(0, index, probs, "amax", include_self=False)
    else:
        logs = probs.float().clamp_min(_TINY if pooling == "logits" else LOG_FLOOR).log()
        mean_log = logs.new_zeros(shape).index_add_(0, inverse, logs) / counts
        # Normalised in log space (a softmax): exp of a mean of very small logs underflows.
        return mean_log.softmax(1) if normalize else mean_log.exp()
    return out / out.sum(1, keepdim=True) if normalize else out


def track_probabilities(
    probs: torch.Tensor, labels: torch.Tensor, clips: torch.Tensor, pooling: str = "mean", normalize: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pool window probabilities per clip id (`pool_windows`; default: their mean) -> (track
    probs, track labels), clips in id order. `labels` are class indices (batch,) or multi-hot
    tag rows (batch, tags); `normalize=False` for a multi-label model's independent tags."""
    ids, inverse = torch.unique(clips, return_inverse=True)
    track_labels = labels.new_zeros((len(ids), *labels.shape[1:]))
    track_labels[inverse] = labels  # every window of a clip carries the clip's label
    return pool_windows(probs, inverse, len(ids), pooling, normalize), track_labels
