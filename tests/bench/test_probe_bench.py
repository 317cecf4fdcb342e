"""`python -m genre_lab.bench probe --quick`: the K-fold probe of pretrained musicnn timed with
empty caches and from the cache, and its test accuracy per layer, logged to MLflow (no timing
threshold)."""

from __future__ import annotations

import pytest
from mlflow import MlflowClient

from genre_lab.bench.__main__ import main
from genre_lab.bench.common import EXPERIMENT


@pytest.mark.slow
def test_probe_bench_times_the_cached_probe_and_scores_each_layer(mlflow_uri: str) -> None:
    assert main(["probe", "--quick"]) == 0
    client = MlflowClient(mlflow_uri)
    (run,) = client.search_runs([client.get_experiment_by_name(EXPERIMENT).experiment_id])
    metrics = run.data.metrics
    assert run.data.tags["suite"] == "probe" and run.info.status == "FINISHED"
    for layer, dim in (("midend", 3 * 1506), ("taggram", 3 * 50)):
        assert metrics[f"time_{layer}_first.seconds"] > 0 and metrics[f"time_{layer}_cached.seconds"] > 0
        assert metrics[f"time_{layer}_first.embedded_tracks"] == 30  # each clip embedded once for all folds
        assert metrics[f"time_{layer}_cached.cached_tracks"] == 3 * 30  # every fold's tracks from the cache
        assert f"time_{layer}_cached_speedup_vs_time_{layer}_first" in metrics
        assert 0.0 <= metrics[f"msd_{layer}"] <= 100.0 and metrics[f"msd_{layer}.dim"] == dim
    assert "msd_taggram_speedup_vs_msd_penultimate" not in metrics  # its baseline was not probed in quick mode
