"""`python -m genre_lab.ensemble MODEL MODEL [MODEL...]` or `--from-experiment NAME --top K`:
combine trained models into one, logged as an MLflow run with its own servable model.

MODEL is anything `genre_lab.cli.predict` takes (run id, checkpoint, `models:/` or `runs:/` URI).
The ensemble averages the members' window probabilities (uniformly, or weighted by each
member's validation score with `--weights val`). The run (tag `run_type=ensemble`) holds the
ensemble as `checkpoints/best.ckpt` and as the pyfunc `model`, the members as params and a
lineage tag, and the first member's dataset config, so `genre_lab.cli.evaluate run=<id>`,
`genre_lab.cli.predict <id>`, `Tagger.load(<id>)` and `mlflow models serve` take it like one model.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml
from mlflow import MlflowClient
from rich.console import Console

from genre_lab import registry
from genre_lab.tracking import mlflow_runs as tracking
from genre_lab.models.model_file import RUN_CHECKPOINT
from genre_lab.cli.options import add_tracking_uri_option
from genre_lab.inference.evaluation import training_data_config
from genre_lab.models.mlflow_model import log_tagger_model
from genre_lab.models.ensemble import EnsembleClassifier, EnsembleError
from genre_lab.models.loading import ModelSourceError, load_model, resolve
from genre_lab.training.quiet import quiet_third_party

log = logging.getLogger(__name__)

#: Runs that are not trained models and never become members.
_NOT_MODELS = ("evaluation", "ensemble", "report", "sweep")


@dataclass
class EnsembleResult:
    run_id: str
    members: list[str]
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
            if metric in r.data.metrics and r.data.tags.get("run_type") not in _NOT_MODELS
            and any(a.path == RUN_CHECKPOINT for a in client.list_artifacts(r.info.run_id, "checkpoints"))]
    if len(best) < 2:
        raise ValueError(f"--from-experiment '{experiment}': {len(best)} finished training run(s) with metric "
                         f"'{metric}' and a checkpoint; an ensemble needs at least 2")
    return best[:k]


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
    model = EnsembleClassifier(members, weights, [s.spec for s in sources], [s.run_id for s in sources])
    first_run = next((s.run_id for s in sources if s.run_id), None)
    if experiment:
        experiment_id = tracking.experiment_id(experiment, tracking_uri)
    elif first_run:
        experiment_id = client.get_run(first_run).info.experiment_id
    else:
        experiment_id = tracking.experiment_id("genre_lab", tracking_uri)
    names = sorted({m.spec.name for m in members})
    tags = {"run_type": "ensemble", "model": "ensemble", "features": "mixed",
            "genre_lab.members": json.dumps([s.run_id or s.spec for s in sources]),
            "mlflow.note.content": "Ensemble of " + ", ".join(f"`{s.run_id or s.spec}`" for s in sources),
            **tracking.source_tags()}
    if first_run:
        tags["dataset"] = client.get_run(first_run).data.tags.get("dataset", "?")
    run_name = run_name or f"ensemble-{len(members)}x-{'+'.join(names)}"
    data = _member_data_config(client, first_run) if first_run else None
    with tracking.tracked_run(client, experiment_id, run_name, tags) as run_id:
        params = {f"member{i}": s.run_id or s.spec for i, s in enumerate(sources)}
        params.update({f"member{i}.weight": f"{w:.6g}" for i, w in enumerate(model.weights.tolist())})
        params["members"] = len(members)
        tracking.log_params(client, run_id, params)
        config = {"ensemble": {"members": [s.run_id or s.spec for s in sources], "weights": model.weights.tolist()}}
        if data is not None:
            config["data"] = data
        client.log_text(run_id, yaml.safe_dump(config, sort_keys=False), "config.yaml")
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / Path(RUN_CHECKPOINT).name
            model.save(path)
            client.log_artifact(run_id, str(path), str(Path(RUN_CHECKPOINT).parent))
            log_tagger_model(client, run_id, model)
        return EnsembleResult(run_id, [s.spec for s in sources], [s.run_id for s in sources], model.weights.tolist())


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


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m genre_lab.ensemble", description=__doc__.splitlines()[0])
    p.add_argument("models", nargs="*", metavar="MODEL", help="run ids, checkpoints, models:/ or runs:/ URIs")
    p.add_argument("--from-experiment", metavar="NAME", help="take the best runs of this MLflow experiment")
    p.add_argument("--top", type=int, default=3, metavar="K", help="how many runs --from-experiment takes (default 3)")
    p.add_argument("--metric", default="val/track_acc", help="ranks runs for --from-experiment and --weights val")
    p.add_argument("--weights", choices=("uniform", "val"), default="uniform",
                   help="uniform mean, or weighted by each member's --metric")
    p.add_argument("--experiment", help="MLflow experiment of the ensemble run (default: the first member's)")
    p.add_argument("--run-name")
    add_tracking_uri_option(p)
    return p


def main(argv: list[str] | None = None) -> int:
    a = parser().parse_args(argv)
    quiet_third_party()  # MLflow's download bars for every member, its INFO lines
    console = Console(stderr=True)
    uri = a.tracking_uri or tracking.tracking_uri()
    try:
        if a.from_experiment:
            if a.models:
                raise ValueError("give MODELs or --from-experiment, not both")
            if a.top < 2:
                raise ValueError(f"--top must be >= 2, got {a.top}")
            ranked = top_runs(tracking.open_client(uri), a.from_experiment, a.top, a.metric)
            models, scores = [r for r, _ in ranked], [s for _, s in ranked]
        else:
            models, scores = list(a.models), None
        weights = None
        if a.weights == "val":
            if scores is None:
                client = tracking.open_client(uri)
                scores = []
                for spec in models:
                    run_id = resolve(spec, uri).run_id
                    value = client.get_run(run_id).data.metrics.get(a.metric) if run_id else None
                    if value is None:
                        raise ValueError(f"--weights val: member '{spec}' has no MLflow metric '{a.metric}'")
                    scores.append(value)
            weights = scores
        result = build_ensemble(models, uri, weights, a.experiment, a.run_name)
    except (ValueError, EnsembleError) as err:
        console.print(f"[red]error:[/red] {err}", highlight=False)
        return 2
    Console().print(f"ensemble of {len(result.members)} members: MLflow run {result.run_id}", highlight=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
