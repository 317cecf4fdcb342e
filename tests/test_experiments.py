"""Experiment configs as a Hydra group: `python -m genre_lab.train experiment=<name>`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from mlflow import MlflowClient

from genre_lab.config import CONF_DIR, PROJECT_ROOT, compose
from tests.conftest import TINY

#: Each experiment with the settings it needs from the user.
EXPERIMENTS = {"gtzan_filtered": ["data.root=/music"], "synthetic_compare": []}
#: The field's benchmark protocols: (settings from the user, dataset source, task, protocol settings).
BENCHMARKS = {
    "fma_small": (["data.root=/fma"], "FMASource", "multiclass", {"subset": "small", "labels": "genre_top"}),
    "fma_medium": (["data.root=/fma"], "FMASource", "multiclass", {"subset": "medium", "labels": "genre_top"}),
    "mtat_top50": (["data.root=/mtat"], "MTATSource", "multilabel", {"top_tags": 50}),
    "jamendo_genre": (["data.root=/j", "data.audio_dir=/a"], "JamendoSource", "multilabel",
                      {"category": "genre", "split_index": 0}),
}


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_sets_its_grid_and_mlflow_experiment(name: str) -> None:
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = hydra_compose(config_name="train", overrides=[f"experiment={name}", *EXPERIMENTS[name]],
                            return_hydra_config=True)
    assert cfg.logger.mlflow.experiment_name == name
    assert str(cfg.hydra.mode) == "RunMode.MULTIRUN"
    assert dict(cfg.hydra.sweeper.params) == {"model": "cnn,rnn,crnn", "seed": "0,1,2"}
    # A command-line override still wins over the experiment's settings.
    assert compose([f"experiment={name}", *EXPERIMENTS[name], "trainer.max_epochs=2"]).trainer.max_epochs == 2


def test_experiments_choose_their_dataset() -> None:
    gtzan = compose(["experiment=gtzan_filtered", "data.root=/music"])
    assert gtzan.data.source._target_ == "genre_lab.data.GTZANSource" and gtzan.data.split == "filtered"
    synthetic = compose(["experiment=synthetic_compare"])
    assert synthetic.data.source.difficulty == "medium" and synthetic.throughput_seconds == 0
    assert compose([]).logger.mlflow.experiment_name == "genre_lab"  # no experiment: the defaults


@pytest.mark.parametrize("name", BENCHMARKS)
def test_benchmark_experiments_set_their_protocol(name: str) -> None:
    settings, source, task, protocol = BENCHMARKS[name]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = hydra_compose(config_name="train", overrides=[f"experiment={name}", *settings], return_hydra_config=True)
    assert cfg.logger.mlflow.experiment_name == name and str(cfg.hydra.mode) == "RunMode.MULTIRUN"
    assert cfg.data.source._target_ == f"genre_lab.data.{source}" and cfg.task == task == cfg.data.task
    assert {key: cfg.data[key] for key in protocol} == protocol
    models = cfg.hydra.sweeper.params.model.split(",")
    assert "shortchunk_res" in models and all((CONF_DIR / "model" / f"{m}.yaml").exists() for m in models)
    readme = (PROJECT_ROOT / "experiments" / name / "README.md").read_text()
    assert "<!-- report:begin -->\n<!-- report:end -->" in readme and f"experiment={name}" in readme


def test_zoo_experiment_runs_every_architecture_with_its_papers_input() -> None:
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = hydra_compose(config_name="train", overrides=["experiment=zoo"], return_hydra_config=True)
    assert cfg.logger.mlflow.experiment_name == "zoo" and str(cfg.hydra.mode) == "RunMode.MULTIRUN"
    models = cfg.hydra.sweeper.params.model.split(",")
    assert {"fcn", "shortchunk", "shortchunk_res", "samplecnn", "samplecnn_se", "harmoniccnn", "cnnsa", "ast"} <= set(models)
    assert all((CONF_DIR / "model" / f"{m}.yaml").exists() for m in models)
    assert cfg.data.source.difficulty == "hard" and cfg.data.source.clip_seconds >= 29.1  # FCN's 29.1 s window
    fcn = compose(["experiment=zoo", "model=fcn"])
    assert fcn.data.chunk_seconds == 29.1 and fcn.features.name == "fcn"


def test_transfer_experiment_runs_the_seeds_of_the_arm_named_on_the_command_line() -> None:
    arm = ["experiment=transfer", "data=csv", "data.manifest=/m.csv", "model=musicnn", "model.freeze=backbone"]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = hydra_compose(config_name="train", overrides=arm, return_hydra_config=True)
    assert cfg.logger.mlflow.experiment_name == "transfer" and str(cfg.hydra.mode) == "RunMode.MULTIRUN"
    assert dict(cfg.hydra.sweeper.params) == {"seed": "1,2,3"}
    assert cfg.model.name == "musicnn" and cfg.model.freeze == "backbone"
    assert cfg.trainer.max_epochs == 30 and cfg.callbacks.early_stopping.patience == 8 and cfg.throughput_seconds == 0


def test_each_experiment_has_one_config_and_its_results_folder() -> None:
    """The recipe is `conf/experiment/<name>.yaml`; `experiments/<name>/` holds its README and
    results, never a second copy of the config."""
    configs = {p.stem for p in (CONF_DIR / "experiment").glob("*.yaml")}
    assert configs == {*EXPERIMENTS, *BENCHMARKS, "transfer", "zoo"}
    assert {p.name for p in (PROJECT_ROOT / "experiments").iterdir() if p.is_dir()} == configs
    assert not list((PROJECT_ROOT / "experiments").rglob("*.yaml"))


@pytest.mark.slow
def test_train_experiment_runs_its_grid_into_its_mlflow_experiment(tmp_path: Path, mlflow_uri: str) -> None:
    quick = [o for o in TINY if not o.startswith("trainer.max_epochs")]
    grid = ["hydra.sweeper.params.model=cnn", "hydra.sweeper.params.seed='0,1'"]  # 2 runs, not 9
    proc = subprocess.run(
        [sys.executable, "-m", "genre_lab.cli.train", "experiment=synthetic_compare", *grid, *quick,
         "trainer.max_epochs=1", "data.train_chunks_per_clip=1", f"paths.root_dir={tmp_path}"],
        cwd=tmp_path, env={**os.environ, "MLFLOW_TRACKING_URI": mlflow_uri, "PYTHONPATH": str(PROJECT_ROOT)},
        capture_output=True, text=True, timeout=900, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    client = MlflowClient(mlflow_uri)
    runs = client.search_runs([client.get_experiment_by_name("synthetic_compare").experiment_id])
    assert sorted((r.data.tags["model"], r.data.params["seed"]) for r in runs) == [("cnn", "0"), ("cnn", "1")]
    assert all(r.info.status == "FINISHED" for r in runs)
