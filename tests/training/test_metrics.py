"""genre_lab.training.metrics against hand-computed values and scikit-learn, and as the module logs them."""

from __future__ import annotations

import math

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from sklearn import metrics as skm
from torch.utils.data import DataLoader, TensorDataset

from genre_lab.config import compose
from genre_lab.training.metrics import classification_metrics, multilabel_metrics
from genre_lab.training.lightning_module import GenreClassifier
from genre_lab.audio.windows import track_probabilities

SINGLE = ("acc", "balanced_acc", "f1", "auroc", "pr_auc", "top2_acc", "log_loss", "ece")


def _compute(collection, probs: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    return {k: float(v) for k, v in collection(probs, target).items()}


def test_single_label_metrics_equal_a_hand_computation() -> None:
    # Confidences 0.7, 0.62, 0.5, 0.5 sit inside ECE bins (edges are multiples of 1/15).
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.62, 0.28], [0.2, 0.5, 0.3], [0.5, 0.1, 0.4]])
    target = torch.tensor([0, 2, 1, 2])
    got = _compute(classification_metrics(3, "x/"), probs, target)
    expected = {
        "x/acc": 2 / 4,                      # samples 0 and 2 right
        "x/balanced_acc": (1 + 1 + 0) / 3,   # recall per class
        "x/f1": (2 / 3 + 2 / 3 + 0) / 3,     # precision 1/2, 1/2, 0; recall 1, 1, 0
        "x/top2_acc": 1.0,                   # the true class is always among the top two
        "x/log_loss": -(math.log(0.7) + math.log(0.28) + math.log(0.5) + math.log(0.4)) / 4,
        # bins: {0.7: right}, {0.62: wrong}, {0.5, 0.5: one right} -> (0.3 + 0.62 + 0) / 4
        "x/ece": 0.25 * 0.3 + 0.25 * 0.62 + 0.5 * 0.0,
        # one-vs-rest: class 0 ranks its positive first (1), class 1 beats 2 of 3 negatives,
        # class 2's positives 0.28 and 0.4 beat 3 of 4 negative pairs
        "x/auroc": (1 + 2 / 3 + 3 / 4) / 3,
        # class 0: 1; class 1: its positive comes second (1/2); class 2: (1/1 + 2/3) / 2
        "x/pr_auc": (1 + 1 / 2 + 5 / 6) / 3,
    }
    assert got == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_single_label_metrics_match_scikit_learn(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    n, classes = 300, 5
    probs = torch.softmax(2 * torch.randn(n, classes, generator=g), 1)
    target = torch.randint(0, classes, (n,), generator=g)
    got = _compute(classification_metrics(classes, ""), probs, target)
    p, y = probs.double().numpy(), target.numpy()
    p = p / p.sum(1, keepdims=True)  # scikit-learn checks that rows sum to 1 in float64
    pred = p.argmax(1)
    onehot = np.eye(classes)[y]
    expected = {
        "acc": skm.accuracy_score(y, pred),
        "balanced_acc": skm.balanced_accuracy_score(y, pred),
        "f1": skm.f1_score(y, pred, average="macro"),
        "auroc": skm.roc_auc_score(y, p, multi_class="ovr", average="macro"),
        "pr_auc": skm.average_precision_score(onehot, p, average="macro"),
        "top2_acc": skm.top_k_accuracy_score(y, p, k=2, labels=range(classes)),
        "log_loss": skm.log_loss(y, p, labels=range(classes)),
    }
    assert {k: got[k] for k in expected} == pytest.approx(expected, abs=1e-5)
    # Not a degenerate draw: between chance and perfect.
    assert 0.1 < got["acc"] < 0.5 and 0.0 < got["ece"] < 1.0


def test_multilabel_metrics_match_scikit_learn() -> None:
    g = torch.Generator().manual_seed(3)
    n, tags = 200, 4
    target = (torch.rand(n, tags, generator=g) < 0.4).long()
    # Informative but noisy scores: AUROC well away from both 0.5 and 1.
    probs = torch.sigmoid(1.5 * target.float() + torch.randn(n, tags, generator=g))
    got = _compute(multilabel_metrics(tags, ""), probs, target)
    p, y = probs.double().numpy(), target.numpy()
    expected = {
        "auroc": skm.roc_auc_score(y, p, average="macro"),
        "pr_auc": skm.average_precision_score(y, p, average="macro"),
        "f1": skm.f1_score(y, p >= 0.5, average="macro"),
        "acc": float(np.mean([(y[:, t] == (p[:, t] >= 0.5)).mean() for t in range(tags)])),
    }
    assert got == pytest.approx(expected, abs=1e-5)
    assert 0.7 < got["auroc"] < 0.95


def test_module_logs_every_metric_per_chunk_and_track() -> None:
    """The LightningModule's test metrics equal scikit-learn's on its own chunk and track outputs."""
    cfg = compose(["model=cnn", "data.sample_rate=8000", "data.chunk_seconds=0.5"])
    classes = ["a", "b", "c"]
    model = GenreClassifier.from_config(cfg, classes)
    g = torch.Generator().manual_seed(0)
    waves = torch.randn(36, 4000, generator=g) * torch.linspace(0.1, 1.0, 36).unsqueeze(1)
    clips = torch.arange(36) // 3  # 12 tracks of 3 windows each
    labels = clips % 3
    loader = DataLoader(TensorDataset(waves, labels, clips), batch_size=8)
    trainer = pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                         enable_model_summary=False)
    logged = trainer.test(model, dataloaders=loader, verbose=False)[0]
    with torch.inference_mode():
        model.eval()
        probs = torch.cat([model(w).softmax(1) for w in waves.split(8)])
    track, track_y = track_probabilities(probs, labels, clips)
    for level, (p, y) in (("chunk", (probs, labels)), ("track", (track, track_y))):
        for name in SINGLE:
            assert f"test/{level}_{name}" in logged, (level, name)
        pn, yn = p.double().numpy(), y.numpy()
        pn = pn / pn.sum(1, keepdims=True)
        assert logged[f"test/{level}_acc"] == pytest.approx(skm.accuracy_score(yn, pn.argmax(1)), abs=1e-6)
        assert logged[f"test/{level}_balanced_acc"] == pytest.approx(skm.balanced_accuracy_score(yn, pn.argmax(1)), abs=1e-6)
        assert logged[f"test/{level}_auroc"] == pytest.approx(
            skm.roc_auc_score(yn, pn, multi_class="ovr", average="macro"), abs=1e-5)
        assert logged[f"test/{level}_log_loss"] == pytest.approx(skm.log_loss(yn, pn, labels=range(3)), abs=1e-5)
