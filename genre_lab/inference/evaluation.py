"""Evaluate a trained model on a dataset split: the work behind `genre-lab evaluate`.

Every window of every track in the split goes through the model and the chunk probabilities
are averaged per track (the LightningModule's own test step, so the numbers are defined
exactly as in training). Track accuracy, macro-F1, the per-class report and the confusion
matrix are logged to a new MLflow run tagged `evaluated_run_id` (the training run, when the
model came from one).

`pooling` (mean, max, logmean) and `tta_shifts` (windows also at hop/N offsets) choose how
window probabilities become a track's (`genre_lab.audio.windows`); both are logged as params.

The dataset is any `conf/data` config; without one, the data the run was trained on. Its sample
rate and chunk length are replaced by the model's, which the model cannot run without.
"""

from __future__ import annotations

import logging
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from torchmetrics.functional.classification import multiclass_accuracy, multiclass_f1_score
from mlflow import MlflowClient
from mlflow.entities import Metric, Param
from mlflow.exceptions import MlflowException
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader

from genre_lab import registry
from genre_lab.tracking import mlflow_runs as tracking
from genre_lab.data import SPLITS, AudioSplit, GenreDataModule
from genre_lab.data.datamodule import TrackChunks, targets
from genre_lab.data.sources import terminal_progress
from genre_lab.models.ensemble import EnsembleClassifier
from genre_lab.models.loading import ModelSource, load_model
from genre_lab.training.lightning_module import GenreClassifier
from genre_lab.training.quiet import quiet_third_party
from genre_lab.reporting.split_report import log_test_report
from genre_lab.models.network import GenreNet
from genre_lab.audio import perturb
from genre_lab.audio.windows import check_pooling, own_pooling, shifted_starts, track_probabilities
from genre_lab.inference import robustness

log = logging.getLogger(__name__)


class EvaluationError(ValueError):
    """An evaluation that cannot be made as asked (no data config, unknown classes, a bad split);
    the message names the run or setting."""


@dataclass
class EvaluationResult(tracking.RunResult):
    """A finished evaluation run; `evaluated_run_id` is the evaluated model's run, when it has one."""

    evaluated_run_id: str | None = None


def training_data_config(client: MlflowClient, run_id: str) -> dict:
    """The `data` group the run was trained with, from its logged `config.yaml`: read as
    untrusted data (safe YAML, no interpolation evaluated, only registered dataset classes)."""
    where = f"run {run_id} config.yaml"
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = Path(client.download_artifacts(run_id, "config.yaml", tmp))
            with path.open("rb") as f:  # never more than the limit into memory
                raw = f.read(registry.MAX_YAML_BYTES + 1)
        except (MlflowException, OSError) as err:
            raise EvaluationError(f"run {run_id} has no readable config.yaml; pass data=<dataset config>") from err
    if len(raw) > registry.MAX_YAML_BYTES:
        raise registry.ConfigSecurityError(f"{where} is larger than {registry.MAX_YAML_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise registry.ConfigSecurityError(f"{where} is not UTF-8 text ({err.reason} at byte {err.start})") from err
    data = registry.load_untrusted_yaml(text, where).get("data")
    if not data:
        raise EvaluationError(f"run {run_id}'s config.yaml has no data section; pass data=<dataset config>")
    return data


def data_config(cfg: DictConfig, source: ModelSource, model: GenreNet, client: MlflowClient) -> dict:
    """The chosen dataset config (or the training one) with the model's rate and chunk length."""
    if cfg.get("data") is not None:
        data = OmegaConf.to_container(cfg.data, resolve=True)  # the user's own command line
    elif source.run_id is not None:
        data = training_data_config(client, source.run_id)
    else:
        raise EvaluationError(
            f"model '{source.spec}' is not an MLflow training run, so its dataset is unknown: "
            "pass data=<dataset config>, e.g. data=synthetic"
        )
    trained = model.config["data"]
    for key in ("sample_rate", "chunk_seconds"):
        if data.get(key) not in (None, trained[key]):
            log.warning("data.%s=%s replaced by the model's %s", key, data[key], trained[key])
        data[key] = trained[key]
    data["eval_hop_seconds"] = cfg.get("hop_seconds") or trained.get("eval_hop_seconds") or trained["chunk_seconds"]
    return data


def align_classes(split: AudioSplit, dataset_classes: list[str], model_classes: list[str]) -> AudioSplit:
    """Relabel a split into the model's class order; the dataset may hold a subset of them."""
    unknown = [c for c in dataset_classes if c not in model_classes]
    if unknown:
        raise EvaluationError(f"the dataset has classes the model never learned: {unknown} (model: {model_classes})")
    if dataset_classes == model_classes:
        return split
    index = [model_classes.index(c) for c in dataset_classes]
    tags = None if split.tags is None else [tuple(index[t] for t in clip) for clip in split.tags]
    return AudioSplit(split.ids, [index[y] for y in split.labels], split.waves, split.skipped, tags)


@torch.inference_mode()
def ensemble_metrics(model: EnsembleClassifier, loader: DataLoader, split: str,
                     progress: bool = True, pooling: str | None = None) -> dict[str, float]:
    """Chunk and track accuracy / macro-F1 of the ensemble and of each member on the same
    windows (`<split>/...` and `<member label>/<split>/...`, the label naming the member's source
    run, safe as a metric key: `EnsembleClassifier.sources`): the gain is one table. `pooling`
    None: the ensemble's windows by their mean, each member's as it pools alone (`own_pooling`:
    a linear probe's network by its mean logits), so a member scores as `evaluate` scores it."""
    model.eval()
    probs: list[list[torch.Tensor]] = [[] for _ in range(len(model.members) + 1)]
    labels, clips = [], []
    with terminal_progress(progress) as bar:
        task = bar.add_task(f"Scoring {split} windows", total=len(loader))
        for wave, y, clip in loader:
            members = model.member_probabilities(wave)
            mean = torch.einsum("m,mbc->bc", model.weights, torch.stack(members))
            for store, p in zip(probs, [mean, *members]):
                store.append(p)
            labels.append(y)
            clips.append(clip)
            bar.advance(task)
    y, clip = torch.cat(labels), torch.cat(clips)
    n = len(model.classes)
    metrics: dict[str, float] = {}
    for i, store in enumerate(probs):
        prefix = split if i == 0 else f"{model.sources[i - 1]}/{split}"
        chunk = torch.cat(store)
        own = own_pooling(model if i == 0 else model.members[i - 1])
        track, track_y = track_probabilities(chunk, y, clip, pooling or own)
        for level, (p, t) in (("chunk", (chunk, y)), ("track", (track, track_y))):
            metrics[f"{prefix}/{level}_acc"] = float(multiclass_accuracy(p, t, n, average="micro"))
            metrics[f"{prefix}/{level}_f1"] = float(multiclass_f1_score(p, t, n, average="macro"))
    return metrics


def log_class_explanations(client: MlflowClient, run_id: str, model: GenreNet | EnsembleClassifier,
                           split: AudioSplit, chunk: int, hop: int, settings: Any, progress: bool = True) -> None:
    """Per genre: `explain/<genre>.png` (mean attribution over its correctly classified tracks,
    and the frequency profile) and `explain/summary.json` (profiles, peak band, most confident
    and most confused tracks)."""
    import matplotlib.pyplot as plt

    from genre_lab.inference.attribution import Explainer, class_explanations
    from genre_lab.reporting.plots import class_attribution_figure

    explainer = Explainer(model, str(settings.get("method", "integrated_gradients")), int(settings.get("steps", 8)))
    with terminal_progress(progress) as bar:
        task = bar.add_task("Explaining genres", total=len(split) + len(model.classes))
        found = class_explanations(explainer, split.ids, split.labels, split.waves, chunk, hop, model.classes,
                                   int(settings.get("max_tracks_per_class", 5)), advance=lambda: bar.advance(task))
    for item in found:
        if item.mean_map is not None:
            fig = class_attribution_figure(item.mean_map, item.label, item.tracks)
            safe = re.sub(r"[^A-Za-z0-9_.-]", "_", item.label).lstrip(".") or "class"
            client.log_figure(run_id, fig, f"explain/{safe}.png")
            plt.close(fig)
    tracking.log_json(client, run_id, {item.label: item.summary() for item in found}, "explain/summary.json")


def _robustness(client: MlflowClient, run_id: str, split: AudioSplit, perturbations: list, sample_rate: int,
                score: Any, prefix: str, seed: int, progress: bool) -> dict[str, float]:
    """Every level of every perturbation scored and logged (`genre_lab.inference.robustness`):
    `perturb/<kind>/<level>/<metric>`, `perturb/curves.json`, `perturb/degradation.png`."""
    import matplotlib.pyplot as plt

    from genre_lab.reporting.plots import degradation_figure

    def strip(metrics: dict[str, float]) -> dict[str, float]:
        """The model's own `<split>/<metric>` (never an ensemble member's `<name>/<split>/...`)."""
        return {k.split("/", 1)[1]: v for k, v in metrics.items() if k.startswith(f"{prefix}/") and k.count("/") == 1}

    with terminal_progress(progress) as bar:
        task = bar.add_task("Perturbed evaluations", total=sum(len(p.levels) for p in perturbations))
        found = robustness.curves(split, perturbations, sample_rate, lambda clips: strip(score(clips)), seed,
                                  lambda _: bar.advance(task))
    data = robustness.as_json(found)
    tracking.log_json(client, run_id, data, "perturb/curves.json")
    fig = degradation_figure(data)
    client.log_figure(run_id, fig, "perturb/degradation.png")
    plt.close(fig)
    return robustness.metric_items(found)


def test_time_choices(cfg: DictConfig) -> tuple[str | None, int]:
    """`pooling` (None: the model's own) and `tta_shifts` of the config, checked (an
    EvaluationError naming the setting)."""
    try:
        pooling = None if cfg.get("pooling") is None else check_pooling(str(cfg.pooling))
    except ValueError as err:
        raise EvaluationError(str(err)) from None
    shifts = cfg.get("tta_shifts")
    shifts = 1 if shifts is None else shifts
    if isinstance(shifts, bool) or not isinstance(shifts, int) or shifts < 1:
        raise EvaluationError(f"tta_shifts must be an integer >= 1, got {shifts!r}")
    return pooling, shifts


def evaluate(cfg: DictConfig) -> EvaluationResult:
    """Evaluate `cfg.run` (checkpoint, run id or URI) on `cfg.split` of the dataset; log a run."""
    if cfg.split not in SPLITS:
        raise EvaluationError(f"split must be one of {SPLITS}, got '{cfg.split}'")
    quiet_third_party()  # Lightning's tips, torch's deprecations, MLflow's INFO lines and bars
    progress = bool(cfg.get("progress", True))
    pooling, shifts = test_time_choices(cfg)
    uri = cfg.get("tracking_uri") or tracking.tracking_uri()
    loaded = load_model(str(cfg.run), uri)  # first: a model that is not there creates no store
    client = tracking.open_client(uri)
    model, source = loaded.network, loaded.source
    data_cfg = data_config(cfg, source, model, client)
    # A run's config.yaml is downloaded data: it may only name registered dataset classes.
    datamodule: GenreDataModule = registry.build(data_cfg, registry.DATA, "data")
    multilabel = bool(getattr(model, "multilabel", False))
    datamodule.task = "multilabel" if multilabel else "multiclass"  # the model's task decides
    datamodule.setup()
    split = align_classes(datamodule.splits[cfg.split], datamodule.classes, model.classes)
    try:  # before any run exists: a bad kind or level is refused, naming the setting
        perturbations = perturb.resolve(str(cfg.perturb), cfg.get("perturb_levels")) if cfg.get("perturb") else []
    except ValueError as err:
        raise EvaluationError(str(err)) from None
    lightning_model = None if isinstance(model, EnsembleClassifier) else GenreClassifier.from_network(model)
    if lightning_model is not None and pooling is not None:
        lightning_model.pooling = pooling
    pooled = lightning_model.pooling if lightning_model is not None else pooling or "members-own"

    def score(clips: AudioSplit, show: bool) -> dict[str, float]:
        """`<split>/<metric>` of the model on `clips` (windows at the evaluation hop, and shifted
        by `tta_shifts`, pooled by `pooling`); for an ensemble also each member's, under its name."""
        windows = TrackChunks(clips, datamodule.chunk, datamodule.hop, targets(clips, len(model.classes), multilabel),
                              shifts)
        loader = DataLoader(windows, batch_size=datamodule.eval_batch_size, num_workers=datamodule.num_workers)
        if lightning_model is None:
            return ensemble_metrics(model, loader, cfg.split, show, pooling)
        trainer = pl.Trainer(accelerator=cfg.accelerator, devices=1, logger=False, enable_checkpointing=False,
                             enable_model_summary=False, enable_progress_bar=show)
        (row,) = trainer.test(lightning_model, dataloaders=loader, verbose=False)
        # The module names its metrics test/...; name them after the split actually evaluated.
        return {f"{cfg.split}/{k.split('/', 1)[1]}": float(v) for k, v in row.items()}

    if source.run_id is not None:
        experiment = client.get_run(source.run_id).info.experiment_id
    else:
        experiment = tracking.experiment_id(cfg.experiment_name, uri)
    tags = {
        "run_type": "evaluation",
        "evaluated_model": source.spec,
        "model": model.config["model"].get("name", "?"),
        "features": model.config["features"].get("name", "?"),
        "dataset": datamodule.source.name,
        "split": cfg.split,
        **tracking.source_tags(),
    }
    if source.run_id is not None:
        tags["evaluated_run_id"] = source.run_id
    run_name = cfg.get("run_name") or f"eval-{tags['model']}-{tags['dataset']}-{cfg.split}"
    with tracking.tracked_run(client, experiment, run_name, tags) as run_id:
        resolved = {"run": source.spec, "split": cfg.split, "pooling": pooled, "tta_shifts": shifts, "data": data_cfg}
        if perturbations:
            resolved["perturb"] = {p.kind: [perturb.level_name(v) for v in p.levels] for p in perturbations}
        windows = sum(len(shifted_starts(len(w), datamodule.chunk, datamodule.hop, shifts)) for w in split.waves)
        params = {"tracks": len(split), "windows": windows, **tracking.flatten(resolved)}
        client.log_batch(run_id, params=[Param(k, str(v)) for k, v in params.items()])
        client.log_text(run_id, OmegaConf.to_yaml(resolved), "config.yaml")
        metrics = score(split, progress)
        if lightning_model is None:
            tracking.log_json(client, run_id, {"members": model.sources, "member_run_ids": model.run_ids,
                                               "weights": model.weights.tolist()}, "ensemble_members.json")
        else:
            log_test_report(client, run_id, lightning_model, cfg.split)
        if perturbations:
            metrics.update(_robustness(client, run_id, split, perturbations, datamodule.sample_rate,
                                       lambda clips: score(clips, False), cfg.split, int(cfg.get("perturb_seed", 0)), progress))
        now = int(time.time() * 1000)
        client.log_batch(run_id, metrics=[Metric(k, v, now, 0) for k, v in metrics.items()])
        explain = cfg.get("explain") or {}
        if explain.get("enabled", False):
            log_class_explanations(client, run_id, model, split, datamodule.chunk, datamodule.hop, explain, progress)
        return EvaluationResult(run_id, metrics, model.classes, tags, evaluated_run_id=source.run_id)
