"""The evaluation metrics genre-recognition papers report, built from torchmetrics.

`classification_metrics` (single-label, softmax probabilities) gives, under `<prefix><name>`:

- `acc`: accuracy; `balanced_acc`: balanced accuracy (macro recall); `f1`: macro-F1;
- `auroc`, `pr_auc`: macro one-vs-rest ROC-AUC and average precision;
- `top2_acc`: a hit when the true class is among the two most probable;
- `log_loss`: mean negative log-probability of the true class; `ece`: expected calibration
  error (15 equal-width confidence bins, L1).

`multilabel_metrics` (independent sigmoid probabilities, multi-hot targets) gives macro
`auroc` and `pr_auc` (average precision), and `acc` / `f1` at a 0.5 threshold (`acc` is the
per-tag accuracy, macro over tags), so the monitored names stay the same for both tasks.

Every metric is fed all evaluation outputs at once (the LightningModule gathers them across
DDP ranks itself), so none of them synchronises across processes on its own.
"""

from __future__ import annotations

import torch
from torchmetrics import Metric, MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassAUROC,
    MulticlassAveragePrecision,
    MulticlassCalibrationError,
    MulticlassF1Score,
    MulticlassRecall,
    MultilabelAccuracy,
    MultilabelAUROC,
    MultilabelAveragePrecision,
    MultilabelF1Score,
)

#: Evaluation metrics are fed the outputs of every rank, gathered: torchmetrics' own cross-rank
#: sync would count each of them once per rank again.
LOCAL = {"sync_on_compute": False}
#: Confidence bins of the expected calibration error (Guo et al. 2017 use 15).
ECE_BINS = 15
#: Probability floor of the log loss: a confidently wrong prediction costs -log(1e-7) = 16.1
#: nats instead of infinity (float32 softmax outputs reach exact zeros).
LOG_LOSS_FLOOR = 1e-7


class LogLoss(Metric):
    """Mean negative log-probability of the true class, from probabilities (not logits):
    track predictions are averaged probabilities, which have no logits."""

    full_state_update = False
    higher_is_better = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("total", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, probs: torch.Tensor, target: torch.Tensor) -> None:
        picked = probs.gather(1, target.long().unsqueeze(1)).squeeze(1)
        self.total += -picked.double().clamp_min(LOG_LOSS_FLOOR).log().sum()
        self.count += target.numel()

    def compute(self) -> torch.Tensor:
        return (self.total / self.count.clamp_min(1)).float()


def classification_metrics(n: int, prefix: str) -> MetricCollection:
    """Single-label metrics over `n` classes, fed (probabilities, class indices)."""
    if n < 2:
        raise ValueError(f"classification metrics need at least 2 classes, got {n}")
    return MetricCollection(
        {
            "acc": MulticlassAccuracy(n, average="micro", **LOCAL),
            "balanced_acc": MulticlassRecall(n, average="macro", **LOCAL),
            "f1": MulticlassF1Score(n, average="macro", **LOCAL),
            "auroc": MulticlassAUROC(n, average="macro", **LOCAL),
            "pr_auc": MulticlassAveragePrecision(n, average="macro", **LOCAL),
            "top2_acc": MulticlassAccuracy(n, top_k=2, average="micro", **LOCAL),
            "log_loss": LogLoss(**LOCAL),
            "ece": MulticlassCalibrationError(n, n_bins=ECE_BINS, norm="l1", **LOCAL),
        },
        # Each metric keeps its own state: evaluation runs once per epoch, so sharing saves nothing.
        compute_groups=False,
        prefix=prefix,
    )


def multilabel_metrics(n: int, prefix: str) -> MetricCollection:
    """Multi-label metrics over `n` tags, fed (independent probabilities, multi-hot targets)."""
    return MetricCollection(
        {
            "acc": MultilabelAccuracy(n, average="macro", **LOCAL),
            "f1": MultilabelF1Score(n, average="macro", **LOCAL),
            "auroc": MultilabelAUROC(n, average="macro", **LOCAL),
            "pr_auc": MultilabelAveragePrecision(n, average="macro", **LOCAL),
        },
        compute_groups=False,
        prefix=prefix,
    )
