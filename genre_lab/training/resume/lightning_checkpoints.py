"""Checkpoints a crash cannot corrupt, and the state a resumed run needs to continue exactly.

`AtomicCheckpointIO` writes every checkpoint to a temporary file beside the target, fsyncs it
and renames it into place, so `kill -9` or power loss mid-write leaves the previous
`last.ckpt` intact; it reads checkpoints with `torch.load(weights_only=True)` (a checkpoint is
data, never code). `ResumeState` stores the RNG streams, so the epochs after a resume draw
the same random chunks, masks and dropout as an uninterrupted run. `InterruptCheckpoint`
writes `interrupted.ckpt` when SIGTERM or Ctrl-C stops `fit`; `resume` continues from
`last.ckpt`, the last finished epoch (see the class for why).
"""

from __future__ import annotations

import logging
import os
import random
import uuid
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.exceptions import SIGTERMException

from genre_lab.models.model_file import CheckpointError, check_weights

log = logging.getLogger(__name__)

LAST = "last.ckpt"
#: The weights and loop state at a SIGTERM or Ctrl-C (see `InterruptCheckpoint`).
INTERRUPTED = "interrupted.ckpt"


class CheckpointLoadError(RuntimeError):
    """A checkpoint that cannot be read; the message names the file."""


class AtomicCheckpointIO(TorchCheckpointIO):
    """Write-to-temp, fsync, rename: a reader sees the old file or the new one, never half of one."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        # A hidden name readers never pick up (`resume` deletes leftovers of a killed write).
        tmp = target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            with open(tmp, "xb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_dir(target.parent)

    def load_checkpoint(self, path: Any, map_location: Any = None, weights_only: bool | None = None) -> dict[str, Any]:
        return load(path, map_location)


def load(path: str | Path, map_location: Any = "cpu") -> dict[str, Any]:
    """A Lightning checkpoint, weights-only, every weight finite; a clear error naming the file otherwise."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointLoadError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # UnpicklingError, RuntimeError (truncated zip), EOFError...
        raise CheckpointLoadError(f"cannot load checkpoint {path}: {type(err).__name__}: {err}") from err
    if not isinstance(state, dict) or "state_dict" not in state:
        raise CheckpointLoadError(f"{path} is not a Lightning checkpoint (no 'state_dict')")
    try:  # NaN or infinite weights: a resumed run would train on to a NaN loss
        check_weights(state["state_dict"], path)
    except CheckpointError as err:
        raise CheckpointLoadError(str(err)) from err
    return state


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class ResumeState(Callback):
    """RNG streams (torch CPU and CUDA, numpy, Python) saved with every checkpoint, restored on
    resume. Lightning's checkpoints hold the loops, optimiser, scheduler and callbacks but no
    RNG, so without this a resumed run draws different training chunks than the original.

    States are stored as tensors and plain tuples so the checkpoint loads weights-only.
    """

    def state_dict(self) -> dict[str, Any]:
        kind, keys, pos, has_gauss, cached = np.random.get_state()
        return {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": (str(kind), torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)),
            "python": random.getstate(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        torch.set_rng_state(state["torch"])
        if state.get("cuda") and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(state["cuda"])
        kind, keys, pos, has_gauss, cached = state["numpy"]
        np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))


class InterruptCheckpoint(Callback):
    """On SIGTERM or Ctrl-C during `fit`, write `interrupted.ckpt` (the weights at the signal,
    usable by `predict` and `evaluate`) before the run closes KILLED.

    `resume` continues from `last.ckpt` instead, the end of the last finished epoch, so an
    interruption costs at most the epoch in progress, as `kill -9` does. A mid-epoch state does
    not resume exactly: Lightning checkpoints neither the epoch's metric accumulators nor the
    validation outputs nor the loader's position. Resumed from the signal, a run interrupted
    during validation logged no `train/loss` for that epoch (seen in CI), a validation resumed
    half-way is scored on the wrong subset of clips, and the rest of the epoch draws other
    batches than an uninterrupted run.
    """

    def __init__(self) -> None:
        #: The interruption itself: Lightning turns it into `SystemExit(1)` after this hook.
        self.reason: BaseException | None = None

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if not isinstance(exception, (KeyboardInterrupt, SIGTERMException)):
            return
        self.reason = exception
        ckpt = trainer.checkpoint_callback
        if trainer.state.fn != TrainerFn.FITTING or not isinstance(ckpt, ModelCheckpoint) or not ckpt.dirpath:
            return
        if trainer.world_size > 1:
            # Saving synchronises the ranks, which an interrupted group may never reach.
            log.warning("interrupted under DDP: resume continues from the last epoch's %s", LAST)
            return
        path = str(Path(ckpt.dirpath) / INTERRUPTED)
        trainer.save_checkpoint(path)
        log.warning("interrupted: weights at the signal written to %s; resume continues from %s (the last "
                    "finished epoch)", path, Path(ckpt.dirpath) / LAST)
