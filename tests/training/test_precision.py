"""Mixed precision: the front end stays float32 under autocast, training stays finite."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from mlflow import MlflowClient

from genre_lab.config import compose
from genre_lab.features import FrontEnd
from genre_lab.training.lightning_module import GenreClassifier
from genre_lab.training.fit import fit_and_test

SR = 16000
DTYPES = [torch.float16, torch.bfloat16]


def _signals(batch: int = 4, seconds: float = 1.0) -> dict[str, torch.Tensor]:
    """Digital silence, and full-scale audio: a +-1 square wave and clipped noise."""
    n = int(seconds * SR)
    t = torch.arange(n) / SR
    g = torch.Generator().manual_seed(0)
    square = torch.sign(torch.sin(2 * torch.pi * 220 * t)).expand(batch, n).clone()
    noise = (4 * torch.randn(batch, n, generator=g)).clamp(-1, 1)
    return {"silence": torch.zeros(batch, n), "square": square, "clipped_noise": noise}


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("backend", ["torchaudio", "nnaudio"])
@pytest.mark.parametrize("kind", ["logmel", "mfcc", "stft"])
def test_frontend_float32_under_autocast(dtype: torch.dtype, backend: str, kind: str) -> None:
    fe = FrontEnd(kind=kind, backend=backend, sample_rate=SR).eval()
    for name, wave in _signals().items():
        reference = fe(wave)
        with torch.autocast("cpu", dtype=dtype):
            out = fe(wave)
        assert out.dtype == torch.float32, name
        assert torch.isfinite(out).all(), (name, kind, backend)
        # Computed in float32 whatever the autocast: the same numbers as without it.
        assert torch.equal(out, reference), (name, kind, backend)
    # Silence is the floor before normalisation (1e-10 in power or magnitude dB), not -inf.
    with torch.autocast("cpu", dtype=dtype):
        spec = fe.spectrogram(torch.zeros(2, SR))
    assert spec.dtype == torch.float32 and torch.isfinite(spec).all()
    if kind != "mfcc":  # MFCCs are a DCT of the log-mel, not dB
        assert spec.min() >= {"logmel": -100.0, "stft": -200.0}[kind] - 1e-3


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("model", ["cnn", "crnn", "rnn"])
def test_training_step_finite_under_autocast(dtype: torch.dtype, model: str, tmp_path: Path) -> None:
    """Forward, loss, backward and an optimiser step under CPU autocast on silence and on
    full-scale audio: loss, every gradient and every weight stay finite, and the step moves
    the weights."""
    cfg = compose([f"model={model}", "data.sample_rate=16000"], output_dir=tmp_path)
    classes = [f"c{i}" for i in range(4)]
    net = GenreClassifier.from_config(cfg, classes).train()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    signals = _signals(batch=2)
    wave = torch.cat(list(signals.values()))
    y = torch.arange(len(wave)) % len(classes)
    before = [p.detach().clone() for p in net.parameters()]
    with torch.autocast("cpu", dtype=dtype):
        logits = net.head(net.backbone(net.augment(net.frontend(wave))))
        loss = F.cross_entropy(logits, y)
    assert torch.isfinite(logits).all() and torch.isfinite(loss)
    loss.backward()
    for name, p in net.named_parameters():
        if p.grad is not None:
            assert torch.isfinite(p.grad).all(), name
    opt.step()
    assert all(torch.isfinite(p).all() for p in net.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, net.parameters()))
    # The normalisation's running statistics saw silence and full scale: still finite.
    norm = net.frontend.norm
    assert torch.isfinite(norm.running_mean).all() and torch.isfinite(norm.running_var).all()


@pytest.mark.slow
def test_bf16_mixed_trains_end_to_end(mlflow_uri: str, tiny_overrides: list[str], tmp_path: Path) -> None:
    cfg = compose(["model=cnn", "trainer.precision=bf16-mixed", *tiny_overrides, "throughput_seconds=0"],
                  output_dir=tmp_path / "out")
    result = fit_and_test(cfg)
    client = MlflowClient(mlflow_uri)
    run = client.get_run(result.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["trainer.precision"] == "bf16-mixed"
    for key in ("train/loss", "val/loss"):
        history = client.get_metric_history(result.run_id, key)
        assert len(history) == cfg.trainer.max_epochs
        assert all(math.isfinite(m.value) for m in history), key
    assert all(math.isfinite(v) for v in result.metrics.values()), result.metrics
    # It learns in bf16 too: 10 classes, chance is 0.1.
    assert result.metrics["test/track_acc"] >= 0.5, result.metrics
