"""Fit, test and track one model: the work behind `genre_lab.cli.train` and every sweep trial."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import MLFlowLogger
from lightning.pytorch.utilities import rank_zero_only
from mlflow import MlflowClient
from omegaconf import DictConfig, OmegaConf

from genre_lab import registry
from genre_lab.training import resume
from genre_lab.tracking import mlflow_runs as tracking
from genre_lab.training import transfer
from genre_lab.data import GenreDataModule
from genre_lab.models.mlflow_model import log_tagger_model
from genre_lab.features import frontend_throughput
from genre_lab.tracking.run_names import describe_results, describe_run
from genre_lab.tracking.liveness import Heartbeat, process_tags, sigterm_as_interrupt
from genre_lab.training.lightning_module import GenreClassifier
from genre_lab.training.quiet import quiet_third_party
from genre_lab.training.speed import SpeedMeter
from genre_lab.reporting.split_report import log_test_report
from genre_lab.training.resume import ResumePoint
from genre_lab.training.resume.run_config import task_overrides
from genre_lab.tracking.stores import store_lock

log = logging.getLogger(__name__)


@dataclass
class TrainResult(tracking.RunResult):
    """A finished training run; `best_checkpoint` is the tested checkpoint's local path."""

    best_checkpoint: str | None = None


def build(cfg: DictConfig) -> tuple[GenreDataModule, GenreClassifier]:
    """DataModule and model from a composed config; bad settings fail here, before any run."""
    datamodule: GenreDataModule = _build(cfg, "data", registry.DATA)
    datamodule.setup()
    hop = cfg.features.frontend.get("hop_length", 1)  # a waveform front end has no frames
    if datamodule.chunk < 2 * hop:
        raise ValueError(
            f"data.chunk_seconds={cfg.data.chunk_seconds} gives fewer than two feature frames "
            f"at features.frontend.hop_length={hop}"
        )
    return datamodule, GenreClassifier.from_config(cfg, datamodule.classes)


def _build(cfg: DictConfig, key: str, table: Mapping[str, Any], **extra: Any) -> Any:
    """The object at `cfg.<key>`, built through genre_lab.registry's `table` from the config as
    it is now, resolved: the `_target_` checked is the one built (a config re-composed from a
    store's overrides or a sweep's best config cannot swap it after an earlier check)."""
    node = OmegaConf.select(cfg, key, throw_on_missing=True)
    # throw_on_missing: an unset `???` (data.root) is reported by its own name.
    return registry.build(OmegaConf.to_container(node, resolve=True, throw_on_missing=True), table, key, **extra)


def fit_and_test(
    cfg: DictConfig,
    callbacks: Sequence[Callback] = (),
    tags: dict[str, str] | None = None,
    overrides: Sequence[str] | None = None,
    pruned: type[BaseException] | tuple[type[BaseException], ...] = (),
) -> TrainResult:
    """Train with `cfg`, test the best checkpoint, log everything to one MLflow run.

    The run is closed FINISHED, or FAILED with the error as a tag (KILLED on Ctrl-C or
    SIGTERM, after writing `interrupted.ckpt`). An exception of a `pruned` type (the sweep passes
    Optuna's TrialPruned, so training itself never imports Optuna) is not a failure: it is
    re-raised and the run closes FINISHED with tag `trial_state=PRUNED`. `overrides` (the command line that composed `cfg`)
    are recorded so that `resume=<run>` can compose the same config again; with `cfg.resume`
    set, the run named there is continued from its `last.ckpt` instead of starting a new one.
    """
    quiet_third_party()  # Lightning's tips, torch's deprecations, MLflow's INFO lines and bars
    resume_point: ResumePoint | None = None
    if cfg.get("resume"):
        cfg, resume_point = resume.prepare(cfg, overrides or [], MlflowClient(str(cfg.logger.mlflow.tracking_uri)))
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule, model = build(cfg)
    lineage = None
    if cfg.get("init_from") and resume_point is None:  # a resumed run has its weights in last.ckpt
        lineage = transfer.initialise_from(model, str(cfg.init_from), str(cfg.logger.mlflow.tracking_uri))
    # MLFlowLogger creates its run lazily (on `.experiment`): build the trainer first so a bad
    # trainer or callback setting fails before any run exists.
    with store_lock(str(cfg.logger.mlflow.tracking_uri)):  # its client opens (or creates) the store
        logger: MLFlowLogger = (resume_point.logger(cfg) if resume_point
                                else _build(cfg, "logger.mlflow", registry.LIGHTNING))
    best_epoch = BestEpochMetrics()
    all_callbacks = [_build(cfg, f"callbacks.{name}", registry.LIGHTNING)
                     for name, c in (cfg.get("callbacks") or {}).items() if c]
    interrupt = resume.InterruptCheckpoint()
    speed = SpeedMeter()
    all_callbacks += [best_epoch, resume.ResumeState(), interrupt, speed, *callbacks]
    trainer: pl.Trainer = _build(cfg, "trainer", registry.LIGHTNING, callbacks=all_callbacks, logger=logger,
                                 plugins=[resume.AtomicCheckpointIO()])
    # Under DDP every rank runs this function; only rank 0 writes to MLflow (Lightning gives the
    # other ranks a no-op experiment).
    rank_zero = rank_zero_only.rank == 0
    heartbeat_seconds = float(cfg.get("heartbeat_seconds", 30))
    if rank_zero:
        # One get-or-create for every command: a local store keeps artifacts beside its database.
        tracking.experiment_id(cfg.logger.mlflow.experiment_name, cfg.logger.mlflow.tracking_uri)
    client, run_id = logger.experiment, logger.run_id

    run_tags = {
        "run_type": "training",  # what notebooks and reports count as a trained model (sweep trials too)
        "model": cfg.model.name,
        "features": cfg.features.name,
        "backend": cfg.features.frontend.get("backend", "torch"),
        "dataset": datamodule.source.name,
        **tracking.source_tags(),  # git_commit, genre_lab_version
        **(lineage.tags() if lineage else {}),
        **(tags or {}),
    }
    error: BaseException | None = None
    with ExitStack() as stack:
        try:
            stack.enter_context(sigterm_as_interrupt())
            if rank_zero:
                if resume_point:
                    resume_point.take_over(client, heartbeat_seconds)
                else:
                    _start_run(client, run_id, cfg, datamodule, {**run_tags, **resume.start_tags(cfg, overrides),
                                                                 **process_tags(heartbeat_seconds)}, overrides)
                    # Trainable parameters (front end, backbone, head): the size column of a comparison.
                    client.log_metric(run_id, "model/params", sum(p.numel() for p in model.parameters() if p.requires_grad))
                stack.enter_context(Heartbeat(str(cfg.logger.mlflow.tracking_uri), run_id, heartbeat_seconds))

            ckpt_path = str(resume_point.checkpoint) if resume_point and resume_point.checkpoint else None
            trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
            device = trainer.strategy.root_device  # the module is back on the CPU after teardown
            best = _best_checkpoint(trainer)
            # Report the epoch whose weights are kept (and tested), not merely the last one.
            metrics = best_epoch.metrics_of(trainer.checkpoint_callback)
            if cfg.get("test", True):
                # ckpt_path="best" reloads the best weights; without a checkpoint, the last ones.
                for row in trainer.test(model, datamodule=datamodule, ckpt_path=best, verbose=False):
                    metrics.update({k: float(v) for k, v in row.items()})
                if rank_zero:
                    log_test_report(client, run_id, model, "test")
            if rank_zero:
                test = datamodule.splits["test"] if cfg.get("test", True) and datamodule.splits else None
                test_audio = sum(len(w) for w in test.waves) / datamodule.sample_rate if test else None
                for key, value in speed.metrics(test_audio, trainer.world_size).items():
                    client.log_metric(run_id, key, value)
            if rank_zero:
                describe_results(client, run_id, cfg, datamodule.source.name, metrics)  # scores in the description
            if rank_zero and best:
                client.log_artifact(run_id, best, "checkpoints")
            if rank_zero and cfg.get("log_model", True):
                # The servable pyfunc (`runs:/<id>/model`), from the best weights when there are some.
                log_tagger_model(client, run_id, best or model, metrics)  # a LoggedModel with these metrics
            if rank_zero and cfg.get("throughput_seconds", 0):
                _log_throughput(logger, model, cfg, device)
            return TrainResult(run_id, metrics, model.classes, run_tags, best_checkpoint=best)
        except pruned:
            client.set_tag(run_id, "trial_state", "PRUNED")
            raise
        except BaseException as err:
            error = err
            raise
        finally:
            # Lightning marks the run FAILED on any exception inside fit, pruning included;
            # the final word is ours.
            if rank_zero:
                # Lightning exits with SystemExit(1) after an interrupt: record what interrupted.
                tracking.close_run(client, run_id, interrupt.reason if error and interrupt.reason else error)


def _start_run(client: MlflowClient, run_id: str, cfg: DictConfig, datamodule: GenreDataModule,
               run_tags: dict[str, str], overrides: Sequence[str] | None = None) -> None:
    """Tags, params, resolved config and scan report of a new run; its folder names the run."""
    for key, value in run_tags.items():
        client.set_tag(run_id, key, value)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    tracking.log_params(client, run_id, tracking.flatten(resolved))
    resolved["logger"]["mlflow"]["tracking_uri"] = tracking.redact_url(str(cfg.logger.mlflow.tracking_uri))
    client.log_text(run_id, OmegaConf.to_yaml(resolved), "config.yaml")
    _log_scan_report(client, run_id, datamodule)
    # run name (with what the command line changed), description, dataset inputs
    describe_run(client, run_id, cfg, datamodule, task_overrides(overrides or []))
    resume.write_run_file(cfg.paths.output_dir, run_id, client.get_run(run_id).info.experiment_id)


class BestEpochMetrics(Callback):
    """Keeps every validation epoch's metrics, to report those of the checkpointed epoch
    (saved in checkpoints, so a resumed run still knows the epochs before the crash)."""

    def __init__(self) -> None:
        self.epochs: list[dict[str, float]] = []

    def state_dict(self) -> dict[str, Any]:
        return {"epochs": [dict(e) for e in self.epochs]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epochs = [dict(e) for e in state.get("epochs", [])]

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            self.epochs.append({k: float(v) for k, v in trainer.callback_metrics.items()})

    def metrics_of(self, checkpoint: Callback | None) -> dict[str, float]:
        """The epoch ModelCheckpoint kept (its best monitored score); else the last epoch."""
        if not self.epochs:
            return {}
        if isinstance(checkpoint, ModelCheckpoint) and checkpoint.monitor and checkpoint.best_model_score is not None:
            best = float(checkpoint.best_model_score)
            for epoch in self.epochs:
                if epoch.get(checkpoint.monitor) == best:
                    return dict(epoch)
        return dict(self.epochs[-1])


def _best_checkpoint(trainer: pl.Trainer) -> str | None:
    ckpt = trainer.checkpoint_callback
    if isinstance(ckpt, ModelCheckpoint) and ckpt.best_model_path and Path(ckpt.best_model_path).is_file():
        return ckpt.best_model_path
    return None


def _log_scan_report(client, run_id: str, datamodule: GenreDataModule) -> None:
    report = datamodule.scan_report()
    tracking.log_json(client, run_id, report, "data/scan_report.json")
    skipped = sum(len(s["skipped"]) for s in report.values())
    if skipped:  # zero is the rule: a metric only when files were skipped (the report says which)
        client.log_metric(run_id, "data/skipped_files", skipped)


def _log_throughput(logger: MLFlowLogger, model: GenreClassifier, cfg: DictConfig, device: torch.device) -> None:
    batch = cfg.data.get("eval_batch_size") or cfg.data.batch_size
    chunk = float(cfg.data.chunk_seconds)
    repeats = max(1, int(cfg.throughput_seconds / (batch * chunk)))
    value = frontend_throughput(model.frontend, batch, chunk, repeats, device)
    if not math.isfinite(value):  # a timing too short to measure: nothing to report
        log.warning("front-end throughput not measurable (%s); not logged", value)
        return
    info = {"device": str(device), "backend": model.frontend.backend_for(device),
            "kind": model.frontend.kind, "batch_size": batch, "chunk_seconds": chunk,
            "audio_seconds_per_second": value, "torch_threads": torch.get_num_threads()}
    logger.experiment.log_metric(logger.run_id, "frontend/audio_sec_per_sec", value)
    tracking.log_json(logger.experiment, logger.run_id, info, "frontend_throughput.json")
