"""The benchmarks run end to end in quick mode and land in MLflow (no timing thresholds)."""

from __future__ import annotations

import pytest
from mlflow import MlflowClient

import torch

from genre_lab.bench.__main__ import main
from genre_lab.bench.command import TOLERANCE, compare
from genre_lab.bench.common import EXPERIMENT
from genre_lab.bench.gpu import SKIP_MESSAGE
from genre_lab.machine import cores


@pytest.mark.slow
def test_quick_bench_logs_every_suite(mlflow_uri: str, capsys: pytest.CaptureFixture) -> None:
    assert main(["--quick"]) == 0
    printed = capsys.readouterr().out
    assert "bench features" in printed and "bench tag" in printed

    client = MlflowClient(mlflow_uri)
    exp = client.get_experiment_by_name(EXPERIMENT)
    runs = {r.data.tags["suite"]: r for r in client.search_runs([exp.experiment_id])}
    assert set(runs) == {"features", "train", "tag"}  # `gpu` runs only when named
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
    assert "train_crnn_folder_w0_speedup_vs_loader_only_folder_cached" in train
    # Folder clips: every model with DataLoader workers 0 and 2 (quick mode).
    for name in ("cnn", "rnn", "crnn"):
        for workers in (0, 2):
            assert 0 <= train[f"train_{name}_folder_w{workers}.data_wait_share"] <= 1
    tag = runs["tag"].data.metrics
    limit = f"decode_{cores()}proc"
    for contender in ("decode_1proc", "tag_overlap", "tag_processes", "predict_command",
                      "predict_command_processes"):
        assert tag[f"{contender}_speedup_vs_{limit}"] > 0, contender
    # The command (both paths) tags like the model as trained, within tolerance.
    for contender in ("predict_command", "predict_command_processes"):
        assert tag[f"{contender}.within_tolerance"] == 1.0
        assert tag[f"{contender}.max_prob_diff"] <= TOLERANCE
    assert tag["ensemble3_speedup_vs_members_one_by_one"] > 0
    # The serving load test ran against a real server and stopped by itself.
    assert tag["mlflow_serve_4clients_speedup_vs_in_process_tagger"] > 0
    assert tag["mlflow_serve_4clients.p95_latency_s"] > 0
    arts = {a.path for a in client.list_artifacts(runs["tag"].info.run_id)}
    assert "bench_tag.json" in arts


def test_gpu_bench_quick_on_cpu_skips_cuda_and_logs(mlflow_uri: str, capsys: pytest.CaptureFixture) -> None:
    if torch.cuda.is_available():
        pytest.skip("this checks the CPU-only behaviour")
    assert main(["gpu", "--quick"]) == 0
    printed = capsys.readouterr().out
    assert SKIP_MESSAGE in printed.replace("\n", " ") or "no CUDA device" in printed
    assert "| measured on" in printed  # the README table
    client = MlflowClient(mlflow_uri)
    (run,) = client.search_runs([client.get_experiment_by_name(EXPERIMENT).experiment_id])
    assert run.data.tags["suite"] == "gpu" and run.data.tags["cuda"] == "False" and run.data.tags["device"]
    metrics = run.data.metrics
    assert metrics["librosa_logmel"] > 0 and metrics["nnaudio_logmel_cpu_b2_speedup_vs_librosa_logmel"] > 0
    assert not any("cuda" in k for k in metrics)


def test_compare_flags_a_changed_top1_and_a_large_difference() -> None:
    def row(probs: dict[str, float], error: str | None = None) -> dict:
        genres = [{"label": k, "probability": v} for k, v in sorted(probs.items(), key=lambda kv: -kv[1])]
        return {"path": "a.ogg", "genres": genres if not error else [], "error": error}

    ref = [row({"rock": 0.6, "jazz": 0.4})]
    assert compare(ref, [row({"rock": 0.59, "jazz": 0.41})])["within_tolerance"] == 1.0
    moved = compare(ref, [row({"rock": 0.45, "jazz": 0.55})])
    assert moved["files_top1_changed"] == 1 and moved["within_tolerance"] == 0.0
    assert compare(ref, [row({"rock": 0.57, "jazz": 0.43})])["max_prob_diff"] > TOLERANCE
    assert compare(ref, [row({}, error="boom")])["files_top1_changed"] == 1


def test_unknown_suite_is_rejected(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as err:
        main(["speed"])
    assert err.value.code == 2
    assert "unknown suite" in capsys.readouterr().err


def test_musicnn_contender_names_a_missing_side_python(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    from genre_lab.bench import musicnn_reference as musicnn

    monkeypatch.delenv(musicnn.ENV, raising=False)
    assert musicnn.tf_python() is None  # no side environment: `bench tag` leaves the contender out
    monkeypatch.setenv(musicnn.ENV, str(tmp_path / "nope" / "python"))
    with pytest.raises(musicnn.SideEnvError, match="nope/python: no such file"):
        musicnn.run([tmp_path / "song.wav"], musicnn.tf_python())


@pytest.mark.slow
def test_zoo_bench_quick_times_each_model_against_the_cnn(mlflow_uri: str) -> None:
    assert main(["zoo", "--quick"]) == 0
    client = MlflowClient(mlflow_uri)
    (run,) = client.search_runs([client.get_experiment_by_name(EXPERIMENT).experiment_id])
    metrics = run.data.metrics
    assert run.data.tags["suite"] == "zoo"
    for name in ("fcn", "samplecnn"):
        assert metrics[f"train_{name}_speedup_vs_train_cnn"] > 0 and metrics[f"tag_{name}_speedup_vs_tag_cnn"] > 0
        assert 0 <= metrics[f"train_{name}.data_wait_share"] <= 1
