"""`resume=<run id | run folder>`: find the run, check it may be continued, and take it over.

A run folder names its MLflow run in `mlflow_run.json`; the run names its folder, its
overrides and its config hash in tags (all written by `genre_lab.training.fit` at the start).
Continuing is refused for a FINISHED run, for one whose process is still alive (see
`genre_lab.tracking.liveness`), and for a config that hashes differently (see `resume.run_config`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import MLFlowLogger
from lightning.pytorch.utilities import rank_zero_only
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from omegaconf import DictConfig, OmegaConf, open_dict

from genre_lab import registry
from genre_lab.tracking.liveness import liveness, process_tags
from genre_lab.tracking.mlflow_runs import redact_url
from genre_lab.training.resume.lightning_checkpoints import LAST
from genre_lab.training.resume.run_config import (
    SAFE_KEYS,
    ResumeConfigError,
    check_overrides,
    check_targets,
    config_hash,
    differences,
    recompose,
    task_overrides,
)

RUN_FILE = "mlflow_run.json"
OVERRIDES, CONFIG_HASH, RUN_DIR = "genre_lab.overrides", "genre_lab.config_hash", "genre_lab.run_dir"
RESUMES, RESUME_OVERRIDES = "genre_lab.resumes", "genre_lab.resume_overrides"
MLFLOW_LOGGER = "lightning.pytorch.loggers.MLFlowLogger"
_RUN_ID = re.compile(r"^[0-9a-f]{32}$")
MAX_TAG = 5000


class ResumeError(ValueError):
    """A `resume=` that cannot be honoured; the message names the run and the reason."""


def start_tags(cfg: DictConfig, overrides: Sequence[str] | None) -> dict[str, str]:
    """What a fresh run records so that it can be resumed."""
    tags = {CONFIG_HASH: config_hash(cfg), RUN_DIR: str(Path(cfg.paths.output_dir).resolve())}
    if overrides is not None:
        text = json.dumps(task_overrides(overrides))
        if len(text) <= MAX_TAG:
            tags[OVERRIDES] = text
    return tags


def write_run_file(output_dir: str | Path, run_id: str, experiment_id: str) -> None:
    path = Path(output_dir) / RUN_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"run_id": run_id, "experiment_id": experiment_id}) + "\n")


@dataclass
class ResumePoint:
    run_id: str
    run_dir: Path
    checkpoint: Path | None
    new_overrides: list[str]
    resumes: int
    #: Last step already logged per metric: the resumed epochs log after it, never twice.
    logged_steps: dict[str, int] = field(default_factory=dict)

    def logger(self, cfg: DictConfig) -> AppendOnlyMLFlowLogger:
        """The run's logger, built from the final resolved `logger.mlflow` (run id filled in)
        through genre_lab.registry: only MLFlowLogger, as its append-only variant."""
        node = OmegaConf.to_container(cfg.logger.mlflow, resolve=True)
        target = node.get("_target_") if isinstance(node, dict) else None
        if target != MLFLOW_LOGGER:
            raise ResumeError(f"resume needs logger.mlflow._target_={MLFLOW_LOGGER}, got {target!r}")
        return registry.build(node, {MLFLOW_LOGGER: AppendOnlyMLFlowLogger}, "logger.mlflow",
                              logged_steps=self.logged_steps)

    def take_over(self, client: MlflowClient, heartbeat_seconds: float) -> None:
        """Mark the run RUNNING again under this process."""
        client.update_run(self.run_id, status="RUNNING")
        if "error" in client.get_run(self.run_id).data.tags:  # the crash is over; a new one sets it again
            client.delete_tag(self.run_id, "error")
        for key, value in {**process_tags(heartbeat_seconds), RESUMES: str(self.resumes)}.items():
            client.set_tag(self.run_id, key, value)
        if self.new_overrides:
            client.set_tag(self.run_id, RESUME_OVERRIDES, json.dumps(self.new_overrides)[:MAX_TAG])


class AppendOnlyMLFlowLogger(MLFlowLogger):
    """MLFlowLogger that drops values at steps the run already has: the epoch a crash
    interrupted after its metrics were logged but before its checkpoint was written is trained
    again, and its metrics would otherwise appear twice in the history."""

    def __init__(self, *args: Any, logged_steps: Mapping[str, int] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.logged_steps = dict(logged_steps or {})

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        at = step or 0
        fresh = {k: v for k, v in metrics.items() if at > self.logged_steps.get(k, -1)}
        if fresh:
            super().log_metrics(fresh, step)


def prepare(cfg: DictConfig, overrides: Sequence[str], client: MlflowClient) -> tuple[DictConfig, ResumePoint]:
    """The config to continue with (re-composed, hash-checked) and where to continue from."""
    target = str(cfg.resume)
    store = redact_url(client.tracking_uri)
    run_id, folder = _find_run(target, store)
    try:
        run = client.get_run(run_id)
    except MlflowException as err:
        raise ResumeError(f"resume={target}: no MLflow run {run_id} in {store} ({err.message})") from err
    tags = run.data.tags
    if rank_zero_only.rank == 0:  # other DDP ranks start after rank 0 has taken the run over
        state = liveness(run)
        if state.state == "FINISHED":
            raise ResumeError(f"resume={target}: run {run_id} is FINISHED; start a new run instead")
        if state.state == "RUNNING":
            raise ResumeError(f"resume={target}: run {run_id} is still running ({state.reason})")
    if OVERRIDES not in tags:
        raise ResumeError(f"resume={target}: run {run_id} has no '{OVERRIDES}' tag (not started by genre_lab.cli.train)")
    try:
        recorded = check_overrides(json.loads(tags[OVERRIDES]), f"run {run_id} tag {OVERRIDES}")
    except json.JSONDecodeError as err:
        raise ResumeError(f"resume={target}: tag {OVERRIDES} of run {run_id} is not JSON") from err
    run_dir = folder or Path(tags.get(RUN_DIR, ""))
    if not str(run_dir) or not run_dir.is_dir():
        raise ResumeError(f"resume={target}: the run folder {str(run_dir)!r} of run {run_id} does not exist")

    new = task_overrides(overrides)
    resumed = recompose([*recorded, *new], str(run_dir))
    check_targets(resumed, f"resume={target}")
    if config_hash(resumed) != tags.get(CONFIG_HASH):
        changed = differences(run.data.params, resumed)
        raise ResumeConfigError(
            f"resume={target}: the config differs from run {run_id}'s "
            f"({'; '.join(changed[:10]) or 'conf/ changed since'}); only {', '.join(SAFE_KEYS)} may change on resume"
        )
    with open_dict(resumed):
        resumed.logger.mlflow.run_id = run_id
        resumed.resume = target
    ckpt_dir = Path(resumed.callbacks.model_checkpoint.dirpath) if resumed.get("callbacks", {}).get("model_checkpoint") else run_dir / "checkpoints"
    for stale in ckpt_dir.glob(f".{LAST}.*.tmp"):  # a write a crash interrupted; never read
        stale.unlink(missing_ok=True)
    last = ckpt_dir / LAST
    point = ResumePoint(
        run_id=run_id, run_dir=run_dir, checkpoint=last if last.is_file() else None, new_overrides=new,
        resumes=int(previous) + 1 if (previous := tags.get(RESUMES, "0")).isdigit() else 1,
    )
    if rank_zero_only.rank == 0:
        point.logged_steps = {key: max(m.step for m in client.get_metric_history(run_id, key))
                              for key in run.data.metrics}
    return resumed, point


def _find_run(target: str, store: str) -> tuple[str, Path | None]:
    """(run id, run folder if the target was one); `store`: the tracking URI a run id is looked up in."""
    path = Path(target)
    if path.is_dir():
        marker = path / RUN_FILE
        try:
            run_id = json.loads(marker.read_text())["run_id"]
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise ResumeError(f"resume={target}: {marker} is missing or unreadable ({err})") from err
        if not isinstance(run_id, str) or not _RUN_ID.match(run_id):
            raise ResumeError(f"resume={target}: {marker} holds no valid run id")
        return run_id, path.resolve()
    if _RUN_ID.match(target):
        return target, None
    raise ResumeError(f"resume={target}: no run folder {Path(target).resolve()} (with {RUN_FILE}), and not an "
                      f"MLflow run id (32 hex digits) to look up in {store}")
