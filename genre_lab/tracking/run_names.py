"""What a training run is, as the MLflow UI shows it: a name that tells runs apart and the
data it was trained and tested on (MLflow dataset inputs, the runs table's Dataset column)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.entities import Dataset, DatasetInput, InputTag
from omegaconf import DictConfig, OmegaConf

from genre_lab.data.clips import AudioSplit
from genre_lab.tracking.stores import store_lock

#: MLflow's tag for the role of a dataset input (shown beside the dataset in the UI).
CONTEXT_TAG = "mlflow.data.context"
#: Data settings that say where the files are; a dataset without one is generated.
_LOCATION_KEYS = ("manifest", "root")


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


def run_name(cfg: DictConfig, source_name: str) -> str:
    """`<model>-<features>-<dataset>-s<seed>`, plus `-split<k>` for a non-default split seed and
    `-fold<k>of<n>` under cross-validation (`data.folds`): the folds of a cross-validation and
    the seeds of a repeat differ by name."""
    parts = [str(cfg.model.name), str(cfg.features.name), dataset_label(cfg, source_name), f"s{cfg.seed}"]
    split_seed = cfg.data.get("split_seed")
    if split_seed not in (None, 0):
        parts.append(f"split{split_seed}")
    if cfg.data.get("folds"):
        parts.append(f"fold{cfg.data.get('fold', 0)}of{cfg.data.folds}")
    return "-".join(parts)


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


def describe_run(client: MlflowClient, run_id: str, cfg: DictConfig, datamodule: Any) -> None:
    """Name a new run (unless the config or a sweep names it) and log its dataset inputs."""
    mlflow_cfg = cfg.logger.mlflow
    if not mlflow_cfg.get("run_name") and not mlflow_cfg.get("run_id"):
        client.set_tag(run_id, "mlflow.runName", run_name(cfg, datamodule.source.name))
    if cfg.data.get("folds"):  # `genre-lab report` pairs and aggregates runs by data.fold
        client.set_tag(run_id, "fold", f"{cfg.data.get('fold', 0)}/{cfg.data.folds}")
    if datamodule.splits:
        inputs = dataset_inputs(cfg, datamodule.source.name, datamodule.splits, datamodule.classes)
        # MLflow inserts each new dataset once per experiment: two runs started together on the
        # same data raced on that insert (UNIQUE constraint failed, seen with a kill -9/resume
        # test's two trainings), so the insert takes the store's lock.
        with store_lock(client.tracking_uri):
            client.log_inputs(run_id, datasets=inputs)
