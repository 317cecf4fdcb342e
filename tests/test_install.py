"""Installable anywhere: stores, caches and outputs go to the working directory (or
GENRE_LAB_HOME), never to the package; configs ship in the package; runs record where they came
from. The wheel itself is built, installed without -e and run from an empty folder by
`.ci/install_check` (called by `.ci/run`)."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from mlflow import MlflowClient

from genre_lab.tracking import mlflow_runs as tracking
from genre_lab.config import CONF_DIR, HOME_ENV, PROJECT_ROOT, compose

from tests.conftest import TINY

PACKAGE_DIR = PROJECT_ROOT / "genre_lab"


def _stores(cfg) -> dict[str, str]:
    return {
        "root": cfg.paths.root_dir,
        "mlflow": cfg.logger.mlflow.tracking_uri,
        "optuna": cfg.sweep.storage,
        "sweep_best": cfg.sweep.best_config_dir,
    }


def test_stores_default_to_the_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv(HOME_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    here = str(tmp_path.resolve())
    stores = _stores(compose(config_name="sweep"))
    assert stores == {"root": here, "mlflow": f"sqlite:///{here}/mlflow.db", "optuna": f"sqlite:///{here}/optuna.db",
                      "sweep_best": f"{here}/outputs/sweeps/crnn-logmel"}
    assert compose(["data=folder", "data.root=/music"]).data.cache_dir == f"{here}/.cache/audio"
    assert tracking.default_tracking_uri() == f"sqlite:///{here}/mlflow.db"
    # Nothing points into the package (inside site-packages once installed).
    assert not any(str(PACKAGE_DIR) in value for value in stores.values())


def test_genre_lab_home_wins_over_the_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    home = tmp_path / "lab" / "home"  # created on first use
    monkeypatch.setenv(HOME_ENV, str(home))
    monkeypatch.chdir(tmp_path)
    cfg = compose(["data=csv", "data.manifest=/m.csv"])
    assert cfg.paths.root_dir == str(home) and home.is_dir()
    assert cfg.logger.mlflow.tracking_uri == f"sqlite:///{home}/mlflow.db"
    assert cfg.data.cache_dir == f"{home}/.cache/audio"
    # The tracking server variable and explicit overrides still win.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    assert compose([f"paths.root_dir={tmp_path}"]).logger.mlflow.tracking_uri == "http://127.0.0.1:5999"
    assert tracking.tracking_uri() == "http://127.0.0.1:5999"


def test_source_tags_name_the_commit_or_the_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from importlib.metadata import version

    monkeypatch.chdir(tmp_path)  # not a git repository
    assert tracking.source_tags() == {"git_commit": version("genre_lab"), "genre_lab_version": version("genre_lab")}
    repo = tmp_path / "experiments"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.org"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "x"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    monkeypatch.chdir(repo)  # the user's experiments repository
    assert tracking.source_tags()["git_commit"] == head


def test_every_config_is_package_data() -> None:
    """Each YAML under the top-level conf/ is in a package the build maps into `genre_lab.conf`
    and matches its package-data glob, so the wheel carries it (checked on a real wheel by
    .ci/install_check); every folder of the package and of conf/ is a listed package."""
    setuptools = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert setuptools["package-dir"] == {"genre_lab.conf": "conf"}
    assert CONF_DIR == PROJECT_ROOT / "conf"
    globs = setuptools["package-data"]["genre_lab.conf"]
    shipped = {p for g in globs for p in CONF_DIR.glob(g)}
    configs = set(CONF_DIR.rglob("*.yaml"))
    assert configs and configs <= shipped, sorted(str(p) for p in configs - shipped)
    folders = {".".join(d.relative_to(PROJECT_ROOT).parts) for d in [PACKAGE_DIR, *PACKAGE_DIR.rglob("*")]
               if d.is_dir() and d.name != "__pycache__" and any(f.is_file() and f.suffix != ".pyc" for f in d.iterdir())}
    folders |= {".".join(("genre_lab", *d.relative_to(PROJECT_ROOT).parts)) for d in [CONF_DIR, *CONF_DIR.rglob("*")]
                if d.is_dir() and d.name != "__pycache__"}
    assert folders <= set(setuptools["packages"]), sorted(folders - set(setuptools["packages"]))


@pytest.mark.slow
def test_train_from_any_folder_writes_to_the_home(tmp_path: Path) -> None:
    """`genre-lab train` from an empty folder with GENRE_LAB_HOME set: the store, its artifacts
    and Hydra's outputs are in the home, nothing in the working directory or the package."""
    home, cwd = tmp_path / "home", tmp_path / "cwd"
    cwd.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env.update({HOME_ENV: str(home), "PYTHONWARNINGS": "ignore"})
    proc = subprocess.run(
        [sys.executable, "-m", "genre_lab", "train", *TINY, "model=cnn", "trainer.max_epochs=1",
         "throughput_seconds=0", "log_model=false"],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert list(cwd.iterdir()) == []
    assert {"mlflow.db", "mlartifacts", "outputs"} <= {p.name for p in home.iterdir()}
    assert not [n for n in ("mlflow.db", "mlartifacts", "outputs", "multirun", ".cache", "optuna.db") if (PACKAGE_DIR / n).exists()]
    client = MlflowClient(f"sqlite:///{home}/mlflow.db")
    (run,) = client.search_runs([client.get_experiment_by_name("genre_lab").experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.tags["genre_lab_version"] and run.data.tags["git_commit"]
    assert run.info.artifact_uri.startswith(str(home / "mlartifacts"))
