"""`genre_lab.training.speed.SpeedMeter`: training steps are timed with their batch waits,
validation inside an epoch is left out, and a DDP job's rate is every rank's."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from genre_lab.training.speed import SpeedMeter


def test_validation_inside_an_epoch_is_not_training_time() -> None:
    meter, trainer = SpeedMeter(), SimpleNamespace(sanity_checking=False)
    meter.on_validation_start(trainer, None)  # the sanity check before training: nothing to count
    meter.on_validation_end(SimpleNamespace(sanity_checking=True), None)
    meter.on_train_epoch_start(trainer, None)
    time.sleep(0.05)
    meter.on_train_batch_end(trainer, None, None, (list(range(4)), None), 0)
    meter.on_validation_start(trainer, None)
    time.sleep(0.3)  # validation: not counted
    meter.on_validation_end(trainer, None)
    time.sleep(0.05)
    meter.on_train_batch_end(trainer, None, None, (list(range(4)), None), 1)
    meter.on_train_epoch_end(trainer, None)
    assert meter.train_examples == 8
    assert 0.09 <= meter.train_seconds < 0.3
    one, two = meter.metrics(None)["speed/train_examples_per_s"], meter.metrics(None, 2)["speed/train_examples_per_s"]
    assert two == pytest.approx(2 * one) and one == pytest.approx(8 / meter.train_seconds)
    assert "speed/test_audio_s_per_s" not in meter.metrics(None)  # no test loop ran


def test_tagging_rate_is_test_audio_over_the_test_loop() -> None:
    meter, trainer = SpeedMeter(), SimpleNamespace(sanity_checking=False)
    meter.on_test_start(trainer, None)
    time.sleep(0.1)
    meter.on_test_end(trainer, None)
    rate = meter.metrics(60.0)["speed/test_audio_s_per_s"]
    assert rate == pytest.approx(60.0 / meter.test_seconds) and rate < 600
    assert "speed/train_examples_per_s" not in meter.metrics(60.0)  # no training step ran
