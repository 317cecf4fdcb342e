"""What a training run is, as the MLflow UI shows it: a name that tells runs apart (unique in
its experiment), a description summarising it (`mlflow.note.content`) and the data it was
trained and tested on (MLflow dataset inputs, the runs table's Dataset column)."""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from mlflow import MlflowClient
from mlflow.entities import Dataset, DatasetInput, InputTag, ViewType
from omegaconf import DictConfig, ListConfig, OmegaConf

from genre_lab.data.clips import AudioSplit
from genre_lab.tracking.stores import store_lock

#: MLflow's tag for the role of a dataset input (shown beside the dataset in the UI).
CONTEXT_TAG = "mlflow.data.context"
#: Data settings that say where the files are; a dataset without one is generated.
_LOCATION_KEYS = ("manifest", "root", "url")


def _location(cfg: DictConfig) -> str | None:
    for key in _LOCATION_KEYS:
        value = cfg.data.get(key)
        if value not in (None, "", "???"):
            return str(value)
    return None


def dataset_label(cfg: DictConfig, source_name: str) -> str:
    """`gtzan`, `csv:fold3` (the manifest's name), `folder:my_music` (the folder's name)."""
    location = _location(cfg)
    stem = Path(location).stem if location else ""
    return f"{source_name}:{stem}" if stem and stem != source_name else source_name


#: Settings that name a run in a few characters when the command line sets them: key -> the
#: prefix of their value (`trainer.max_epochs=2` -> `e2`, `model.optimizer.lr=3e-4` -> `lr3e-4`).
SHORT_KEYS = {
    "trainer.max_epochs": "e",
    "model.optimizer.lr": "lr",
    "model.optimizer.weight_decay": "wd",
    "data.batch_size": "bs",
    "data.chunk_seconds": "chunk",
    "model.label_smoothing": "ls",
    "features.augment.mixup_alpha": "mixup",
    "model.freeze": "freeze-",
    "trainer.precision": "",
}
#: Settings named by a flag alone when the command line sets them (their value is a run id or
#: a path): `init_from=...` -> `ft`.
FLAG_KEYS = {"init_from": "ft"}
#: Config groups whose option, when the command line picks one, is added to the name as is
#: (`trainer=gpu` -> `gpu`); model, features and data are the name's first parts.
NAMED_GROUPS = ("trainer", "experiment")
#: The groups whose option starts the name.
_NAME_GROUPS = ("model", "features", "data")
#: Already in the name (seed, split, fold, where the data is), or where and how visibly a run
#: runs rather than what it trains: never in the name nor in its config hash.
_NOT_NAMED = (
    "seed", "data.split_seed", "data.folds", "data.fold", "data.root", "data.manifest",
    "paths", "logger", "hydra", "resume", "heartbeat_seconds", "throughput_seconds", "test", "log_model",
    "callbacks.progress_bar", "callbacks.model_checkpoint.dirpath", "data.num_workers", "data.cache_dir",
    "trainer.enable_progress_bar", "trainer.log_every_n_steps", "trainer.enable_model_summary",
)
#: What a part of a run name may hold: config values are user input, and names end up in
#: MLflow filter strings (`run_name LIKE '...'`), URLs and markdown.
_UNSAFE = re.compile(r"[^A-Za-z0-9_.:+-]+")
_MAX_PART, _MAX_NAME = 40, 120


def safe_part(value: Any) -> str:
    """`value` as a run-name part: characters other than letters, digits and `_.:+-` become `_`,
    at most 40 characters."""
    return _UNSAFE.sub("_", str(value)).strip("_")[:_MAX_PART] or "_"


def short_number(value: Any) -> str:
    """3e-4 -> `3e-4`, 0.05 -> `0.05`, 2 -> `2`, True -> `True`; other values as text."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, float) and value != 0 and math.isfinite(value) and not 1e-2 <= abs(value) < 1e5:
        mantissa, exponent = f"{value:.2e}".split("e")
        return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _excluded(key: str) -> bool:
    return any(key == k or key.startswith(f"{k}.") for k in _NOT_NAMED)


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:6]


def override_parts(cfg: DictConfig, overrides: Iterable[str]) -> list[str]:
    """The name parts for what the command line changed from the defaults: `SHORT_KEYS` in short
    form, `NAMED_GROUPS` by their option, `FLAG_KEYS` as a flag, and `c<6 hex>` for every other
    change of what is trained (a data size, a backbone width): a digest of those settings'
    resolved values, so that the runs of one grid (`-m model=cnn,rnn,crnn ...`) share it."""
    parts: list[str] = []
    other: dict[str, Any] = {}
    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
    except HydraException:  # not Hydra's grammar: the text itself is the difference
        parsed, other = [], {"overrides": list(overrides)}
    for override in parsed:
        key = override.key_or_group
        if key in NAMED_GROUPS:
            parts.append(safe_part(override.value()))
        elif key in FLAG_KEYS and not override.is_delete() and OmegaConf.select(cfg, key, default=None):
            parts.append(FLAG_KEYS[key])
        elif key in SHORT_KEYS and not override.is_delete():
            value = OmegaConf.select(cfg, key, default=override.value())
            parts.append(safe_part(f"{SHORT_KEYS[key]}{short_number(value)}"))
        elif key not in _NAME_GROUPS and not _excluded(key):
            node = OmegaConf.select(cfg, key, default=None) if not override.is_delete() else "<deleted>"
            other[key] = OmegaConf.to_container(node, resolve=True) if isinstance(node, (DictConfig, ListConfig)) else node
    if other:
        parts.append(f"c{_digest(other)}")
    return list(dict.fromkeys(parts))


def run_name(cfg: DictConfig, source_name: str, overrides: Sequence[str] = ()) -> str:
    """`<model>-<features>-<dataset>-s<seed>`, plus `-split<k>` for a non-default split seed,
    `-fold<k>of<n>` under cross-validation (`data.folds`) and what the command line
    (`overrides`) changed from the defaults (`override_parts`: `-e2`, `-lr3e-4`, `-c1a2b3c`):
    the folds of a cross-validation, the seeds of a repeat and the variants of a grid differ
    by name. `unique_run_name` then tells identical configs apart."""
    parts = [safe_part(cfg.model.name), safe_part(cfg.features.name), safe_part(dataset_label(cfg, source_name)),
             f"s{safe_part(cfg.seed)}"]
    split_seed = cfg.data.get("split_seed")
    if split_seed not in (None, 0):
        parts.append(f"split{safe_part(split_seed)}")
    if cfg.data.get("folds"):
        parts.append(f"fold{safe_part(cfg.data.get('fold', 0))}of{safe_part(cfg.data.folds)}")
    parts += override_parts(cfg, overrides)
    name = "-".join(parts)
    return name if len(name) <= _MAX_NAME else f"{name[:_MAX_NAME - 8]}-c{_digest(name)}"


def unique_run_name(client: MlflowClient, experiment_id: str, name: str, run_id: str | None = None) -> str:
    """`name`, or `name-2`, `name-3`... when runs of the experiment (deleted ones too, which may
    be restored) already carry it. Call under `store_lock` so that runs started together do not
    pick the same suffix."""
    if _UNSAFE.search(name):  # run_name's output never has one: no quote can end the filter string
        raise ValueError(f"run name {name!r}: only letters, digits and _.:+- may be looked up")
    taken: set[str] = set()
    token = None
    while True:
        page = client.search_runs([experiment_id], filter_string=f"attributes.run_name LIKE '{name}%'",
                                  run_view_type=ViewType.ALL, max_results=1000, page_token=token)
        taken.update(r.info.run_name for r in page if r.info.run_id != run_id)
        token = page.token
        if not token:
            break
    if name not in taken:
        return name
    return next(f"{name}-{n}" for n in range(2, len(taken) + 3) if f"{name}-{n}" not in taken)


def split_digest(split: AudioSplit, classes: list[str], recipe: Mapping[str, Any] | None = None) -> str:
    """16 hex digits of SHA-256 over the split's sorted (clip id, label) list; for generated
    data also over its recipe (the same ids with another seed are other audio)."""
    rows = sorted(f"{clip}\t{classes[label]}" for clip, label in zip(split.ids, split.labels))
    h = hashlib.sha256("\n".join(rows).encode())
    if recipe is not None:
        h.update(json.dumps(recipe, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def dataset_inputs(cfg: DictConfig, source_name: str, splits: Mapping[str, AudioSplit], classes: list[str]) -> list[DatasetInput]:
    """One MLflow dataset input per split (context train/val/test): name, source, digest of
    the clip list, and a profile with every split's size."""
    location = _location(cfg)
    recipe = None
    if location is None:  # generated: the source settings are the data
        recipe = OmegaConf.to_container(cfg.data.source, resolve=True)
        source_type, source = "code", json.dumps({"generator": recipe.get("_target_"), "settings": recipe}, default=str)
    else:
        source_type, source = "local", json.dumps({"uri": location})
    sizes = {name: len(split) for name, split in splits.items()}
    skipped = {name: len(split.skipped) for name, split in splits.items()}
    name = dataset_label(cfg, source_name)
    out = []
    for split_name, split in splits.items():
        profile = json.dumps({"clips": len(split), "classes": len(classes), "split_sizes": sizes, "skipped": skipped})
        dataset = Dataset(name=name, digest=split_digest(split, classes, recipe), source_type=source_type,
                          source=source, profile=profile)
        out.append(DatasetInput(dataset, tags=[InputTag(CONTEXT_TAG, split_name)]))
    return out


#: MLflow's tag for a description (markdown): a run's on its page and in the runs table's
#: Description column, an experiment's in the banner atop its runs page.
NOTE_TAG = "mlflow.note.content"
#: The experiment view that shows the headline columns (`headline_view`): MLflow's own shared
#: view (what the UI's Share button writes), opened with `?viewStateShareKey=<key>`.
VIEW_KEY = "genre_lab"
VIEW_TAG = f"mlflow.sharedViewState.{VIEW_KEY}"
#: The runs table's columns in that view, and the metric it is sorted by (best first).
HEADLINE_METRICS = ("test/track_acc", "test/track_f1", "val/track_acc")
HEADLINE_PARAMS = ("trainer.max_epochs", "model.optimizer.lr", "data.batch_size")
#: Its charts: a bar per run for each headline metric, then curves per epoch.
HEADLINE_CURVES = ("val/track_acc", "val/loss", "train/loss")


def _chart(kind: str, metric: str) -> dict[str, Any]:
    card: dict[str, Any] = {"uuid": f"genre_lab-{kind.lower()}-{metric}", "type": kind, "metricKey": metric,
                            "metricSectionId": "genre_lab-headline", "runsCountToCompare": 10,
                            "isGenerated": False, "deleted": False}
    if kind == "LINE":
        card.update(xAxisKey="step", selectedXAxisMetricKey="", xAxisScaleType="linear", scaleType="linear",
                    lineSmoothness=0, range={}, yAxisKey="metric", yAxisExpressions=[], ignoreOutliers=False,
                    useGlobalXaxisKey=True, useGlobalLineSmoothing=True)
    return card


def headline_view() -> dict[str, Any]:
    """The runs table with the headline metrics and params next to the run names, best test
    track accuracy first, the run description after them; the chart view with the headline
    metrics' bars and the curves (MLflow 3.17's view-state fields, what its Share button saves)."""
    name, note = "attributes.`Run Name`", "attributes.`Description`"
    metrics = [f"metrics.`{m}`" for m in HEADLINE_METRICS]
    params = [f"params.`{p}`" for p in HEADLINE_PARAMS]
    return {
        "searchFilter": "", "orderByKey": metrics[0], "orderByAsc": False,
        "selectedColumns": [note, *metrics, *params],
        "columnOrder": [name, *metrics, *params, note],
        "columnWidths": {name: 400, note: 520, **dict.fromkeys(metrics, 115), **dict.fromkeys(params, 150)},
        "compareRunSections": [{"uuid": "genre_lab-headline", "name": "Headline", "display": True, "isReordered": False}],
        "compareRunCharts": [*(_chart("BAR", m) for m in HEADLINE_METRICS), *(_chart("LINE", m) for m in HEADLINE_CURVES)],
    }


def view_link(experiment_id: str) -> str:
    """The UI's address of the experiment's runs in the headline view, relative to the UI."""
    return f"#/experiments/{experiment_id}/runs?viewStateShareKey={VIEW_KEY}&workflowType=machine_learning"


def add_headline_view(client: MlflowClient, experiment_id: str) -> None:
    """Save the headline view in the experiment (again when genre_lab's view changed), and link
    it from the experiment's description, the banner atop its runs page, unless the experiment
    already has a description."""
    experiment = client.get_experiment(experiment_id)
    view = json.dumps(headline_view(), sort_keys=True)
    if experiment.tags.get(VIEW_TAG) != view:
        client.set_experiment_tag(experiment_id, VIEW_TAG, view)
    if not experiment.tags.get(NOTE_TAG):
        client.set_experiment_tag(experiment_id, NOTE_TAG, (
            f"[Headline view]({view_link(experiment_id)}): each run's test and validation scores, epochs, "
            "learning rate and batch size as columns, best first, and their charts."))


def run_summary(cfg: DictConfig, source_name: str, metrics: Mapping[str, float] | None = None) -> str:
    """One line saying what the run trained and, once tested, how well: the test scores first,
    since the runs table's Description column shows the line's beginning."""
    optimizer = cfg.model.get("optimizer") or {}
    setup = (f"{safe_part(cfg.model.name)} on {safe_part(cfg.features.name)}, "
             f"{safe_part(dataset_label(cfg, source_name))} data, seed {safe_part(cfg.seed)}, "
             f"{safe_part(cfg.trainer.get('max_epochs'))} epochs max, lr {short_number(optimizer.get('lr'))}")
    scores = [(label, (metrics or {}).get(key)) for label, key in
              (("test track acc", "test/track_acc"), ("test track F1", "test/track_f1"), ("val track acc", "val/track_acc"))]
    shown = [f"{label} {value:.3f}" for label, value in scores if isinstance(value, float) and math.isfinite(value)]
    return f"{', '.join(shown)}; {setup}" if shown else setup


def describe_run(client: MlflowClient, run_id: str, cfg: DictConfig, datamodule: Any,
                 overrides: Sequence[str] = ()) -> None:
    """Name a new run (unless the config or a sweep names it): `run_name`, made unique in its
    experiment; describe it (`run_summary`); add the headline view to its experiment; log its
    dataset inputs."""
    mlflow_cfg = cfg.logger.mlflow
    experiment_id = client.get_run(run_id).info.experiment_id
    if not mlflow_cfg.get("run_name") and not mlflow_cfg.get("run_id"):
        name = run_name(cfg, datamodule.source.name, overrides)
        with store_lock(client.tracking_uri):  # runs started together pick different suffixes
            client.set_tag(run_id, "mlflow.runName", unique_run_name(client, experiment_id, name, run_id))
    # First line: the summary; a note already there (a fine-tune's origin) follows it.
    earlier = client.get_run(run_id).data.tags.get(NOTE_TAG)
    summary = run_summary(cfg, datamodule.source.name)
    client.set_tag(run_id, NOTE_TAG, f"{summary}\n\n{earlier}" if earlier and earlier != summary else summary)
    add_headline_view(client, experiment_id)
    if cfg.data.get("folds"):  # `genre_lab.cli.report` pairs and aggregates runs by data.fold
        client.set_tag(run_id, "fold", f"{cfg.data.get('fold', 0)}/{cfg.data.folds}")
    if datamodule.splits:
        inputs = dataset_inputs(cfg, datamodule.source.name, datamodule.splits, datamodule.classes)
        # MLflow inserts each new dataset once per experiment: two runs started together on the
        # same data raced on that insert (UNIQUE constraint failed, seen with a kill -9/resume
        # test's two trainings), so the insert takes the store's lock.
        with store_lock(client.tracking_uri):
            client.log_inputs(run_id, datasets=inputs)


def describe_results(client: MlflowClient, run_id: str, cfg: DictConfig, source_name: str,
                     metrics: Mapping[str, float]) -> None:
    """The run's summary line again, with its test scores in front; a description someone
    edited in the UI meanwhile is kept."""
    current = client.get_run(run_id).data.tags.get(NOTE_TAG) or ""
    first, _, rest = current.partition("\n\n")
    if first in ("", run_summary(cfg, source_name)):
        scored = run_summary(cfg, source_name, metrics)
        client.set_tag(run_id, NOTE_TAG, f"{scored}\n\n{rest}" if rest else scored)
