"""`model.head_warmup_epochs=N`: the first N epochs train only the head (front end and backbone
held, their BatchNorm statistics too), then everything trains; 0 changes nothing."""

from __future__ import annotations

import lightning.pytorch as pl
import pytest
import torch

from genre_lab.config import compose
from genre_lab.training.fit import fit_and_test
from genre_lab.training.lightning_module import GenreClassifier
from tests.conftest import TINY


class Snapshots(pl.Callback):
    """The network's weights and buffers when training starts and after each epoch."""

    def __init__(self) -> None:
        self.states: list[dict[str, torch.Tensor]] = []

    def _take(self, module: GenreClassifier) -> None:
        self.states.append({k: v.detach().clone() for k, v in module.net.state_dict().items()})

    def on_train_start(self, trainer: pl.Trainer, module: GenreClassifier) -> None:
        self._take(module)

    def on_train_epoch_end(self, trainer: pl.Trainer, module: GenreClassifier) -> None:
        self._take(module)


def _changed(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], prefix: str) -> list[str]:
    return [k for k in a if k.startswith(prefix) and a[k].is_floating_point() and not torch.equal(a[k], b[k])]


@pytest.mark.slow
def test_head_warms_up_alone_then_everything_trains(tmp_path, mlflow_uri) -> None:
    snapshots = Snapshots()
    cfg = compose([*TINY, "model=cnn", "model.head_warmup_epochs=1", "trainer.max_epochs=2", "test=false",
                   "throughput_seconds=0", f"paths.root_dir={tmp_path}"], output_dir=tmp_path / "out")
    fit_and_test(cfg, callbacks=[snapshots])
    start, warm, after = snapshots.states
    # Epoch 0: only the head moved; the backbone's weights and BatchNorm statistics are as they were.
    assert _changed(start, warm, "head.") == ["head.weight", "head.bias"]
    assert _changed(start, warm, "backbone.") == [] and _changed(start, warm, "frontend.") == []
    # Epoch 1: the backbone trains too (weights and running statistics).
    moved = _changed(warm, after, "backbone.")
    assert "backbone.blocks.0.0.weight" in moved and "backbone.blocks.0.1.running_mean" in moved


def test_no_warm_up_by_default_and_a_bad_value_is_refused() -> None:
    model = GenreClassifier.from_config(compose([*TINY, "model=cnn"]), ["a", "b"])
    assert model.head_warmup_epochs == 0
    with pytest.raises(ValueError, match="model.head_warmup_epochs"):
        GenreClassifier.from_config(compose([*TINY, "model=cnn", "model.head_warmup_epochs=-1"]), ["a", "b"])
