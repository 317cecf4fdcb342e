"""The track-level report of one tested split, logged to its run: the confusion matrix as a
figure and as JSON, and the per-class report. Training logs it for `test`, the evaluate
command for the split it evaluated."""

from __future__ import annotations

from typing import Any

from mlflow import MlflowClient

from genre_lab.tracking.mlflow_runs import log_json


def log_test_report(client: MlflowClient, run_id: str, model: Any, prefix: str = "test") -> None:
    """Track-level confusion matrix (PNG + JSON) and per-class report of a GenreClassifier
    after `trainer.test`, under `<prefix>/`. Shared by training and `genre_lab.cli.evaluate`."""
    if model.test_confusion is None:
        return
    from genre_lab.reporting.plots import confusion_matrix_figure, plt  # matplotlib only when there is a figure

    cm = model.test_confusion.numpy()
    fig = confusion_matrix_figure(cm, model.classes)
    client.log_figure(run_id, fig, f"{prefix}/confusion_matrix.png")
    plt.close(fig)  # long-lived processes (sweep workers) would otherwise keep every figure
    log_json(client, run_id, {"classes": model.classes, "matrix": cm.tolist()}, f"{prefix}/confusion_matrix.json")
    log_json(client, run_id, model.test_report, f"{prefix}/per_class_report.json")
