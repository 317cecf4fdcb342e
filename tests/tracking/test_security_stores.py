"""Configs that come from a store are data too: a shared MLflow or Optuna store that anyone on
the team can write to must not make `train resume=`, a sweep's best config, `evaluate` or
`ensemble --from-experiment` run code, read secrets into the store, or hang.

Each attack goes through the real command (`python -m genre_lab.train resume=...`, the sweep
command and the re-run command it prints, `evaluate`, `ensemble`) against a real sqlite MLflow
store and a real Optuna storage. Each asserts that the canary file the payload would create
never appears, that the secret in the environment reaches no param, tag, logged file or file
name, and that the command stops with one line naming what it refused (or, for legitimate
input, succeeds).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import pytest
import torch
import yaml
from lightning.pytorch.callbacks import Callback
from mlflow import MlflowClient

from genre_lab import registry
from genre_lab.models import model_file as checkpoint
from genre_lab.config import CONF_DIR, PROJECT_ROOT, compose
from genre_lab.cli.ensemble import main as ensemble_main
from genre_lab.inference.evaluation import evaluate
from genre_lab.training.lightning_module import GenreClassifier
from genre_lab.training.resume.run import OVERRIDES, RUN_FILE
from genre_lab.sweep import run_sweep
from genre_lab.training.fit import fit_and_test
from tests.conftest import TINY
from tests.training_procs import QUICK

SECRET = "hunter2-store-secret"
CLASSES = ["blues", "rock"]
#: Nine levels of nine aliases: 9^9 (387 million) leaves once expanded, from ~630 bytes.
ALIAS_BOMB = "a: &a [x,x,x,x,x,x,x,x,x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{','.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8))


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SECRET_TOKEN", SECRET)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def _assert_secret_nowhere(client: MlflowClient, *folders: Path) -> None:
    """No param, tag or logged artifact (read as bytes) of any run, and no file name under
    `folders`, holds the secret."""
    for exp in client.search_experiments():
        for run in client.search_runs([exp.experiment_id]):
            for value in (*run.data.params.values(), *run.data.tags.values()):
                assert SECRET not in str(value), run.info.run_id
            with tempfile.TemporaryDirectory() as tmp:
                if client.list_artifacts(run.info.run_id):
                    local = Path(client.download_artifacts(run.info.run_id, "", tmp))
                    for path in local.rglob("*"):
                        assert SECRET not in str(path)
                        if path.is_file():
                            assert SECRET.encode() not in path.read_bytes(), path
    for folder in folders:
        assert not any(SECRET in str(p) for p in folder.rglob("*")), folder


def _one_error_line(text: str) -> str:
    """The command's error: exactly one line holding `error`, and no traceback."""
    assert "Traceback" not in text, text[-3000:]
    lines = [line for line in text.splitlines() if "error" in line.lower()]
    assert len(lines) == 1, text[-3000:]
    return lines[0]


# -- train resume=<run id> ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def crashed(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str, Path]:
    """(MLflow URI, run id, root) of a real run that died before its first epoch: it has the
    tags `resume=` reads, and no checkpoint."""
    root = tmp_path_factory.mktemp("resume")
    uri = f"sqlite:///{root / 'mlflow.db'}"

    class Crash(Callback):
        def on_train_epoch_start(self, trainer, pl_module) -> None:
            raise RuntimeError("crash before the first epoch")

    overrides = [*QUICK, f"paths.root_dir={root}"]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        with pytest.raises(RuntimeError, match="crash before"):
            fit_and_test(compose(overrides, output_dir=root / "run"), callbacks=[Crash()], overrides=overrides)
    run_id = json.loads((root / "run" / RUN_FILE).read_text())["run_id"]
    return uri, run_id, root


def _resume(uri: str, run_id: str, hydra_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "genre_lab.cli.train", f"resume={run_id}", *extra, f"hydra.run.dir={hydra_dir}"],
        cwd=PROJECT_ROOT, env={**os.environ, "MLFLOW_TRACKING_URI": uri}, capture_output=True, text=True, timeout=600,
    )


def _evil_experiment(client: MlflowClient, run_id: str, canary: Path) -> str:
    """What an attacker logs as an artifact of the run: a global experiment YAML that reads
    the secret into the checkpoint file name and opens the canary when instantiated. Returns
    the `experiment=` value that reaches it from conf/experiment/."""
    evil = {
        "callbacks": {"model_checkpoint": {"filename": "best-${oc.env:SECRET_TOKEN}"}},
        "data": {"source": {"x": {"_target_": "builtins.open", "_args_": [str(canary), "w"]}}},
        "logger": {"mlflow": {"_target_": "torch.load", "f": str(canary), "weights_only": False}},
    }
    client.log_text(run_id, "# @package _global_\n" + yaml.safe_dump(evil), "evil/evil.yaml")
    folder = Path(client.get_run(run_id).info.artifact_uri.removeprefix("file://")) / "evil"
    assert (folder / "evil.yaml").is_file()
    return os.path.relpath(folder / "evil", CONF_DIR / "experiment")


@pytest.mark.slow
@pytest.mark.parametrize("case", ["path_traversal", "interpolation", "target_dict"])
def test_resume_refuses_hostile_recorded_overrides(crashed, case: str, tmp_path: Path) -> None:
    uri, run_id, root = crashed
    client = MlflowClient(uri)
    canary = tmp_path / "canary"
    good = json.loads(client.get_run(run_id).data.tags[OVERRIDES])
    hostile, named = {
        "path_traversal": lambda: (f"experiment={_evil_experiment(client, run_id, canary)}", "experiment="),
        "interpolation": lambda: ("data.source.clips_per_class={train: ${oc.env:SECRET_TOKEN}, val: 3, test: 2}",
                                  "interpolation"),
        "target_dict": lambda: (f"+data.source.x={{_target_: builtins.open, _args_: ['{canary}', w]}}", "_target_"),
    }[case]()
    client.set_tag(run_id, OVERRIDES, json.dumps([*good, hostile]))
    try:
        proc = _resume(uri, run_id, tmp_path / "resumed")
    finally:
        client.set_tag(run_id, OVERRIDES, json.dumps(good))
    assert proc.returncode == 2, proc.stderr[-3000:]
    line = _one_error_line(proc.stderr)
    assert run_id in line and named in line and hostile[:40] in line, line
    assert not canary.exists()
    assert client.get_run(run_id).info.status == "FAILED"  # not taken over
    _assert_secret_nowhere(client, root, tmp_path)


@pytest.mark.slow
def test_resume_of_an_ordinary_run_still_trains(crashed, tmp_path: Path) -> None:
    """The recorded overrides of a real run (groups, dict values, paths) pass the rule, and
    the resumed run trains to the end through genre_lab.registry's tables."""
    uri, run_id, root = crashed
    proc = _resume(uri, run_id, tmp_path / "resumed", "trainer.max_epochs=1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    client = MlflowClient(uri)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.tags["genre_lab.resumes"] == "1"
    assert "test/track_acc" in run.data.metrics
    _assert_secret_nowhere(client, root, tmp_path)


# -- a sweep's best config ----------------------------------------------------------------------------
#: Every searched setting of `sweep=cnn`, within its space.
CNN_PARAMS = {"model.optimizer.lr": 0.003, "model.optimizer.weight_decay": 1e-4, "model.backbone.dropout": 0.1,
              "model.label_smoothing": 0.0, "features.augment.freq_mask": 4, "features.augment.time_mask": 8,
              "data.batch_size": 16}


def _sweep_args(root: Path) -> list[str]:
    quick = [o for o in QUICK if not o.startswith(("trainer.max_epochs", "model="))]
    return [*quick, "trainer.max_epochs=1", f"paths.root_dir={root}", "sweep=cnn", "sweep.n_trials=1",
            "sweep.metric=val/loss", "sweep.direction=minimize", "sweep.pruner.type=none"]


def _sweep_cli(args: list[str], root: Path, uri: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "genre_lab.sweep", *args, f"hydra.run.dir={root / 'worker'}"],
        cwd=PROJECT_ROOT, env={**os.environ, "MLFLOW_TRACKING_URI": uri, "COLUMNS": "400"},
        capture_output=True, text=True, timeout=600,
    )


def _crafted_trial(params: dict, value: float, canary: Path) -> optuna.trial.FrozenTrial:
    """A trial written straight into the storage, as anyone with write access can: with
    distributions of its own choosing (a wider dropout range) and hostile free-form overrides."""
    dist = optuna.distributions
    return optuna.trial.create_trial(
        params=params,
        distributions={
            "model.optimizer.lr": dist.FloatDistribution(1e-6, 1.0, log=True),
            "model.optimizer.weight_decay": dist.FloatDistribution(1e-9, 1.0, log=True),
            "model.backbone.dropout": dist.FloatDistribution(0.0, 1.0),
            "model.label_smoothing": dist.FloatDistribution(0.0, 1.0),
            "features.augment.freq_mask": dist.IntDistribution(0, 100),
            "features.augment.time_mask": dist.IntDistribution(0, 100),
            "data.batch_size": dist.CategoricalDistribution([16, 32, 64]),
        },
        value=value,
        user_attrs={"overrides": [
            f"+data.source.x={{_target_: builtins.open, _args_: ['{canary}', w]}}",
            "callbacks.model_checkpoint.filename=${oc.env:SECRET_TOKEN}",
        ]},
    )


@pytest.mark.slow
def test_best_config_is_rebuilt_from_checked_params_only(tmp_path: Path, mlflow_uri: str) -> None:
    """A crafted best trial's free-form `overrides` never reach best_config.yaml: the printed
    re-run command trains the trial's (checked) params and nothing else. Params outside
    `sweep.space` and hostile recorded training overrides stop the sweep with one line."""
    canary = tmp_path / "canary"
    args = _sweep_args(tmp_path)
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    first = run_sweep(args, output_dir=tmp_path / "out")  # one real trial: the study, as a sweep makes it
    assert first.counts["COMPLETE"] == 1
    study = optuna.load_study(study_name=first.study_name, storage=storage)
    study.add_trial(_crafted_trial(CNN_PARAMS, -1.0, canary))

    proc = _sweep_cli(args, tmp_path, mlflow_uri)  # the budget is used up: only the summary
    assert proc.returncode == 0, proc.stderr[-3000:]
    (command,) = [line.strip() for line in proc.stdout.splitlines() if "-m genre_lab.train" in line]
    best = Path(shlex.split(command)[4]) / "best_config.yaml"
    text = best.read_text()
    assert "builtins" not in text and "oc.env:SECRET" not in text and "evil" not in text
    assert "batch_size: 16" in text and "Best trial 1 " in text

    rerun = subprocess.run(
        [sys.executable, *shlex.split(command)[1:], f"hydra.run.dir={tmp_path / 'rerun'}"],
        cwd=PROJECT_ROOT, env={**os.environ, "MLFLOW_TRACKING_URI": mlflow_uri}, capture_output=True, text=True,
        timeout=600,
    )
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    client = MlflowClient(mlflow_uri)
    (run,) = [r for r in client.search_runs([client.get_experiment_by_name("genre_lab").experiment_id])
              if r.data.tags.get("genre_lab.run_dir") == str((tmp_path / "rerun").resolve())]
    assert run.info.status == "FINISHED"
    assert run.data.params["data.batch_size"] == "16" and run.data.params["model.backbone.dropout"] == "0.1"
    assert "data.source.x" not in run.data.params

    # A value the space (dropout 0 to 0.5) could never have drawn.
    study.add_trial(_crafted_trial({**CNN_PARAMS, "model.backbone.dropout": 0.9}, -2.0, canary))
    proc = _sweep_cli(args, tmp_path, mlflow_uri)
    assert proc.returncode == 2, proc.stderr[-3000:]
    line = _one_error_line(proc.stderr)
    assert "trial 2" in line and "model.backbone.dropout=0.9" in line and "sweep.space.model.backbone.dropout" in line, line
    # The study's recorded training overrides follow the resume rule.
    study.set_user_attr("train_overrides", [*study.user_attrs["train_overrides"], "experiment=../../../../evil"])
    proc = _sweep_cli(args, tmp_path, mlflow_uri)
    assert proc.returncode == 2, proc.stderr[-3000:]
    line = _one_error_line(proc.stderr)
    assert "train_overrides" in line and "experiment=../../../../evil" in line, line

    assert not canary.exists()
    _assert_secret_nowhere(client, tmp_path)


# -- a run's config.yaml: alias bomb ---------------------------------------------------------------------
def _model_run(client: MlflowClient, experiment: str, tmp_path: Path, config_text: str, score: float) -> str:
    """A FINISHED run with an untrained model's checkpoint, a metric and `config_text` as config.yaml."""
    cfg = compose([*TINY, "model=cnn"])
    model = GenreClassifier.from_config(cfg, CLASSES)
    exp = client.get_experiment_by_name(experiment)
    run_id = client.create_run(exp.experiment_id if exp else client.create_experiment(experiment)).info.run_id
    ckpt = tmp_path / run_id / "best.ckpt"
    ckpt.parent.mkdir()
    torch.save({"state_dict": model.state_dict(), checkpoint.CONFIG_KEY: model.config}, ckpt)
    client.log_artifact(run_id, str(ckpt), "checkpoints")
    client.log_text(run_id, config_text, "config.yaml")
    client.log_metric(run_id, "val/track_acc", score)
    client.set_terminated(run_id)
    return run_id


def _bomb(canary: Path) -> str:
    """The alias bomb, then a data section that would open the canary if it were built."""
    text = ALIAS_BOMB + f"data: {{_target_: builtins.open, _args_: ['{canary}', w], seed: '${{oc.env:SECRET_TOKEN}}'}}\n"
    assert len(ALIAS_BOMB) < 700
    return text


def test_evaluate_refuses_an_alias_bomb_config_at_once(tmp_path: Path, mlflow_uri: str) -> None:
    canary = tmp_path / "canary"
    client = MlflowClient(mlflow_uri)
    run_id = _model_run(client, "hostile", tmp_path, _bomb(canary), 0.9)
    cfg = compose([f"run={run_id}", f"tracking_uri={mlflow_uri}", "progress=false"], config_name="evaluate")
    started = time.monotonic()
    with pytest.raises(registry.ConfigSecurityError) as err:
        evaluate(cfg)
    assert time.monotonic() - started < 30  # expanding it would take hours and all the memory
    message = str(err.value)
    assert "\n" not in message and f"run {run_id} config.yaml" in message and "aliases" in message, message
    # The command as a user runs it: one line, exit 2, no Hydra traceback.
    out = subprocess.run(
        [sys.executable, "-m", "genre_lab.cli.evaluate", f"run={run_id}", f"tracking_uri={mlflow_uri}", "progress=false",
         f"hydra.run.dir={tmp_path / 'eval'}"],
        cwd=PROJECT_ROOT, env={**os.environ, "MLFLOW_TRACKING_URI": mlflow_uri}, capture_output=True, text=True,
        timeout=300,
    )
    assert out.returncode == 2, out.stderr[-3000:]
    line = _one_error_line(out.stdout + out.stderr)
    assert f"run {run_id} config.yaml" in line and "aliases" in line, line
    assert not canary.exists()
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert not any(r.data.tags.get("run_type") == "evaluation" for r in runs)
    _assert_secret_nowhere(client, tmp_path)


def test_ensemble_from_experiment_refuses_an_alias_bomb_config(tmp_path: Path, mlflow_uri: str, capsys) -> None:
    canary = tmp_path / "canary"
    client = MlflowClient(mlflow_uri)
    bomb = _model_run(client, "members", tmp_path, _bomb(canary), 0.9)  # the best: the first member
    _model_run(client, "members", tmp_path, yaml.safe_dump({"data": {"_target_": "genre_lab.data.GenreDataModule"}}), 0.8)
    started = time.monotonic()
    assert ensemble_main(["--from-experiment", "members", "--top", "2", "--tracking-uri", mlflow_uri]) == 2
    assert time.monotonic() - started < 60
    line = _one_error_line(capsys.readouterr().err)
    assert f"run {bomb} config.yaml" in line and "aliases" in line, line
    assert not canary.exists()
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert not any(r.data.tags.get("run_type") == "ensemble" for r in runs)  # refused before the run
    _assert_secret_nowhere(client, tmp_path)


def test_store_yaml_limits_hold_before_expanding() -> None:
    """The loader itself stops early: aliases, depth and node count are refused while the YAML
    is read, oversized text before it is read; each error is one line naming the file."""
    for text, reason in {
        ALIAS_BOMB: "aliases",
        "a: " + "[" * 10_000 + "]" * 10_000: "nested deeper",
        "a: [" + ",".join(["1"] * (registry.MAX_NODES + 10)) + "]": f"more than {registry.MAX_NODES}",
        "a: " + "x" * (registry.MAX_YAML_BYTES + 1): "characters",
    }.items():
        started = time.monotonic()
        with pytest.raises(registry.ConfigSecurityError, match=reason) as err:
            registry.load_untrusted_yaml(text, "run r config.yaml")
        assert time.monotonic() - started < 10
        assert "\n" not in str(err.value) and str(err.value).startswith("run r config.yaml")
