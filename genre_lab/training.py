"""Fit, test and track one model: the work behind `genre_lab.train` and every sweep trial."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import lightning.pytorch as pl
import optuna
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import MLFlowLogger
from omegaconf import DictConfig, OmegaConf

from . import tracking
from .data import GenreDataModule
from .features import frontend_throughput
from .inference.pyfunc import log_tagger_model
from .module import GenreClassifier
from .stores import store_lock

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    run_id: str
    metrics: dict[str, float]
    classes: list[str]
    best_checkpoint: str | None = None
    tags: dict[str, str] = field(default_factory=dict)


def build(cfg: DictConfig) -> tuple[GenreDataModule, GenreClassifier]:
    """DataModule and model from a composed config; bad settings fail here, before any run."""
    datamodule: GenreDataModule = instantiate(cfg.data)
    datamodule.setup()
    if datamodule.chunk < 2 * cfg.features.frontend.hop_length:
        raise ValueError(
            f"data.chunk_seconds={cfg.data.chunk_seconds} gives fewer than two feature frames "
            f"at features.frontend.hop_length={cfg.features.frontend.hop_length}"
        )
    return datamodule, GenreClassifier.from_config(cfg, datamodule.classes)


def fit_and_test(
    cfg: DictConfig,
    callbacks: Sequence[Callback] = (),
    tags: dict[str, str] | None = None,
) -> TrainResult:
    """Train with `cfg`, test the best checkpoint, log everything to one MLflow run.

    The run is closed FINISHED, or FAILED with the error as a tag (KILLED on Ctrl-C). A trial
    pruned by Optuna is not a failure: it closes FINISHED with tag `trial_state=PRUNED`.
    """
    pl.seed_everything(cfg.seed, workers=True)
    datamodule, model = build(cfg)
    # MLFlowLogger creates its run lazily (on `.experiment`): build the trainer first so a bad
    # trainer or callback setting fails before any run exists.
    with store_lock(str(cfg.logger.mlflow.tracking_uri)):  # its client opens (or creates) the store
        logger: MLFlowLogger = instantiate(cfg.logger.mlflow)
    best_epoch = BestEpochMetrics()
    all_callbacks = [instantiate(c) for c in cfg.get("callbacks", {}).values() if c] + [best_epoch, *callbacks]
    trainer: pl.Trainer = instantiate(cfg.trainer, callbacks=all_callbacks, logger=logger)
    # One get-or-create for every command: a local store keeps artifacts beside its database.
    tracking.experiment_id(cfg.logger.mlflow.experiment_name, cfg.logger.mlflow.tracking_uri)
    client, run_id = logger.experiment, logger.run_id

    run_tags = {
        "model": cfg.model.name,
        "features": cfg.features.name,
        "backend": cfg.features.frontend.backend,
        "dataset": datamodule.source.name,
        "git_commit": tracking.git_commit() or "unknown",
        **(tags or {}),
    }
    error: BaseException | None = None
    try:
        for key, value in run_tags.items():
            client.set_tag(run_id, key, value)
        resolved = OmegaConf.to_container(cfg, resolve=True)
        tracking.log_params(client, run_id, tracking.flatten(resolved))
        resolved["logger"]["mlflow"]["tracking_uri"] = tracking.redact_url(str(cfg.logger.mlflow.tracking_uri))
        client.log_text(run_id, OmegaConf.to_yaml(resolved), "config.yaml")
        _log_scan_report(client, run_id, datamodule)

        trainer.fit(model, datamodule=datamodule)
        device = trainer.strategy.root_device  # the module is back on the CPU after teardown
        best = _best_checkpoint(trainer)
        # Report the epoch whose weights are kept (and tested), not merely the last one.
        metrics = best_epoch.metrics_of(trainer.checkpoint_callback)
        if cfg.get("test", True):
            # ckpt_path="best" reloads the best weights; without a checkpoint, the last ones.
            for row in trainer.test(model, datamodule=datamodule, ckpt_path=best, verbose=False):
                metrics.update({k: float(v) for k, v in row.items()})
            tracking.log_test_report(client, run_id, model, "test")
        if best:
            client.log_artifact(run_id, best, "checkpoints")
        if cfg.get("log_model", True):
            # The servable pyfunc (`runs:/<id>/model`), from the best weights when there are some.
            log_tagger_model(client, run_id, best or model)
        if cfg.get("throughput_seconds", 0):
            _log_throughput(logger, model, cfg, device)
        return TrainResult(run_id, metrics, model.classes, best, run_tags)
    except optuna.TrialPruned as pruned:
        client.set_tag(run_id, "trial_state", "PRUNED")
        raise pruned
    except BaseException as err:
        error = err
        raise
    finally:
        # Lightning marks the run FAILED on any exception inside fit, pruning included;
        # the final word is ours.
        tracking.close_run(client, run_id, error)


class BestEpochMetrics(Callback):
    """Keeps every validation epoch's metrics, to report those of the checkpointed epoch."""

    def __init__(self) -> None:
        self.epochs: list[dict[str, float]] = []

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
    assert datamodule.splits is not None
    report = {name: {"clips": len(s), "skipped": [dict(path=p, reason=r) for p, r in s.skipped]}
              for name, s in datamodule.splits.items()}
    tracking.log_json(client, run_id, report, "data/scan_report.json")
    client.log_metric(run_id, "data/skipped_files", sum(len(s["skipped"]) for s in report.values()))


def _log_throughput(logger: MLFlowLogger, model: GenreClassifier, cfg: DictConfig, device: torch.device) -> None:
    batch = cfg.data.get("eval_batch_size") or cfg.data.batch_size
    chunk = float(cfg.data.chunk_seconds)
    repeats = max(1, int(cfg.throughput_seconds / (batch * chunk)))
    value = frontend_throughput(model.frontend, batch, chunk, repeats, device)
    info = {"device": str(device), "backend": model.frontend.backend_for(device),
            "kind": model.frontend.kind, "batch_size": batch, "chunk_seconds": chunk,
            "audio_seconds_per_second": value, "torch_threads": torch.get_num_threads()}
    logger.experiment.log_metric(logger.run_id, "frontend/audio_sec_per_sec", value)
    tracking.log_json(logger.experiment, logger.run_id, info, "frontend_throughput.json")
