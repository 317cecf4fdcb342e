"""MLflow bookkeeping shared by training, evaluation, sweeps and benchmarks."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from mlflow import MlflowClient
from mlflow.entities import Param
from mlflow.exceptions import MlflowException

from genre_lab.config import home
from genre_lab.tracking.stores import sqlite_file, store_lock


@dataclass
class RunResult:
    """What a command that logs one MLflow run returns: the run, its metrics, the classes of the
    model it trained or used, and the run's tags."""

    run_id: str
    metrics: dict[str, float]
    classes: list[str]
    tags: dict[str, str] = field(default_factory=dict)

MAX_PARAM_CHARS = 6000  # MLflow's limit on one param value
# The MLflow 3 UI opens an untagged experiment in its GenAI layout (runs listed under
# "Evaluations"); this kind ("Machine learning" in its selector) gives the runs table, the
# Models tab and the Dataset column.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"


def default_tracking_uri(root: str | Path | None = None) -> str:
    """The sqlite store `mlflow.db` in `root`, by default the home folder (`GENRE_LAB_HOME`,
    else the working directory)."""
    return f"sqlite:///{Path(root) if root is not None else home()}/mlflow.db"


def tracking_uri(root: str | Path | None = None) -> str:
    """The MLflow store every command and config uses unless told otherwise:
    `MLFLOW_TRACKING_URI` when set, else `default_tracking_uri(root)`. The configs reach it as
    `${genre_lab_tracking_uri:${paths.root_dir}}` (see `genre_lab.config`)."""
    return os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri(root)


@contextmanager
def using_tracking_uri(uri: str) -> Iterator[None]:
    """MLflow's process-wide tracking URI set to `uri` for a block (some lookups, such as a
    logged model's, go through it whatever URI is passed), then put back as it was, with
    `MLFLOW_TRACKING_URI` too: MLflow's own `_use_tracking_uri` unsets that variable on the way
    out when no URI had been set in code, and every later command would then miss its store."""
    from mlflow.tracking._tracking_service.utils import _use_tracking_uri

    saved = os.environ.get("MLFLOW_TRACKING_URI")
    try:
        with _use_tracking_uri(uri):
            yield
    finally:
        if saved is not None:
            os.environ["MLFLOW_TRACKING_URI"] = saved


def open_client(uri: str | None = None) -> MlflowClient:
    """An MlflowClient on `uri` (default `tracking_uri()`) whose store exists: created and
    migrated under `store_lock` if new. MLflow keeps one store per URI in a process, so later
    clients on the same URI reuse it without touching the schema again."""
    uri = uri or tracking_uri()
    with store_lock(uri):
        return MlflowClient(uri)  # opens the store: creates and migrates a new database


def experiment_id(name: str, uri: str | None = None) -> str:
    """Id of experiment `name`, created if needed; every command (training, evaluation, sweeps,
    benchmarks) gets its experiment here, so the store is opened under `store_lock`. For a
    local sqlite store its artifacts go beside the database (`<db folder>/mlartifacts`), not
    into the working directory."""
    uri = uri or tracking_uri()
    client = open_client(uri)
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        if exp.tags.get(EXPERIMENT_KIND_TAG) is None:  # made before the tag existed
            client.set_experiment_tag(exp.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
        return exp.experiment_id
    db = sqlite_file(uri)
    location = str(db.resolve().parent / "mlartifacts") if db is not None else None
    try:
        return client.create_experiment(name, artifact_location=location, tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND})
    except MlflowException:
        # Another process (a parallel worker) created it since the lookup: use theirs.
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


def flatten(cfg: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'model': {'backbone': {'hidden': 64}}} -> {'model.backbone.hidden': 64}: the keys are
    the Hydra override paths, so a param seen in the UI can be pasted back on the CLI."""
    out: dict[str, Any] = {}
    for key, value in cfg.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, f"{path}."))
        else:
            out[path] = json.dumps(value) if isinstance(value, (list, tuple)) else str(value)
    return out


def git_commit() -> str | None:
    """Commit of the git repository holding the working directory (the user's experiments;
    in a checkout of genre_lab, genre_lab's own), None outside one."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path.cwd(), capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def package_version() -> str:
    """The installed genre_lab version ("unknown" when run from a source tree never installed)."""
    try:
        return version("genre_lab")
    except PackageNotFoundError:
        return "unknown"


def source_tags() -> dict[str, str]:
    """What produced a run: `git_commit` (the working directory's commit, else the package
    version) and `genre_lab_version`."""
    release = package_version()
    return {"git_commit": git_commit() or release, "genre_lab_version": release}


def redact_url(value: str) -> str:
    """A URL with its password replaced by ***: params and tags are readable by anyone with
    access to the tracking server."""
    parts = urlsplit(value)
    if not parts.password:
        return value
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def log_params(client: MlflowClient, run_id: str, params: Mapping[str, Any]) -> None:
    """Log params in MLflow's batches of 100, values cut at MLflow's own limit (not Lightning's
    250 characters), passwords in URLs redacted."""
    items = [Param(k, redact_url(str(v))[:MAX_PARAM_CHARS]) for k, v in params.items()]
    for i in range(0, len(items), 100):
        client.log_batch(run_id, params=items[i : i + 100])


def log_json(client: MlflowClient, run_id: str, obj: Any, name: str) -> None:
    client.log_text(run_id, json.dumps(obj, indent=2, sort_keys=True), name)


def close_run(client: MlflowClient, run_id: str, error: BaseException | str | None) -> None:
    """FINISHED, or FAILED (KILLED on Ctrl-C) with the error recorded as a tag. A string is the
    reason itself, for a run closed FAILED on behalf of a process that died without closing it."""
    if error is None:
        client.set_terminated(run_id, "FINISHED")
        return
    # Lightning turns Ctrl-C inside fit into SystemExit: an interruption, not a failure.
    status = "KILLED" if isinstance(error, (KeyboardInterrupt, SystemExit)) else "FAILED"
    text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    client.set_tag(run_id, "error", text[:5000])
    client.set_terminated(run_id, status)


@contextmanager
def tracked_run(client: MlflowClient, experiment_id: str, run_name: str, tags: Mapping[str, str]) -> Iterator[str]:
    """A new run (its id is yielded) closed by `close_run` whatever happens inside: the one
    lifecycle of evaluation, ensemble and report runs (training and sweep trials add resume
    and pruning on top, with the same `close_run`)."""
    run_id = client.create_run(experiment_id, run_name=run_name, tags=dict(tags)).info.run_id
    error: BaseException | None = None
    try:
        yield run_id
    except BaseException as err:
        error = err
        raise
    finally:
        close_run(client, run_id, error)
