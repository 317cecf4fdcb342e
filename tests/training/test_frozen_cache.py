"""A frozen backbone's embeddings computed once: cached training equals recomputing the frozen
part on the same windows; a freeze=backbone run uses the cache from its second epoch and learns."""

from __future__ import annotations

import copy
import logging

import pytest
import torch
from mlflow import MlflowClient

from torch.utils.data import DataLoader

from genre_lab.config import compose
from genre_lab.data.datamodule import TrackChunks
from genre_lab.training import frozen_cache
from genre_lab.training.fit import build, fit_and_test
from tests.conftest import TINY

FROZEN = [*TINY, "model=cnn", "model.freeze=backbone", "features.augment.mixup_alpha=0.4"]


def _steps(model, batches, epochs: int) -> list[float]:
    """`epochs` passes of SGD on the head over the same batches, mixup seeded per step alike."""
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    model.train()
    losses = []
    for epoch in range(epochs):
        for i, batch in enumerate(batches):
            torch.manual_seed(1000 * epoch + i)
            opt.zero_grad()
            loss = model.training_step(batch, i)
            loss.backward()
            opt.step()
            losses.append(loss.item())
    return losses


def test_cached_training_equals_recomputing_the_frozen_part(tmp_path) -> None:
    datamodule, model = build(compose(FROZEN, output_dir=tmp_path))
    datamodule.fixed_train_windows = True
    torch.manual_seed(0)
    batches = list(datamodule.train_dataloader())
    assert len(batches[0]) == 4  # window, label, clip index, start sample
    again = list(datamodule.train_dataloader())  # the same fixed windows for another epoch
    assert sorted(zip(*(torch.cat([b[k] for b in batches]).tolist() for k in (2, 3)))) == \
        sorted(zip(*(torch.cat([b[k] for b in again]).tolist() for k in (2, 3))))
    recomputing = copy.deepcopy(model)
    model.frozen_cache = frozen_cache.EmbeddingCache(2**30)
    cached = _steps(model, batches, epochs=3)
    assert model.frozen_cache.hits == 2 * sum(len(b[0]) for b in batches)  # epochs 2 and 3: all hits
    assert model.frozen_cache.misses == sum(len(b[0]) for b in batches)
    plain = _steps(recomputing, batches, epochs=3)
    assert cached == pytest.approx(plain, rel=1e-5, abs=1e-6)
    assert torch.allclose(model.head.weight, recomputing.head.weight, atol=1e-5)
    # Validation with the cache gives the logits of the whole network.
    model.eval()
    windows = TrackChunks(datamodule.splits["val"], datamodule.chunk, datamodule.hop, with_start=True)
    wave, y, clip, start = next(iter(DataLoader(windows, batch_size=8)))
    for _ in range(2):
        logits = model.head(model.embed_frozen("val", (wave, y, clip, start)))
    assert torch.allclose(logits, model(wave), atol=1e-5)


def test_cache_bounded_by_its_setting(caplog) -> None:
    with caplog.at_level(logging.WARNING):
        assert not frozen_cache.fits(10_000, 512, limit_mb=1)
    assert "model.frozen_cache_mb=1" in caplog.text and len(caplog.records) == 1
    assert frozen_cache.fits(100, 512, limit_mb=1) and not frozen_cache.fits(100, 512, limit_mb=0)
    for bad in ("lots", -1, float("nan"), True):
        with pytest.raises(ValueError, match="model.frozen_cache_mb must be a number of MB >= 0"):
            frozen_cache.limit_mb(bad)
    cache = frozen_cache.EmbeddingCache(limit_bytes=3 * 8 * 4)  # room for three rows of 8 floats
    out = cache.embed(lambda x: x * 2, torch.ones(5, 8), [("train", i, 0) for i in range(5)])
    assert torch.equal(out, torch.full((5, 8), 2.0)) and len(cache) == 3


def test_frozen_backbone_run_reuses_embeddings_and_learns(tmp_path, mlflow_uri) -> None:
    cfg = compose([*FROZEN, "trainer.max_epochs=4", "throughput_seconds=0", "log_model=false",
                   f"paths.root_dir={tmp_path}"], output_dir=tmp_path / "run")
    result = fit_and_test(cfg)
    history = [m.value for m in sorted(MlflowClient(mlflow_uri).get_metric_history(
        result.run_id, "train/frozen_cache_hit_rate"), key=lambda m: m.step)]
    assert history[0] == 0.0 and history[1:] == [1.0] * 3
    assert result.metrics["test/track_acc"] > 0.3  # 10 classes: chance is 0.1
