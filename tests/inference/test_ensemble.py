"""Ensembles: three real training runs (two architectures, two sample rates) combined from
their experiment, evaluated next to each member in one run, used by predict and the Tagger,
and served by a real `mlflow models serve`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests
import soundfile as sf
import torch
from mlflow import MlflowClient

from genre_lab.models.model_file import ENSEMBLE_KEY
from genre_lab.config import compose
from genre_lab.data.synthetic import render_clip
from genre_lab.cli.ensemble import main as ensemble_main
from genre_lab.inference.evaluation import evaluate
from genre_lab.inference import Tagger
from genre_lab.models.ensemble import EnsembleClassifier, EnsembleError
from genre_lab.models.loading import ModelSourceError, load_model
from genre_lab.training.lightning_module import GenreClassifier
from genre_lab.models.network import GenreNet
from genre_lab.cli.predict import main as predict_main
from genre_lab.tracking.servers import free_port, stop_session, wait_ready
from genre_lab.training.transfer import initialise_from
from tests.conftest import TINY
from tests.training_procs import train_in_own_store
from tests.serving.test_serving import _wav_base64

MEMBERS = (["model=cnn"], ["model=crnn"], ["model=cnn", "data.sample_rate=22050", "seed=7"])


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[str], Path]:
    root = tmp_path_factory.mktemp("ensemble")
    ids = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(root / "cache"))
        for i, extra in enumerate(MEMBERS):
            result, uri = train_in_own_store(root, [*extra, "trainer.max_epochs=4", "throughput_seconds=0",
                                                    "logger.mlflow.experiment_name=members"], f"out{i}")
            ids.append(result.run_id)
    return uri, ids, root


@pytest.fixture(scope="module")
def ensemble_run(runs) -> str:
    uri, ids, root = runs
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(root / "cache"))
        assert ensemble_main(["--from-experiment", "members", "--top", "3", "--weights", "val",
                              "--tracking-uri", uri]) == 0
    client = MlflowClient(uri)
    (run,) = [r for r in client.search_runs([client.get_experiment_by_name("members").experiment_id])
              if r.data.tags.get("run_type") == "ensemble"]
    return run.info.run_id


def _run_names(uri: str, ids: list[str]) -> dict[str, str]:
    """run id -> its MLflow run name (`<model>-<features>-<dataset>-s<seed>`)."""
    client = MlflowClient(uri)
    return {i: client.get_run(i).info.run_name for i in ids}


@pytest.mark.slow
def test_ensemble_run_records_members_and_lineage(runs, ensemble_run: str) -> None:
    uri, ids, _ = runs
    names = _run_names(uri, ids)
    assert sorted(names.values()) == ["cnn-logmel-synthetic-s42", "cnn-logmel-synthetic-s7",
                                      "crnn-logmel-synthetic-s42"]
    run = MlflowClient(uri).get_run(ensemble_run)
    assert run.info.status == "FINISHED"
    # Each member is a param named after its source run, holding the run id.
    members = {key.removeprefix("member."): value for key, value in run.data.params.items()
               if key.startswith("member.") and not key.endswith(".weight")}
    assert members == {name: run_id for run_id, name in names.items()}
    assert sorted(json.loads(run.data.tags["genre_lab.members"])) == sorted(ids)
    weights = [float(run.data.params[f"member.{name}.weight"]) for name in names.values()]
    assert sum(weights) == pytest.approx(1.0, abs=1e-5) and run.data.params["members"] == "3"
    artifacts = {a.path for a in MlflowClient(uri).list_artifacts(ensemble_run, "checkpoints")}
    assert "checkpoints/best.ckpt" in artifacts
    # The ensemble model itself knows its members by the same names.
    assert sorted(Tagger.load(ensemble_run, tracking_uri=uri).model.sources) == sorted(names.values())


@pytest.mark.slow
def test_members_sharing_a_run_name_or_with_a_hostile_one_get_safe_unique_names(runs, tmp_path: Path,
                                                                                monkeypatch, capsys) -> None:
    """Run names are store data: a copy of a member under a hostile name (path segments, markup,
    spaces, far too long) is named by a bounded, metric-key-safe label; the same run twice is
    told apart. Members are given as `run=<id>`, the form every model-taking command accepts."""
    uri, ids, root = runs
    monkeypatch.setenv("XDG_CACHE_HOME", str(root / "cache"))
    client = MlflowClient(uri)
    experiment = client.get_run(ids[0]).info.experiment_id
    hostile = "../../[red]x[/red] <b>" + "y" * 300
    copy = client.create_run(experiment, run_name=hostile, tags={"run_type": "copy"}).info.run_id
    client.log_artifact(copy, client.download_artifacts(ids[0], "checkpoints/best.ckpt", str(tmp_path)), "checkpoints")
    client.set_terminated(copy)
    assert ensemble_main([f"run={ids[0]}", f"run={copy}", f"run={ids[0]}", "--experiment", "named",
                          "--tracking-uri", uri]) == 0
    (run,) = client.search_runs([client.get_experiment_by_name("named").experiment_id])
    first = client.get_run(ids[0]).info.run_name
    safe = "red_x_red_b_" + "y" * 48
    assert {k for k in run.data.params if k.startswith("member.")} == {
        f"member.{first}", f"member.{safe}", f"member.{first}-2",
        f"member.{first}.weight", f"member.{safe}.weight", f"member.{first}-2.weight"}
    assert run.data.params[f"member.{safe}"] == copy
    assert Tagger.load(run.info.run_id, tracking_uri=uri).model.sources == [first, safe, f"{first}-2"]
    assert f"ensemble of {first}, {safe}, {first}-2" in capsys.readouterr().out


@pytest.mark.slow
def test_ensemble_tags_songs_as_the_weighted_mean_of_its_members(runs, ensemble_run: str, tmp_path: Path,
                                                                 monkeypatch, capsys) -> None:
    uri, ids, root = runs
    monkeypatch.setenv("XDG_CACHE_HOME", str(root / "cache"))
    song = tmp_path / "song.wav"
    sf.write(song, render_clip("rock", seed=11, seconds=6.0, sample_rate=22050), 22050)
    ensemble = Tagger.load(ensemble_run, tracking_uri=uri)
    assert isinstance(ensemble.model, EnsembleClassifier) and ensemble.sample_rate == 22050
    weights = ensemble.model.weights.tolist()
    got = ensemble.tag(song).distribution
    expected = {c: 0.0 for c in got}
    for run_id, w in zip(ensemble.model.run_ids, weights):
        member = Tagger.load(run_id, tracking_uri=uri).tag(song).distribution
        for c, p in member.items():
            expected[c] += w * p
    # Members decode at their own rate with soxr here, inside the ensemble they are resampled
    # from the one 22.05 kHz decode by torchaudio: the two resamplers differ slightly.
    assert got == pytest.approx(expected, abs=0.02)
    out = tmp_path / "tags.json"
    assert predict_main([ensemble_run, str(song), "--tracking-uri", uri, "--format", "json", "--output", str(out),
                         "--no-progress"]) == 0
    (row,) = json.loads(out.read_text())
    assert row["error"] is None and row["genres"][0]["label"] == max(got, key=got.get)


@pytest.mark.slow
def test_evaluate_reports_ensemble_and_members_in_one_run(runs, ensemble_run: str, monkeypatch) -> None:
    uri, ids, root = runs
    monkeypatch.setenv("XDG_CACHE_HOME", str(root / "cache"))
    result = evaluate(compose([f"run={ensemble_run}", f"tracking_uri={uri}", "progress=false"], config_name="evaluate"))
    names = sorted(_run_names(uri, ids).values())
    # Each member's metrics are prefixed with its source run's name.
    for prefix in ("test", *(f"{name}/test" for name in names)):
        assert 0.0 <= result.metrics[f"{prefix}/track_acc"] <= 1.0
    # Ten easy synthetic genres: every member and the ensemble far above chance (0.1).
    assert result.metrics["test/track_acc"] >= 0.5
    logged = MlflowClient(uri).get_run(result.run_id).data.metrics
    assert {key.split("/")[0] for key in logged} == {"test", *names}
    for name in names:
        assert logged[f"{name}/test/track_f1"] == pytest.approx(result.metrics[f"{name}/test/track_f1"])


def test_members_must_share_their_classes(tmp_path: Path) -> None:
    cfg = compose([*TINY, "model=cnn"])
    a = GenreClassifier.from_config(cfg, ["blues", "rock"])
    b = GenreClassifier.from_config(cfg, ["rock", "blues"])  # same set, other order: aligned by name
    c = GenreClassifier.from_config(cfg, ["rock", "polka"])
    wave = torch.randn(2, 32000) * 0.1
    both = EnsembleClassifier([a.eval(), b.eval()]).eval()
    pa, pb = (m(wave).softmax(1) for m in (a.eval(), b.eval()))
    assert torch.allclose(both(wave).softmax(1), (pa + pb[:, [1, 0]]) / 2, atol=1e-5)
    with pytest.raises(EnsembleError, match=r"member1 has classes \['polka', 'rock'\].*\['blues', 'rock'\]"):
        EnsembleClassifier([a, c])
    with pytest.raises(EnsembleError, match=r"^blues-model has classes .* but rock_model has"):
        EnsembleClassifier([a, c], sources=["rock model", "blues-model"])
    assert ensemble_main([str(tmp_path / "missing.ckpt"), str(tmp_path / "other.ckpt")]) == 2


def test_an_ensemble_file_loads_like_a_model_but_not_where_one_network_is_needed(tmp_path: Path) -> None:
    """An ensemble file is one of the model files `load_model` takes; `init_from` and `embed`
    need one network and refuse it naming the setting; the member count is bounded before any
    member is built."""
    cfg = compose([*TINY, "model=cnn"])
    members = [GenreNet.from_spec(GenreClassifier.from_config(cfg, ["blues", "rock"]).spec).eval() for _ in range(2)]
    path = tmp_path / "ensemble.ckpt"
    original = EnsembleClassifier(members, [1, 3], ["a.ckpt", "b.ckpt"])
    original.save(path)
    loaded = load_model(path).network
    assert isinstance(loaded, EnsembleClassifier) and loaded.sources == ["a.ckpt", "b.ckpt"]
    assert loaded.weights.tolist() == pytest.approx([0.25, 0.75])
    wave = torch.randn(2, 32000) * 0.1
    with torch.inference_mode():
        assert torch.allclose(loaded(wave), original(wave), atol=1e-6)
    for setting in ("init_from", "embed"):
        with pytest.raises(ModelSourceError, match=f"is an ensemble; {setting} takes one of its members"):
            load_model(path, one_model_for=setting)
    with pytest.raises(ModelSourceError, match="is an ensemble; init_from takes one of its members"):
        initialise_from(GenreClassifier.from_config(cfg, ["blues", "rock"]), str(path))
    saved = torch.load(path, weights_only=True)
    saved[ENSEMBLE_KEY]["members"] *= 33
    torch.save(saved, path)
    with pytest.raises(ModelSourceError, match="an ensemble needs 2 to 64 members, got 66"):
        load_model(path)


@pytest.mark.slow
@pytest.mark.server
def test_served_ensemble_answers(runs, ensemble_run: str, tmp_path: Path) -> None:
    uri, _, root = runs
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "XDG_CACHE_HOME": str(root / "cache"),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "models", "serve", "-m", f"runs:/{ensemble_run}/model",
             "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)],
            cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_ready(proc, f"{url}/ping", log)
        song = render_clip("metal", seed=5, seconds=5.0, sample_rate=22050)
        response = requests.post(f"{url}/invocations", json={
            "dataframe_records": [{"audio_base64": _wav_base64(song, 22050)}], "params": {"top_k": 2}}, timeout=60)
        assert response.status_code == 200, response.text
        (row,) = response.json()["predictions"]
        assert row["error"] is None and len(row["genres"]) == 2
    finally:
        stop_session(proc)


def test_member_labels_are_safe_unique_metric_key_segments() -> None:
    from genre_lab.models.ensemble import MAX_LABEL_CHARS, member_labels

    long = "x" * 500
    labels = member_labels(["..", None, "a/b c", "a/b c", "a_b_c-2", long, long, "ok.v1"])
    assert labels[:5] == ["member0", "member1", "a_b_c", "a_b_c-2", "a_b_c-2-2"]
    assert labels[5] == "x" * MAX_LABEL_CHARS and labels[6] == "x" * (MAX_LABEL_CHARS - 2) + "-2"
    assert labels[7] == "ok.v1" and len(set(labels)) == len(labels)
