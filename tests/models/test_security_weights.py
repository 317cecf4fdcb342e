"""Model files are bounded data: a spec's sizes are checked before anything is allocated, and a
weight that is NaN or infinite is refused on every load (evaluate, `train init_from=`,
`ensemble --from-experiment`, ensemble files, `train resume=`, predict and serving), each with
one line naming the file and the setting or tensor, and nothing logged as a working model."""

from __future__ import annotations

import inspect
import json
import resource
import time
from pathlib import Path

import pytest
import torch
import yaml
from mlflow import MlflowClient

from genre_lab.models import bounds
from genre_lab.models import model_file as checkpoint
from genre_lab.config import compose
from genre_lab.cli.ensemble import main as ensemble_main
from genre_lab.inference.evaluation import evaluate
from genre_lab.inference import Tagger
from genre_lab.models.ensemble import EnsembleClassifier
from genre_lab.models.loading import ModelSourceError, load_model
from genre_lab.training.lightning_module import GenreClassifier
from genre_lab.models.network import GenreNet
from genre_lab.cli.predict import main as predict_main
from genre_lab.registry import BACKBONES, FRONTENDS, ConfigSecurityError
from genre_lab.training.fit import fit_and_test
from tests.conftest import TINY, write_tone

CLASSES = ["blues", "rock"]
SECRET = "hunter2-weights-secret"
#: The tensor every damaged checkpoint here breaks: one value of a mid-network conv.
DAMAGED = "backbone.blocks.1.0.weight"


@pytest.fixture(scope="module")
def good() -> tuple[dict, dict]:
    """(spec dict, state dict) of a real, untrained CNN built from the shipped configs."""
    model = GenreClassifier.from_config(compose([*TINY, "model=cnn"]), CLASSES)
    return model.config, model.net.state_dict()  # a model file's layout


@pytest.fixture()
def store(tmp_path: Path, mlflow_uri: str, monkeypatch: pytest.MonkeyPatch) -> MlflowClient:
    """The sqlite store every command writes to, with a secret in the environment that must
    never reach it and a private model cache."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("SECRET_TOKEN", SECRET)
    monkeypatch.setenv("COLUMNS", "1000")  # one line per message: rich would wrap long paths
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # as predict sets it
    return MlflowClient(mlflow_uri)


def _damaged(state: dict, value: float = float("nan")) -> dict:
    """The state dict with one value of one tensor replaced: the smallest damage there is."""
    broken = {k: v.clone() for k, v in state.items()}
    broken[DAMAGED].view(-1)[7] = value
    return broken


def _save(path: Path, spec: dict, state: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": state, checkpoint.CONFIG_KEY: spec}, path)
    return path


def _runs(client: MlflowClient) -> list:
    return client.search_runs([e.experiment_id for e in client.search_experiments()])


def _assert_clean(client: MlflowClient, canary: Path) -> None:
    """No canary file, no secret anywhere in a param or tag, and no model logged by a run."""
    assert not canary.exists()
    for run in _runs(client):
        assert not any(SECRET in str(v) for v in (*run.data.params.values(), *run.data.tags.values()))
        assert not any(a.path == "model" for a in client.list_artifacts(run.info.run_id)), run.info.run_id


def _one_line(err: str, *fragments: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def _trained_run(client: MlflowClient, experiment: str, spec: dict, state: dict, tmp_path: Path, score: float) -> str:
    """A FINISHED training run as the store holds one: `checkpoints/best.ckpt`, its metric and
    a `config.yaml` naming a (tiny synthetic) dataset."""
    exp = client.get_experiment_by_name(experiment)
    run_id = client.create_run(exp.experiment_id if exp else client.create_experiment(experiment)).info.run_id
    ckpt = _save(tmp_path / run_id / "best.ckpt", spec, state)
    client.log_artifact(run_id, str(ckpt), "checkpoints")
    client.log_metric(run_id, "val/track_acc", score)
    data = {"_target_": "genre_lab.data.GenreDataModule", "sample_rate": 16000, "chunk_seconds": 2.0,
            "source": {"_target_": "genre_lab.data.SyntheticSource", "clips_per_class": {"train": 2, "val": 2, "test": 2},
                       "clip_seconds": 2.0}}
    client.log_text(run_id, yaml.safe_dump({"data": data}), "config.yaml")
    client.set_terminated(run_id)
    return run_id


# -- NaN weights -----------------------------------------------------------------------------

def test_evaluate_refuses_a_run_with_a_nan_weight(good, store: MlflowClient, tmp_path: Path) -> None:
    spec, state = good
    run_id = _trained_run(store, "damaged", spec, _damaged(state), tmp_path, 0.9)
    cfg = compose([f"run={run_id}", f"tracking_uri={store.tracking_uri}", "progress=false"], config_name="evaluate")
    with pytest.raises(ModelSourceError) as err:
        evaluate(cfg)
    _one_line(str(err.value), "best.ckpt", f"weight '{DAMAGED}' holds NaN or infinite values")
    # No evaluation run at all, let alone a FINISHED one with chance metrics.
    assert [r.info.run_id for r in _runs(store)] == [run_id]
    _assert_clean(store, tmp_path / "canary")


def test_train_init_from_a_nan_checkpoint_fails_before_training(good, store: MlflowClient, tmp_path: Path) -> None:
    spec, state = good
    parent = _save(tmp_path / "parent.ckpt", spec, _damaged(state, float("inf")))
    cfg = compose([*TINY, "model=cnn", f"init_from={parent}", f"paths.root_dir={tmp_path}"], output_dir=tmp_path / "out")
    with pytest.raises(ValueError) as err:
        fit_and_test(cfg)
    _one_line(str(err.value), str(parent), f"weight '{DAMAGED}'")
    assert _runs(store) == []  # refused before any run (and so before any logged model) exists
    _assert_clean(store, tmp_path / "canary")


def test_ensemble_from_experiment_refuses_a_damaged_run(good, store: MlflowClient, tmp_path: Path, capsys) -> None:
    spec, state = good
    ok = [_trained_run(store, "members", spec, state, tmp_path, score) for score in (0.7, 0.6)]
    bad = _trained_run(store, "members", spec, _damaged(state), tmp_path, 0.8)  # the best-ranked one
    assert ensemble_main(["--from-experiment", "members", "--top", "3", "--tracking-uri", store.tracking_uri]) == 2
    _one_line(capsys.readouterr().err, f"ensemble member '{bad}'", f"weight '{DAMAGED}' holds NaN")
    assert sorted(r.info.run_id for r in _runs(store)) == sorted([*ok, bad])  # no ensemble run
    _assert_clean(store, tmp_path / "canary")
    # The same members without the damaged one form an ensemble file; damaging a member inside
    # that file is refused by predict, naming the member and the file.
    members = [load_model(_save(tmp_path / f"m{i}.ckpt", spec, state)).network for i in range(2)]
    path = tmp_path / "ensemble.ckpt"
    EnsembleClassifier(members).save(path)
    saved = torch.load(path, weights_only=True)
    member = saved["genre_lab_ensemble"]["members"][1]
    member["state_dict"] = _damaged(member["state_dict"])
    torch.save(saved, path)
    song = write_tone(tmp_path / "song.wav", seconds=3.0, sr=16000)
    out = tmp_path / "tags.json"
    assert predict_main([str(path), str(song), "--no-progress", "--format", "json", "--output", str(out)]) == 2
    _one_line(capsys.readouterr().err, f"member 1 of ensemble {path}", f"weight '{DAMAGED}'")
    assert not out.exists()


def test_predict_and_serving_refuse_nan_weights_and_load_the_intact_file(good, tmp_path: Path, capsys,
                                                                        monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "1000")
    spec, state = good
    song = write_tone(tmp_path / "song.wav", seconds=3.0, sr=16000)
    for name, value in (("nan", float("nan")), ("inf", float("inf")), ("-inf", float("-inf"))):
        path = _save(tmp_path / f"{name}.ckpt", spec, _damaged(state, value))
        out = tmp_path / f"{name}.json"
        assert predict_main([str(path), str(song), "--no-progress", "--format", "json", "--output", str(out)]) == 2
        _one_line(capsys.readouterr().err, str(path), f"weight '{DAMAGED}'")
        assert not out.exists()
        with pytest.raises(ModelSourceError, match=f"{path}: weight '{DAMAGED}'"):
            Tagger.load(path)  # what the served pyfunc model loads its weights with
    intact = _save(tmp_path / "intact.ckpt", spec, state)
    out = tmp_path / "intact.json"
    assert predict_main([str(intact), str(song), "--no-progress", "--format", "json", "--output", str(out)]) == 0
    assert json.loads(out.read_text())[0]["error"] is None


def test_resume_refuses_a_nan_last_checkpoint(store: MlflowClient, tmp_path: Path) -> None:
    """`train resume=<run>` of a crashed run whose `last.ckpt` holds a NaN weight: Lightning's
    load goes through the same check, the run ends FAILED with the file and tensor named."""
    from tests.training.test_resume import _crash_at_start

    run_id, _ = _crash_at_start(tmp_path)
    model = GenreClassifier.from_config(compose([*TINY, "model=cnn"]), CLASSES)
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    last.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": _damaged(model.net.state_dict()), "epoch": 0, "global_step": 1,
                checkpoint.CONFIG_KEY: model.config}, last)
    cli = [f"resume={run_id}"]
    with pytest.raises(RuntimeError) as err:
        fit_and_test(compose(cli, output_dir=tmp_path / "new"), overrides=cli)
    _one_line(str(err.value), str(last), f"weight '{DAMAGED}' holds NaN")
    run = store.get_run(run_id)  # taken over by the resume, then closed with the reason
    assert run.info.status == "FAILED" and "holds NaN" in run.data.tags["error"]
    assert run.data.tags["genre_lab.resumes"] == "1"
    _assert_clean(store, tmp_path / "canary")


# -- bounded sizes ---------------------------------------------------------------------------

def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _frontend(spec: dict, **settings: object) -> dict:
    return {**spec, "features": {**spec["features"], "frontend": {**spec["features"]["frontend"], **settings}}}


def _backbone(spec: dict, node: dict) -> dict:
    return {**spec, "model": {**spec["model"], "backbone": node}}


def test_out_of_range_sizes_are_refused_by_predict_before_any_allocation(good, tmp_path: Path, capsys,
                                                                        monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "1000")
    spec, state = good
    crnn = {"_target_": "genre_lab.models.CRNN", "channels": [1024, 1024], "hidden": 2048, "layers": 8}
    cases = {
        "channels": (_backbone(spec, {**spec["model"]["backbone"], "channels": [40000, 40000]}),
                     "model.backbone.channels=[40000, 40000] must be a list of 1 to 8 entries"),
        "blocks": (_backbone(spec, {**spec["model"]["backbone"], "channels": [16] * 1000}), "model.backbone.channels="),
        "n_fft": (_frontend(spec, n_fft=2**26), f"features.frontend.n_fft={2**26} must be a whole number in [16, 8192]"),
        "n_fft_text": (_frontend(spec, n_fft="1024"), "features.frontend.n_fft='1024' must be a whole number"),
        "n_mels": (_frontend(spec, n_mels=10**6), "features.frontend.n_mels=1000000"),
        "hop": (_frontend(spec, hop_length=0), "features.frontend.hop_length=0"),
        "cqt_floor": (_frontend(spec, kind="cqt", backend="nnaudio", cqt_fmin=0.001), "features.frontend.cqt_fmin=0.001"),
        "sample_rate": ({**_frontend(spec, sample_rate=10**9), "data": {**spec["data"], "sample_rate": 10**9}},
                        "data.sample_rate=1000000000 must be a number in [1000, 384000]"),
        "rnn_hidden": (_backbone(spec, {"_target_": "genre_lab.models.RNN", "hidden": 10**7}),
                       "model.backbone.hidden=10000000 must be a whole number in [1, 2048]"),
        "rnn_layers": (_backbone(spec, {"_target_": "genre_lab.models.RNN", "layers": 10**5}), "model.backbone.layers="),
        "musicnn": (_backbone(spec, {"_target_": "genre_lab.models.MusiCNN", "embed_dim": 10**8}),
                    "model.backbone.embed_dim="),
        "classes": ({**spec, "classes": [f"c{i}" for i in range(bounds.MAX_CLASSES + 1)]}, "classes must be"),
        # Each size in range, their product not: the total is estimated before building.
        "product": (_backbone(_frontend(spec, kind="stft", n_fft=8192), crnn), "together would hold"),
        "cqt_kernels": (_frontend(spec, kind="cqt", backend="nnaudio", cqt_fmin=1.0, cqt_bins=1024, bins_per_octave=96),
                        "together would hold"),
        "window": ({**_frontend(spec, sample_rate=96000),
                    "data": {**spec["data"], "sample_rate": 96000, "chunk_seconds": 600.0}}, "samples per window"),
        "frames": ({**_frontend(spec, hop_length=16, n_mels=512), "data": {**spec["data"], "chunk_seconds": 600.0}},
                   "spectrogram cells per window"),
    }
    song = write_tone(tmp_path / "song.wav", seconds=3.0, sr=16000)
    before = _peak_rss_mib()
    for name, (crafted, reason) in cases.items():
        path = _save(tmp_path / f"{name}.ckpt", crafted, state)
        out = tmp_path / f"{name}.json"
        started = time.monotonic()
        assert predict_main([str(path), str(song), "--no-progress", "--format", "json", "--output", str(out)]) == 2, name
        _one_line(capsys.readouterr().err, str(path), reason)
        assert time.monotonic() - started < 5, name
        assert not out.exists(), name
    # Refused from the numbers alone: not one of those buffers was allocated.
    assert _peak_rss_mib() - before < 256


def test_shared_references_in_a_spec_fail_fast_in_predict(good, tmp_path: Path, capsys, monkeypatch) -> None:
    """A spec list repeated by reference 25 levels deep: 2**25 leaves from a file of a few KB
    (torch.save keeps the sharing); expanding it used to hang predict."""
    monkeypatch.setenv("COLUMNS", "1000")
    spec, state = good
    bomb: list = ["x"]
    for _ in range(25):
        bomb = [bomb, bomb]
    crafted = {**spec, "features": {**spec["features"], "bomb": bomb}}
    path = _save(tmp_path / "bomb.ckpt", crafted, state)
    song = write_tone(tmp_path / "song.wav", seconds=3.0, sr=16000)
    started = time.monotonic()
    assert predict_main([str(path), str(song), "--no-progress"]) == 2
    assert time.monotonic() - started < 5
    _one_line(capsys.readouterr().err, str(path), "features.bomb", "shared reference")


def test_every_shipped_and_swept_model_is_in_range_and_estimated_exactly(tmp_path: Path, monkeypatch) -> None:
    """The bounds admit every shipped model, sweep extreme and pretrained network, and the
    estimate of what a model holds is its true count of parameters and buffers."""
    combos = [[m, f] for m in ("model=cnn", "model=crnn", "model=rnn")
              for f in ("features=logmel", "features=mfcc", "features=stft", "features=cqt")]
    combos += [["model=musicnn"], ["model=rnn", "model.backbone.cell=lstm", "model.backbone.layers=3",
                                   "model.backbone.hidden=128"], ["model=crnn", "model.backbone.hidden=128"],
               ["model=crnn", "features.frontend.trainable=true"], ["model=cnn", "features.frontend.backend=torchaudio"],
               ["model=cnn", "data.sample_rate=8000", "data.chunk_seconds=0.5"]]
    for overrides in combos:
        model = GenreClassifier.from_config(compose([*TINY, *overrides]), [f"g{i}" for i in range(10)])
        spec = model.spec  # validated, bounds included
        front = bounds._settings(spec.features["frontend"], FRONTENDS, "features.frontend")
        bins, front_values = bounds._frontend(spec.features["frontend"]["_target_"], front, spec.sample_rate)
        back = bounds._settings(spec.model["backbone"], BACKBONES, "model.backbone")
        back_values, out_dim = bounds._backbone(spec.model["backbone"]["_target_"], back, bins)
        held = sum(t.numel() for t in (*model.parameters(), *model.buffers()))
        assert front_values + back_values + out_dim * 10 + 10 == held, overrides
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    for ref in ("pretrained:musicnn-msd", "pretrained:musicnn-mtt"):
        assert GenreNet.from_spec(checkpoint.read(_pretrained_file(ref))[0]).classes
    # Every bounded setting's own default is inside its range.
    for target, sizes in bounds.SIZES.items():
        params = inspect.signature({**FRONTENDS, **BACKBONES}[target]).parameters
        for key, size in sizes.items():
            bounds._check_size(params[key].default, size, f"{target}.{key}")
    with pytest.raises(ConfigSecurityError, match=r"model.backbone.hidden=4096 must be a whole number in \[1, 2048\]"):
        GenreClassifier.from_config(compose([*TINY, "model=rnn", "model.backbone.hidden=4096"]), CLASSES)


def _pretrained_file(ref: str) -> Path:
    from genre_lab.models.loading import resolve

    return resolve(ref).checkpoint
