"""A frozen backbone's embeddings, computed once per window and reused every epoch.

With `model.freeze=backbone` only the head trains: the front end and backbone map a window to
the same embedding every time (they stay in eval mode, so BatchNorm and dropout are fixed).
Training therefore takes the embedding path: the frozen part runs without gradients and with
no augmentation on it (SpecAugment masks between the front end and the backbone would make
each draw differ; they are off in this mode), mixup mixes the embeddings, and the head learns
on them. The LightningModule keeps an `EmbeddingCache` keyed by (split, clip index, start
sample) when the windows are fixed: the DataModule then draws each clip's training windows once
from the run's seed (`fixed_train_windows`) and keys the validation windows too, so from the
second epoch on no window goes through the frozen part again.

The cache lives in memory on the model's device and is bounded by `model.frozen_cache_mb`
(0 turns it off): when the windows to hold (training and validation, times the embedding
size) would pass it, one warning says so and training draws random windows and recomputes as
without a cache. A cached epoch gives the same losses and head updates as recomputing the
frozen part on the same windows (tests/training/test_frozen_cache.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable, Sequence

import torch

log = logging.getLogger(__name__)

#: `model.frozen_cache_mb` when a model config has none.
DEFAULT_LIMIT_MB = 512.0


def limit_mb(value: object) -> float:
    """`model.frozen_cache_mb` as a number of MB >= 0 (a ValueError naming the setting)."""
    try:
        mb = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        mb = float("nan")
    if isinstance(value, bool) or not mb >= 0 or mb == float("inf"):
        raise ValueError(f"model.frozen_cache_mb must be a number of MB >= 0 (0: off), got {value!r}")
    return mb


class EmbeddingCache:
    """Embeddings by key, at most `limit_bytes` of them; counts hits and misses."""

    def __init__(self, limit_bytes: float) -> None:
        self.limit_bytes = float(limit_bytes)
        self.rows: dict[Hashable, torch.Tensor] = {}
        self.bytes = 0
        self.hits = self.misses = 0
        self._full_warned = False

    def __len__(self) -> int:
        return len(self.rows)

    def clear(self) -> None:
        self.rows.clear()
        self.bytes = 0

    def embed(self, compute: Callable[[torch.Tensor], torch.Tensor], inputs: torch.Tensor,
              keys: Sequence[Hashable]) -> torch.Tensor:
        """`compute(inputs)`, (batch, dim), with the rows of known keys taken from the cache:
        only the unknown inputs are computed, then kept."""
        found = [self.rows.get(k) for k in keys]
        missing = [i for i, row in enumerate(found) if row is None]
        self.hits += len(keys) - len(missing)
        self.misses += len(missing)
        if missing:
            fresh = compute(inputs[torch.tensor(missing, device=inputs.device)])
            for j, i in enumerate(missing):
                found[i] = fresh[j]
                self._keep(keys[i], fresh[j])
        return torch.stack(found)  # type: ignore[arg-type]

    def _keep(self, key: Hashable, row: torch.Tensor) -> None:
        size = row.numel() * row.element_size()
        if self.bytes + size > self.limit_bytes:
            if not self._full_warned:
                log.warning("model.frozen_cache_mb=%g is full: further windows are recomputed", self.limit_bytes / 2**20)
                self._full_warned = True
            return
        self.rows[key] = row.detach().clone()
        self.bytes += size


def keys(split: str, clips: torch.Tensor, starts: torch.Tensor) -> list[tuple[str, int, int]]:
    """Cache keys of a batch: (split, clip index, start sample) per window."""
    return [(split, int(c), int(s)) for c, s in zip(clips.tolist(), starts.tolist())]


def fits(n_windows: int, dim: int, limit_mb: float, itemsize: int = 4) -> bool:
    """Whether `n_windows` embeddings of `dim` values fit `model.frozen_cache_mb`; warns in one
    line when they do not (a limit of 0 is off, silently)."""
    if limit_mb <= 0:
        return False
    need = n_windows * dim * itemsize / 2**20
    if need > limit_mb:
        log.warning("frozen backbone: %d window embeddings need %.0f MB > model.frozen_cache_mb=%g; "
                    "not cached (random windows, frozen part recomputed every epoch)", n_windows, need, limit_mb)
        return False
    return True
