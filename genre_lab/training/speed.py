"""How fast a run trained and tagged on its machine, logged with its scores so that a comparison
of architectures (`report --metric speed/...`) shows cost beside accuracy.

- `speed/train_examples_per_s`: training windows per second over every training step of the
  fit, the optimiser step and the wait for the batch included; validation, checkpointing and
  logging between epochs excluded.
- `speed/test_audio_s_per_s`: seconds of test audio per second of the test loop, which cuts
  each track into the evaluation windows at the evaluation hop, runs the front end and the
  network, and pools the windows per track — what tagging a song costs, decoding excluded.

Both depend on the machine and its load; the run's `host`/device tags say where they came from.
`genre-lab bench zoo` measures the same two rates in one process against a baseline.
"""

from __future__ import annotations

import time
from typing import Any

import lightning.pytorch as pl


class SpeedMeter(pl.Callback):
    """Times the training steps (from the end of one to the end of the next: the batch wait
    counts) and the whole test loop."""

    def __init__(self) -> None:
        self.train_seconds = 0.0
        self.train_examples = 0
        self.test_seconds = 0.0
        self._since: float | None = None
        self._test_start: float | None = None

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._since = time.perf_counter()

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        now = time.perf_counter()
        if self._since is not None:
            self.train_seconds += now - self._since
            self.train_examples += _batch_size(batch)
        self._since = now

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._since = None

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Validation inside an epoch (trainer.val_check_interval < 1): not a training step's time.
        if self._since is not None:
            self.train_seconds += time.perf_counter() - self._since
            self._since = None

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:  # training resumes (at an epoch end, the epoch ends next)
            self._since = time.perf_counter()

    def on_test_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._test_start = time.perf_counter()

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._test_start is not None:
            self.test_seconds += time.perf_counter() - self._test_start
            self._test_start = None

    def metrics(self, test_audio_seconds: float | None, world_size: int = 1) -> dict[str, float]:
        """The rates measured so far (none for a part that did not run). Under DDP this rank's
        training rate times `world_size` (every rank steps through as many batches), so the
        training rate is the job's, as the test rate (all test audio over the loop's time) is."""
        out = {}
        if self.train_seconds > 0 and self.train_examples:
            out["speed/train_examples_per_s"] = world_size * self.train_examples / self.train_seconds
        if test_audio_seconds and self.test_seconds > 0:
            out["speed/test_audio_s_per_s"] = test_audio_seconds / self.test_seconds
        return out


def _batch_size(batch: Any) -> int:
    """The number of examples in a batch: the length of its first tensor."""
    first = batch[0] if isinstance(batch, (list, tuple)) else batch
    return int(len(first))
