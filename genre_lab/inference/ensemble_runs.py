"""Building an ensemble run: the work behind `genre-lab ensemble`.

Members are chosen (given, or the best finished training runs of an experiment), weighted
(uniformly, or by each member's validation metric), loaded and checked to fit together
(`genre_lab.models.ensemble.EnsembleClassifier`), and logged as one MLflow run (tag
`run_type=ensemble`) holding the ensemble as `checkpoints/best.ckpt` and as the pyfunc `model`,
the members as params and a lineage tag, and the first member's dataset config, so `evaluate`,
`predict`, `Tagger.load` and `mlflow models serve` take it like one model.

Each member is named after its source run (its MLflow run name, e.g.
`crnn-logmel-synthetic-s42`; a file or pretrained network by a short label of its own): params
`member.<name>` (the run id or source) and `member.<name>.weight`, the ensemble's member labels,
and so the per-member metrics `evaluate` logs (`<name>/<split>/track_acc`). Names come from a
store, so they are made safe and unique (`genre_lab.models.ensemble.member_labels`).
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from genre_lab import registry
from genre_lab.inference.evaluation import training_data_config
from genre_lab.models.ensemble import EnsembleClassifier
from genre_lab.models.loading import ModelSource, ModelSourceError, load_model, resolve
from genre_lab.models.mlflow_model import log_tagger_model
from genre_lab.models.model_file import RUN_CHECKPOINT
from genre_lab.tracking import mlflow_runs as tracking
from genre_lab.tracking import run_kinds

log = logging.getLogger(__name__)

#: Runs that hold a trained chunk-level model and may become members (`tracking.run_kinds`):
#: training runs and sweep trials; never evaluations, ensembles, reports, probes or sweep parents.
_MEMBER_KINDS = (run_kinds.TRAINING, run_kinds.SWEEP_TRIAL)
#: How members are weighted: the same weight each, or each member's validation metric.
WEIGHTINGS = ("uniform", "val")


@dataclass
class EnsembleResult:
    run_id: str
    #: The members as given (run ids, files, URIs).
    members: list[str]
    #: Their names in the run's params and metrics (`member_labels`).
    labels: list[str]
    member_run_ids: list[str | None]
    weights: list[float]


def top_runs(client: MlflowClient, experiment: str, k: int, metric: str) -> list[tuple[str, float]]:
    """(run id, metric) of the `k` best finished training runs of `experiment` by `metric`."""
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise ValueError(f"--from-experiment: no MLflow experiment named '{experiment}'")
    runs = client.search_runs([exp.experiment_id], "attributes.status = 'FINISHED'",
                              order_by=[f"metrics.`{metric}` DESC"], max_results=1000)
    best = [(r.info.run_id, r.data.metrics[metric]) for r in runs
            if metric in r.data.metrics and run_kinds.run_kind(r.data.tags) in _MEMBER_KINDS
            and any(a.path == RUN_CHECKPOINT for a in client.list_artifacts(r.info.run_id, "checkpoints"))]
    if len(best) < 2:
        raise ValueError(f"--from-experiment '{experiment}': {len(best)} finished training run(s) with metric "
                         f"'{metric}' and a checkpoint; an ensemble needs at least 2")
    return best[:k]


def member_scores(client: MlflowClient, models: Sequence[str], tracking_uri: str, metric: str) -> list[float]:
    """Each member's MLflow `metric` (the `--weights val` weights); a member without one is an
    error naming it."""
    scores = []
    for spec in models:
        run_id = resolve(spec, tracking_uri).run_id
        value = client.get_run(run_id).data.metrics.get(metric) if run_id else None
        if value is None:
            raise ValueError(f"--weights val: member '{spec}' has no MLflow metric '{metric}'")
        scores.append(value)
    return scores


def member_name(client: MlflowClient, source: ModelSource) -> str:
    """A readable name for a member, unsafe until `member_labels`: its run's name, else a short
    label of the source (`musicnn-msd` for `pretrained:musicnn-msd`, the registered model and
    version for `models:/`, a file's or folder's own name)."""
    if source.run_id:
        try:
            name = client.get_run(source.run_id).info.run_name
        except MlflowException:
            name = None
        if name:
            return name
    spec = source.spec
    for prefix in ("pretrained:", "models:/", "runs:/"):
        if spec.startswith(prefix):
            return spec[len(prefix):]
    path = Path(spec)
    return path.stem if path.suffix else path.name


def create_ensemble(models: Sequence[str], tracking_uri: str | None = None, *, from_experiment: str | None = None,
                    top: int = 3, metric: str = "val/track_acc", weighting: str = "uniform",
                    experiment: str | None = None, run_name: str | None = None) -> EnsembleResult:
    """The `ensemble` command: the members given, or the `top` best runs of `from_experiment`
    by `metric`, weighted as `weighting` says, logged as one ensemble run. Raises ValueError
    (EnsembleError, ModelSourceError included) naming the setting or member."""
    uri = tracking_uri or tracking.tracking_uri()
    if weighting not in WEIGHTINGS:
        raise ValueError(f"--weights must be one of {', '.join(WEIGHTINGS)}, got '{weighting}'")
    client = tracking.open_client(uri)
    scores: list[float] | None = None
    if from_experiment:
        if models:
            raise ValueError("give MODELs or --from-experiment, not both")
        if top < 2:
            raise ValueError(f"--top must be >= 2, got {top}")
        ranked = top_runs(client, from_experiment, top, metric)
        models, scores = [r for r, _ in ranked], [s for _, s in ranked]
    weights = None
    if weighting == "val":
        weights = scores if scores is not None else member_scores(client, models, uri, metric)
    return build_ensemble(models, uri, weights, experiment, run_name)


def build_ensemble(models: Sequence[str], tracking_uri: str, weights: Sequence[float] | None = None,
                   experiment: str | None = None, run_name: str | None = None) -> EnsembleResult:
    """Load the members, check they fit together, and log the ensemble run."""
    client = tracking.open_client(tracking_uri)
    members, sources = [], []
    for spec in models:
        try:
            loaded = load_model(spec, tracking_uri)
        except ModelSourceError as err:
            raise ModelSourceError(f"ensemble member '{spec}': {err}") from err
        members.append(loaded.network)
        sources.append(loaded.source)
    model = EnsembleClassifier(members, weights, [member_name(client, s) for s in sources],
                               [s.run_id for s in sources])
    labels = model.sources
    first_run = next((s.run_id for s in sources if s.run_id), None)
    if experiment:
        experiment_id = tracking.experiment_id(experiment, tracking_uri)
    elif first_run:
        experiment_id = client.get_run(first_run).info.experiment_id
    else:
        experiment_id = tracking.experiment_id("genre_lab", tracking_uri)
    given = [s.run_id or s.spec for s in sources]
    names = sorted({m.spec.name for m in members})
    tags = {"run_type": "ensemble", "model": "ensemble", "features": "mixed",
            "genre_lab.members": json.dumps(given),
            "mlflow.note.content": "Ensemble of " + ", ".join(f"`{label}` (`{g}`)" for label, g in zip(labels, given)),
            **tracking.source_tags()}
    if first_run:
        tags["dataset"] = client.get_run(first_run).data.tags.get("dataset", "?")
    run_name = run_name or f"ensemble-{len(members)}x-{'+'.join(names)}"
    data = _member_data_config(client, first_run) if first_run else None
    with tracking.tracked_run(client, experiment_id, run_name, tags) as run_id:
        params: dict[str, object] = {f"member.{label}": g for label, g in zip(labels, given)}
        params.update({f"member.{label}.weight": f"{w:.6g}" for label, w in zip(labels, model.weights.tolist())})
        params["members"] = len(members)
        tracking.log_params(client, run_id, params)
        config = {"ensemble": {"members": given, "labels": labels, "weights": model.weights.tolist()}}
        if data is not None:
            config["data"] = data
        client.log_text(run_id, yaml.safe_dump(config, sort_keys=False), "config.yaml")
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / Path(RUN_CHECKPOINT).name
            model.save(path)
            client.log_artifact(run_id, str(path), str(Path(RUN_CHECKPOINT).parent))
            log_tagger_model(client, run_id, model)
        return EnsembleResult(run_id, [s.spec for s in sources], labels, [s.run_id for s in sources],
                              model.weights.tolist())


def _member_data_config(client: MlflowClient, run_id: str) -> dict | None:
    """The first member's dataset config, read before the ensemble run exists. A run without
    one still makes a usable ensemble (only `evaluate run=<ensemble>` then needs data=...); a
    config.yaml that breaks the rules for configs from a store (alias bomb, interpolation,
    unregistered `_target_`) stops the command with the error naming the run and file."""
    try:
        return training_data_config(client, run_id)
    except registry.ConfigSecurityError:
        raise
    except ValueError as err:
        log.warning("ensemble run has no dataset config: %s", err)
        return None
