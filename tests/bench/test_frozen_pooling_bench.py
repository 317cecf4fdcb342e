"""`python -m genre_lab.bench frozen --quick`: a frozen backbone's epochs recomputed and cached,
both measured in one run and logged to MLflow with their ratio (no timing threshold);
`bench pooling --quick`: every pooling with and without shifted windows, scored."""

from __future__ import annotations

from mlflow import MlflowClient

from genre_lab.bench.__main__ import main
from genre_lab.bench.common import EXPERIMENT


def test_frozen_bench_logs_both_contenders_and_their_ratio(mlflow_uri: str) -> None:
    assert main(["frozen", "--quick"]) == 0
    client = MlflowClient(mlflow_uri)
    (run,) = client.search_runs([client.get_experiment_by_name(EXPERIMENT).experiment_id])
    metrics = run.data.metrics
    assert run.data.tags["suite"] == "frozen" and run.info.status == "FINISHED"
    assert metrics["frozen_cnn_cached_speedup_vs_frozen_cnn_recompute"] > 0
    for name in ("frozen_cnn_recompute", "frozen_cnn_cached"):
        assert metrics[name] > 0 and metrics[f"{name}.first_epoch_s"] > 0


def test_pooling_bench_scores_every_pooling_and_shift(mlflow_uri: str) -> None:
    assert main(["pooling", "--quick"]) == 0
    client = MlflowClient(mlflow_uri)
    (run,) = client.search_runs([client.get_experiment_by_name(EXPERIMENT).experiment_id])
    metrics = run.data.metrics
    for pooling in ("mean", "max", "logmean"):
        for shifts in (1, 2):
            name = f"{pooling}_tta{shifts}"
            assert 0.0 <= metrics[name] <= 1.0 and metrics[f"{name}.log_loss"] > 0, name
    assert "max_tta2_speedup_vs_mean_tta1" in metrics
