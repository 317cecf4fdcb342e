"""Real `python -m genre_lab.train` processes for the crash, signal and DDP tests, and the tiny
in-process training behind the trained-model fixtures (`train_in_own_store`)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from mlflow import MlflowClient

from genre_lab.config import PROJECT_ROOT
from tests.conftest import TINY

#: TINY with fewer training chunks and a 4-epoch budget, the CNN (fastest to train), no
#: throughput timing: a process trains an epoch in seconds, so a kill lands mid-training.
QUICK = [
    *(o for o in TINY if not o.startswith(("trainer.max_epochs", "throughput_seconds", "data.train_chunks_per_clip"))),
    "data.train_chunks_per_clip=2", "trainer.max_epochs=4", "throughput_seconds=0", "model=cnn",
]


def train_cmd(args: Sequence[str], hydra_dir: Path) -> list[str]:
    return [sys.executable, "-m", "genre_lab.cli.train", *args, f"hydra.run.dir={hydra_dir}"]


def start(args: Sequence[str], hydra_dir: Path, uri: str, log: Path | None = None) -> subprocess.Popen:
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "PYTHONWARNINGS": "ignore"}
    out = open(log or hydra_dir.with_suffix(".log"), "w")
    return subprocess.Popen(train_cmd(args, hydra_dir), cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


def run(args: Sequence[str], hydra_dir: Path, uri: str, timeout: float = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "PYTHONWARNINGS": "ignore"}
    return subprocess.run(train_cmd(args, hydra_dir), cwd=PROJECT_ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def wait_for(condition: Callable[[], bool], proc: subprocess.Popen, what: str, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"process exited ({proc.returncode}) before {what}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def only_run(client: MlflowClient, experiment: str = "genre_lab", exclude: Sequence[str] = ()) -> str:
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None
    runs = [r for r in client.search_runs([exp.experiment_id]) if r.info.run_id not in exclude]
    assert len(runs) == 1, [r.info.run_id for r in runs]
    return runs[0].info.run_id


def history(client: MlflowClient, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


def train_in_own_store(root: Path, overrides: Sequence[str], out: str = "out",
                       without: Sequence[str] = ()) -> tuple[Any, str]:
    """(TrainResult, store URI) of a tiny training (TINY, less its settings starting with one of
    `without`, then `overrides`) in `root`'s own sqlite store, its Hydra output in `root / out`:
    the module-scoped trained-model fixtures of the inference and transfer tests. Called again
    with the same `root`, it trains another run into the same store."""
    import pytest

    from genre_lab.config import compose
    from genre_lab.training.fit import fit_and_test

    uri = f"sqlite:///{root / 'mlflow.db'}"
    tiny = [o for o in TINY if not o.startswith(tuple(without))]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        cfg = compose([*tiny, *overrides, f"paths.root_dir={root}"], output_dir=root / out)
        return fit_and_test(cfg), uri
