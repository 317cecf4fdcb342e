"""The benchmarks run end to end in quick mode and land in MLflow (no timing thresholds)."""

from __future__ import annotations

import pytest
from mlflow import MlflowClient

from genre_lab.bench.__main__ import main
from genre_lab.bench.common import EXPERIMENT


@pytest.mark.slow
def test_quick_bench_logs_every_suite(mlflow_uri: str, capsys: pytest.CaptureFixture) -> None:
    assert main(["--quick"]) == 0
    printed = capsys.readouterr().out
    assert "bench features" in printed and "bench tag" in printed

    client = MlflowClient(mlflow_uri)
    exp = client.get_experiment_by_name(EXPERIMENT)
    runs = {r.data.tags["suite"]: r for r in client.search_runs([exp.experiment_id])}
    assert set(runs) == {"features", "train", "tag"}
    for run in runs.values():
        assert run.info.status == "FINISHED"
        for tag in ("device", "torch", "torchaudio", "nnAudio", "threads"):
            assert run.data.tags[tag]
        assert any("_speedup_vs_" in k for k in run.data.metrics)
        assert all(v > 0 for k, v in run.data.metrics.items() if "_speedup_vs_" in k)

    feats = runs["features"].data.metrics
    # Every kind with its backends, and the librosa baseline each is compared with.
    for name in ("librosa_logmel", "torchaudio_logmel_cpu_b2", "nnaudio_logmel_cpu_b2", "nnaudio_cqt_cpu_b2"):
        assert feats[name] > 0, name
    assert "torchaudio_logmel_cpu_b2_speedup_vs_librosa_logmel" in feats
    # The numerical check against librosa: same log-mel within 0.01 dB.
    assert feats["torchaudio_logmel_cpu_b2.max_abs_db"] < 0.01
    train = runs["train"].data.metrics
    assert 0 <= train["train_crnn.data_wait_share"] <= 1
    assert "train_crnn_folder_cached_speedup_vs_loader_only_folder_cached" in train
    tag = runs["tag"].data.metrics
    assert "tag_overlap_speedup_vs_decode_1proc" in tag
    arts = {a.path for a in client.list_artifacts(runs["tag"].info.run_id)}
    assert "bench_tag.json" in arts


def test_unknown_suite_is_rejected(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as err:
        main(["speed"])
    assert err.value.code == 2
    assert "unknown suite" in capsys.readouterr().err
