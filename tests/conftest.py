"""Shared fixtures: a private MLflow store per test and tiny training configs."""

from __future__ import annotations

import glob
import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

# Tests run on 2 shared cores: one intra-op thread avoids OpenMP spin contention.
torch.set_num_threads(1)

#: Overrides that make a full train/val/test cycle take seconds on synthetic data.
TINY = [
    "data.source.clips_per_class={train: 12, val: 4, test: 4}",
    "data.source.clip_seconds=4.0",
    # The textbook recipes: tiny models learn them in a few epochs (the default is medium).
    "data.source.difficulty=easy",
    "data.chunk_seconds=2.0",
    "data.eval_hop_seconds=2.0",
    "data.train_chunks_per_clip=4",
    "trainer.max_epochs=6",
    "callbacks.early_stopping=null",
    "callbacks.progress_bar=null",
    "throughput_seconds=4",
]


@pytest.fixture()
def mlflow_uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh sqlite MLflow store; `MLFLOW_TRACKING_URI` points every run at it."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


@pytest.fixture()
def tiny_overrides(tmp_path: Path) -> list[str]:
    return [*TINY, f"paths.root_dir={tmp_path}"]


def write_tone(path: Path, seconds: float = 1.0, sr: int = 22050, channels: int = 1, freq: float = 440.0, **kw) -> Path:
    """A real audio file (format from the suffix) holding a sine tone."""
    t = np.arange(int(seconds * sr)) / sr
    wave = 0.5 * np.sin(2 * np.pi * freq * t)
    data = np.stack([wave * (1 - 0.2 * c) for c in range(channels)], axis=1) if channels > 1 else wave
    sf.write(str(path), data, sr, **kw)
    return path


@pytest.fixture(autouse=True)
def _quiet_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONWARNINGS", os.environ.get("PYTHONWARNINGS", "ignore"))


@pytest.fixture(autouse=True)
def _logging_put_back():
    """Each test leaves logging as it found it. A command run in-process through Hydra
    configures the root logger with a handler bound to the sys.stdout of that moment (pytest's
    capture), which is closed after the test; a later test's INFO line would then print a
    `--- Logging error ---` traceback into the stderr it checks."""
    loggers = [logging.root, *(lg for lg in logging.root.manager.loggerDict.values() if isinstance(lg, logging.Logger))]
    saved = {lg: (list(lg.handlers), lg.level, lg.propagate) for lg in loggers}
    yield
    for lg, (handlers, level, propagate) in saved.items():
        lg.handlers[:] = handlers
        lg.setLevel(level)
        lg.propagate = propagate
    for lg in logging.root.manager.loggerDict.values():  # loggers made during the test
        if isinstance(lg, logging.Logger) and lg not in saved:
            lg.handlers.clear()


def postgres_binaries() -> Path | None:
    """The PostgreSQL server binaries: on PATH, else Debian's /usr/lib/postgresql/<version>/bin."""
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
                      key=lambda p: int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0)
    return Path(versions[-1]).parent if versions else None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`gpu` tests are skipped without CUDA; `postgres` tests without PostgreSQL's binaries,
    unless GENRE_LAB_REQUIRE_POSTGRES=1 (CI), where they run and fail for want of them."""
    no_cuda = pytest.mark.skip(reason="needs CUDA (the GPU pass)")
    no_postgres = pytest.mark.skip(reason="PostgreSQL server binaries not found (`make services` installs them)")
    require_postgres = os.environ.get("GENRE_LAB_REQUIRE_POSTGRES") == "1"
    postgres_found: bool | None = None
    for item in items:
        if "gpu" in item.keywords and not torch.cuda.is_available():
            item.add_marker(no_cuda)
        if "postgres" in item.keywords and not require_postgres:
            if postgres_found is None:
                postgres_found = postgres_binaries() is not None
            if not postgres_found:
                item.add_marker(no_postgres)
