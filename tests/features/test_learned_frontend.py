"""Learned front ends (`features.frontend.trainable`): nnAudio's STFT/mel kernels as parameters,
initialised as the fixed log-mel, with their own learning rate, and the filterbank logged."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from mlflow import MlflowClient

from genre_lab.models import model_file as checkpoint
from genre_lab.config import compose
from genre_lab.features import FrontEnd
from genre_lab.features.learned import CHANGE_METRIC, FIGURE
from genre_lab.training.lightning_module import GenreClassifier
from genre_lab.training.fit import fit_and_test


def test_learned_front_end_starts_as_the_fixed_log_mel() -> None:
    torch.manual_seed(0)
    wave = torch.randn(3, 8000)
    fixed = FrontEnd(backend="nnaudio", sample_rate=8000, n_fft=512, hop_length=256, n_mels=32)
    learned = FrontEnd(backend="auto", sample_rate=8000, n_fft=512, hop_length=256, n_mels=32, trainable=True)
    assert list(learned.impls) == ["nnaudio"]  # on a CPU too: torchaudio has no kernels to learn
    assert torch.equal(learned.spectrogram(wave), fixed.spectrogram(wave))
    names = {n for n, p in learned.named_parameters() if p.requires_grad}
    assert {"impls.nnaudio.mel_basis", "impls.nnaudio.stft.wsin", "impls.nnaudio.stft.wcos"} <= names
    assert not any(p.requires_grad for p in fixed.impls.parameters())


@pytest.mark.parametrize(("settings", "fragment"), [
    ({"kind": "stft"}, "trainable needs kind logmel or mfcc"),
    ({"backend": "torchaudio"}, "trainable needs backend nnaudio or auto"),
    ({"lr_scale": 0.0}, "lr_scale must be positive"),
])
def test_bad_learned_front_end_settings_name_the_setting(settings: dict, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        FrontEnd(**{"trainable": True, "sample_rate": 8000, **settings})


def test_kernels_get_their_own_learning_rate() -> None:
    cfg = compose(["model=cnn", "features.frontend.trainable=true", "features.frontend.lr_scale=0.1"])
    model = GenreClassifier.from_config(cfg, ["a", "b"])
    optimizer = model.configure_optimizers()["optimizer"]
    lr = cfg.model.optimizer.lr
    kernels = {id(p) for p in model.frontend.kernel_parameters()}
    groups = [(group["lr"], {id(p) for p in group["params"]}) for group in optimizer.param_groups]
    assert [ids for rate, ids in groups if rate == pytest.approx(lr * 0.1)] == [kernels]
    assert all(rate == pytest.approx(lr) for rate, ids in groups if ids != kernels)
    # Every trainable parameter is in exactly one group.
    grouped = [i for _, ids in groups for i in ids]
    assert sorted(grouped) == sorted(id(p) for p in model.parameters() if p.requires_grad)
    # The setting travels in the checkpoint spec: a reloaded model has learnable kernels again.
    assert GenreClassifier.from_spec(model.spec).frontend.trainable


@pytest.mark.slow
def test_training_changes_the_kernels_and_logs_the_filterbank(mlflow_uri: str, tiny_overrides: list[str],
                                                              tmp_path: Path) -> None:
    cfg = compose([*tiny_overrides, "model=cnn", "features.frontend.trainable=true"],
                  output_dir=tmp_path / "out")
    result = fit_and_test(cfg)
    assert result.metrics["test/track_acc"] >= 0.5, result.metrics  # 10 classes: chance 0.1

    initial = FrontEnd(**{k: v for k, v in cfg.features.frontend.items() if k != "_target_"}).state_dict()
    spec, weights = checkpoint.read(result.best_checkpoint)
    assert spec.features["frontend"]["trainable"] is True
    for name in ("mel_basis", "stft.wsin", "stft.wcos"):
        before, after = initial[f"impls.nnaudio.{name}"], weights[f"frontend.impls.nnaudio.{name}"]
        assert before.shape == after.shape and not torch.allclose(before, after), name

    client = MlflowClient(mlflow_uri)
    run = client.get_run(result.run_id)
    print(f"\nlearned front end: {CHANGE_METRIC}={run.data.metrics[CHANGE_METRIC]:.4f}, "
          f"test/track_acc={result.metrics['test/track_acc']:.3f}")
    assert run.data.metrics[CHANGE_METRIC] > 0.0
    figures = {a.path: a.file_size for a in client.list_artifacts(result.run_id, "features")}
    assert figures.get(FIGURE, 0) > 10_000, figures  # a real PNG, not an empty file
