"""Models and configs are data: crafted checkpoints, run configs and MLflow model folders that
try to run code, write files, read secrets or escape their folder are refused with a clear error,
and the canary file each payload tries to create never appears.

Every attack here worked against the old loaders (prefix allowlist walked by attribute, run
configs resolved with `oc.env`, pyfunc artifact paths taken as given, downloads into a shared
`/tmp/genre_lab_models`)."""

from __future__ import annotations

import pickle
import stat
from pathlib import Path

import pytest
import torch
import yaml
from mlflow import MlflowClient

from genre_lab import registry
from genre_lab.models import model_file as checkpoint
from genre_lab.models import loading as model_loading
from genre_lab.config import compose
from genre_lab.inference.evaluation import evaluate
from genre_lab.inference import Tagger
from genre_lab.models.loading import ModelSourceError
from genre_lab.training.lightning_module import GenreClassifier
from genre_lab.cli.predict import main as predict_main
from tests.conftest import TINY, write_tone

CLASSES = ["blues", "rock"]


class _Payload:
    """Unpickling this creates `canary`: what a hostile pickle would do, made visible."""

    def __init__(self, canary: Path) -> None:
        self.canary = str(canary)

    def __reduce__(self):
        return (open, (self.canary, "w"))


@pytest.fixture()
def canary(tmp_path: Path) -> Path:
    return tmp_path / "canary"


@pytest.fixture()
def payload(tmp_path: Path, canary: Path) -> Path:
    path = tmp_path / "payload.pkl"
    path.write_bytes(pickle.dumps(_Payload(canary)))
    return path


@pytest.fixture(scope="module")
def good() -> tuple[dict, dict]:
    """(spec dict, state dict) of a real, untrained model built from the shipped configs."""
    cfg = compose([*TINY, "model=cnn"])
    model = GenreClassifier.from_config(cfg, CLASSES)
    return model.config, model.net.state_dict()  # a model file's layout


def _save(path: Path, spec: dict, state: dict) -> Path:
    torch.save({"state_dict": state, checkpoint.CONFIG_KEY: spec}, path)
    return path


def _with(spec: dict, group: str, key: str, node: object) -> dict:
    return {**spec, group: {**spec[group], key: node}}


def _attacks(spec: dict, payload: Path, canary: Path) -> dict[str, dict]:
    """Crafted specs: each names a callable that would run code or touch the file system."""
    return {
        # Attribute walk past the old "genre_lab.features." prefix check to torch.load.
        "attribute_walk_torch_load": _with(spec, "features", "frontend", {
            "_target_": "genre_lab.features.frontend.torch.load", "_args_": [str(payload)], "weights_only": False}),
        "torch_save": _with(spec, "model", "backbone", {
            "_target_": "genre_lab.models.cnn.torch.save", "_args_": [{"x": 1}, str(canary)]}),
        "os_system": _with(spec, "model", "backbone", {"_target_": "os.system", "_args_": [f"touch {canary}"]}),
        "builtins_exec": _with(spec, "model", "optimizer", {
            "_target_": "builtins.exec", "_args_": [f"open({str(canary)!r}, 'w')"]}),
        # A registered class, but with Hydra's positional-argument hook.
        "registered_with_args": _with(spec, "model", "backbone", {
            "_target_": "genre_lab.models.CNN", "_args_": [str(payload)]}),
        # A registered class hiding a hostile node one level down.
        "nested_target": _with(spec, "features", "augment", {"_target_": "builtins.exec", "_args_": ["1"]}),
    }


def test_crafted_checkpoints_are_refused_and_run_nothing(good, payload: Path, canary: Path, tmp_path: Path, capsys,
                                                         monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "1000")  # one line per message: rich would wrap long paths
    spec, state = good
    song = write_tone(tmp_path / "song.wav", seconds=3.0, sr=16000)
    for name, crafted in _attacks(spec, payload, canary).items():
        path = _save(tmp_path / f"{name}.ckpt", crafted, state)
        with pytest.raises(ModelSourceError, match=f"checkpoint {path}.*(is not allowed|_args_)"):
            model_loading.load_model(path)
        assert predict_main([str(path), str(song), "--no-progress"]) == 2, name
        assert str(path) in capsys.readouterr().err
        assert not canary.exists(), f"{name} ran its payload"


def test_pickled_checkpoint_is_never_unpickled(good, canary: Path, tmp_path: Path) -> None:
    spec, state = good
    path = tmp_path / "pickled.ckpt"
    torch.save({"state_dict": state, checkpoint.CONFIG_KEY: spec, "extra": _Payload(canary)}, path)
    with pytest.raises(ModelSourceError, match=f"cannot load checkpoint {path}"):
        model_loading.load_model(path)
    assert not canary.exists()


def test_spec_fields_are_validated_one_by_one(good, tmp_path: Path) -> None:
    spec, state = good
    cases = {
        "rate": ({**spec, "data": {**spec["data"], "sample_rate": 10**12}}, "data.sample_rate"),
        "chunk": ({**spec, "data": {**spec["data"], "chunk_seconds": -1}}, "data.chunk_seconds"),
        "classes": ({**spec, "classes": ["a", "a"]}, "distinct"),
        "unknown_setting": (_with(spec, "model", "backbone", {**spec["model"]["backbone"], "shell": "rm -rf /"}),
                            "unknown setting.*model.backbone.shell"),
        "not_plain": ({**spec, "classes": [torch.zeros(1)]}, "not plain config data"),
        "interpolation": (_with(spec, "features", "name", "${oc.env:HOME}"), "interpolations are never evaluated"),
    }
    for name, (crafted, reason) in cases.items():
        path = _save(tmp_path / f"{name}.ckpt", crafted, state)
        with pytest.raises(ModelSourceError, match=reason):
            model_loading.load_model(path)
    # The untouched spec loads and round-trips through the one reader.
    path = _save(tmp_path / "good.ckpt", spec, state)
    parsed, weights = checkpoint.read(path)
    assert parsed.classes == tuple(CLASSES) and set(weights) == set(state)


def _model_folder(root: Path, spec: dict, state: dict, weights_path: str = "artifacts/weights.pt") -> Path:
    """An MLflow pyfunc folder as genre_lab logs it (MLmodel + weights artifact)."""
    folder = root / "model"
    (folder / "artifacts").mkdir(parents=True)
    checkpoint.write(folder / "artifacts" / "weights.pt", checkpoint.ModelSpec.from_dict(spec), state)
    mlmodel = {
        "flavors": {"python_function": {"loader_module": "mlflow.pyfunc.model", "python_model": "pyfunc_model.py",
                                        "artifacts": {"weights": {"path": weights_path, "uri": "weights.pt"}}}},
    }
    (folder / "MLmodel").write_text(yaml.safe_dump(mlmodel))
    return folder


def test_model_folders_with_pickles_or_escaping_paths_are_refused(good, canary: Path, tmp_path: Path) -> None:
    spec, state = good
    # 1. The weights artifact is a pickle that runs code when loaded the unsafe way.
    folder = _model_folder(tmp_path / "pickle", spec, state)
    (folder / "artifacts" / "weights.pt").write_bytes(pickle.dumps(_Payload(canary)))
    (folder / "python_model.pkl").write_bytes(pickle.dumps(_Payload(canary)))
    with pytest.raises(ModelSourceError, match="cannot load checkpoint"):
        Tagger.load(folder)
    assert not canary.exists()
    # 2. Path traversal: the weights "artifact" points outside the folder.
    outside = _save(tmp_path / "outside.pt", spec, state)
    for escape in ("../../outside.pt", str(outside)):
        folder = _model_folder(tmp_path / f"escape{len(escape)}", spec, state, weights_path=escape)
        with pytest.raises(ModelSourceError, match="points outside the model folder"):
            Tagger.load(folder)
    # 3. The genuine folder loads.
    assert Tagger.load(_model_folder(tmp_path / "ok", spec, state)).classes == CLASSES


def test_hostile_model_logged_to_a_run_is_refused_over_runs_uri(good, payload: Path, canary: Path, tmp_path: Path,
                                                                 mlflow_uri: str, monkeypatch) -> None:
    """The attack as it arrives: a run whose `model/` artifacts carry the crafted spec and the
    pickle, downloaded by `predict runs:/<id>/model`."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    spec, state = good
    crafted = _attacks(spec, payload, canary)["attribute_walk_torch_load"]
    folder = _model_folder(tmp_path / "hostile", spec, state)
    torch.save({"state_dict": state, checkpoint.CONFIG_KEY: crafted}, folder / "artifacts" / "weights.pt")
    (folder / "payload.pkl").write_bytes(payload.read_bytes())
    client = MlflowClient(mlflow_uri)
    run_id = client.create_run(client.create_experiment("attack")).info.run_id
    client.log_artifacts(run_id, str(folder), "model")
    client.set_terminated(run_id)
    song = write_tone(tmp_path / "song.wav", seconds=3.0, sr=16000)
    for model in (f"runs:/{run_id}/model", run_id):
        assert predict_main([model, str(song), "--no-progress", "--tracking-uri", mlflow_uri]) == 2
    assert not canary.exists()
    # Downloads went to this user's private cache, not a predictable shared /tmp folder.
    root = model_loading.cache_root()
    assert root.is_relative_to(tmp_path / "cache") and stat.S_IMODE(root.stat().st_mode) == 0o700
    assert any(root.iterdir())


def test_shared_model_cache_is_refused(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    shared = tmp_path / "genre_lab" / "models"
    shared.mkdir(parents=True)
    shared.chmod(0o777)
    with pytest.raises(ModelSourceError, match="not private to this user"):
        model_loading.cache_root()


def _run_with_config(client: MlflowClient, good, tmp_path: Path, config: dict) -> str:
    spec, state = good
    exp = client.get_experiment_by_name("hostile-config")
    run_id = client.create_run(exp.experiment_id if exp else client.create_experiment("hostile-config")).info.run_id
    ckpt = tmp_path / "ckpt" / "best.ckpt"
    ckpt.parent.mkdir(exist_ok=True)
    _save(ckpt, spec, state)
    client.log_artifact(run_id, str(ckpt), "checkpoints")
    client.log_text(run_id, yaml.safe_dump(config), "config.yaml")
    client.set_terminated(run_id)
    return run_id


def _synthetic_data(**source: object) -> dict:
    return {"_target_": "genre_lab.data.GenreDataModule", "sample_rate": 16000, "chunk_seconds": 2.0,
            "source": {"_target_": "genre_lab.data.SyntheticSource", "clips_per_class": {"train": 2, "val": 2, "test": 2},
                       "clip_seconds": 2.0, **source}}


def test_evaluate_refuses_hostile_run_configs(good, payload: Path, canary: Path, tmp_path: Path, mlflow_uri: str,
                                              monkeypatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("SECRET_TOKEN", "hunter2-secret")
    client = MlflowClient(mlflow_uri)
    hostile = {
        "attribute walk": {"data": {**_synthetic_data(), "source": {
            "_target_": "genre_lab.data.sources.torch.load", "_args_": [str(payload)], "weights_only": False}}},
        "torch.save": {"data": {**_synthetic_data(), "source": {"_target_": "genre_lab.data.clips.np.save",
                                                                "_args_": [str(canary), [1]]}}},
        "os.system": {"data": {**_synthetic_data(), "source": {"_target_": "os.system", "_args_": [f"touch {canary}"]}}},
        "oc.env secret": {"data": _synthetic_data(seed="${oc.env:SECRET_TOKEN,none}")},
    }
    for name, config in hostile.items():
        run_id = _run_with_config(client, good, tmp_path, config)
        cfg = compose([f"run={run_id}", f"tracking_uri={mlflow_uri}", "progress=false"], config_name="evaluate")
        with pytest.raises(ValueError, match="is not allowed (here|in a genre_lab config)|interpolations are never evaluated"):
            evaluate(cfg)
        assert not canary.exists(), name
    # The secret never reached a param, a tag or a logged file of any run.
    for run in client.search_runs([e.experiment_id for e in client.search_experiments()]):
        values = [*run.data.params.values(), *run.data.tags.values()]
        assert not any("hunter2" in str(v) for v in values)
        assert run.data.tags.get("run_type") != "evaluation"  # refused before any evaluation run exists


def test_untrusted_yaml_loader_refuses_every_hydra_hook() -> None:
    for text, reason in {
        "a: ${oc.env:HOME}": "interpolations",
        "x: {_target_: builtins.eval, _args_: ['1']}": "is not allowed",
        "x: {_target_: genre_lab.models.CNN, _recursive_: false}": "_recursive_ is not allowed",
        "x: !!python/object/apply:os.system ['true']": "not valid YAML",
        "- a\n- b": "not a mapping",
    }.items():
        with pytest.raises(registry.ConfigSecurityError, match=reason):
            registry.load_untrusted_yaml(text, "config.yaml")
    assert registry.load_untrusted_yaml("data: {_target_: genre_lab.data.GenreDataModule}", "c")["data"]


def test_shipped_configs_only_name_registered_classes() -> None:
    for overrides in (["model=cnn"], ["model=rnn"], ["model=crnn"]):
        cfg = compose([*TINY, *overrides])
        registry.check_targets(cfg.features, cfg.model, cfg.data, cfg.trainer, cfg.callbacks, cfg.logger)
