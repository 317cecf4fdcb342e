"""The model's runtime contract, written and read in one place.

A `ModelSpec` says everything needed to run a trained model: the front end, the backbone, the
classes, and the audio it expects (sample rate, window length, evaluation hop). Training writes
it into every checkpoint (under `CONFIG_KEY`) and into the exported weights of the served model;
evaluation, tagging, serving and fine-tuning read it back through `ModelSpec.from_dict`, which
validates it field by field (every size within `genre_lab.models.bounds`' ranges, checked before
anything is allocated) and builds its parts only from `genre_lab.registry`'s tables. Files
are read with `torch.load(weights_only=True)`: a checkpoint is data, never code; and every
state dict read from a file passes `check_weights` (all weights finite).

Two kinds of model file are written and read here: one network (`{"state_dict": ...,
CONFIG_KEY: <spec>}`: a Lightning checkpoint or exported weights; `read`, `write`) and an
ensemble (`{ENSEMBLE_KEY: {classes, weights, members: [{source, run_id, CONFIG_KEY: <member
spec>, state_dict}]}}`; `parse_ensemble`, `write_ensemble`), each member spec and state dict
validated like a single network's, at most `MAX_ENSEMBLE_MEMBERS` of them. The network that
averages an ensemble's members is `genre_lab.models.ensemble.EnsembleClassifier`.

Two weight layouts, one remap (`network_keys`, `lightning_keys`):

- model files (exported weights, the logged model's `weights.pt`, pretrained networks,
  ensemble members) hold the inference network's keys (`genre_lab.models.network.GenreNet`:
  `frontend.*`, `backbone.*`, `head.*`), whichever version wrote them;
- Lightning checkpoints hold the LightningModule's, which holds that network as `net`
  (`net.frontend.*`, ...). Checkpoints written before it did carry the bare keys:
  `GenreClassifier.on_load_checkpoint` adds the prefix to them (`lightning_keys`), and `parse`
  drops it from every checkpoint (`network_keys`), so whatever reads weights through here
  gets the network's layout from files of any version.
"""

from __future__ import annotations

import math
import pickle
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from genre_lab import registry
from genre_lab.audio.windows import TRACK_POOLING
from genre_lab.models import bounds
from genre_lab.features.frontend import settings_for_device
from genre_lab.registry import ConfigSecurityError

#: Key under which a checkpoint carries the plain-dict spec needed to rebuild the model, so
#: checkpoints load weights-only and without a Hydra run directory.
CONFIG_KEY = "genre_lab"
#: Prefix of the network's weights in a Lightning checkpoint (`GenreClassifier.net`).
NET_PREFIX = "net."
#: Bounds on what a spec may declare (a crafted file could otherwise ask for absurd buffers);
#: every size and its reason: `genre_lab.models.bounds`.
SAMPLE_RATES = (int(bounds.SAMPLE_RATE.low), int(bounds.SAMPLE_RATE.high))
MAX_CHUNK_SECONDS = bounds.CHUNK_SECONDS.high
MAX_CLASSES = bounds.MAX_CLASSES
#: What the head predicts: one class per clip (softmax) or any set of tags (independent
#: sigmoids, `task=multilabel`). Specs written before the task existed are `multiclass`.
TASKS = ("multiclass", "multilabel")
#: Artifact path of the pyfunc model in a run (`runs:/<run id>/model`), and the key of its
#: weights file (this module's format) among the model folder's artifacts.
PYFUNC_PATH = "model"
WEIGHTS_KEY = "weights"
#: Where a training (or ensemble) run keeps its best model file among its artifacts.
RUN_CHECKPOINT = "checkpoints/best.ckpt"
#: Key of an ensemble file (a single network's file has `CONFIG_KEY` instead), and how many
#: members one may hold (an ensemble needs at least 2).
ENSEMBLE_KEY = "genre_lab_ensemble"
MAX_ENSEMBLE_MEMBERS = 64


class CheckpointError(ValueError):
    """A file that is not a usable genre_lab model; the message names the file and the field."""


@dataclass(frozen=True)
class ModelSpec:
    """What a trained model is; `features` and `model` are the Hydra groups as plain data."""

    features: dict[str, Any]
    model: dict[str, Any]
    classes: tuple[str, ...]
    sample_rate: int
    chunk_seconds: float
    eval_hop_seconds: float
    task: str = "multiclass"

    @property
    def multilabel(self) -> bool:
        return self.task == "multilabel"

    @property
    def track_average(self) -> str:
        """How window outputs become a track's (`genre_lab.audio.windows.TRACK_POOLING`):
        `probabilities` (every trained model) or `logits` (a linear probe's network)."""
        return str(self.model.get("track_average", "probabilities"))

    # -- reading ----------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, config: Any, source: str = "checkpoint") -> ModelSpec:
        """Validate a spec read from a file (or made by `to_dict`); errors name `source` and the field."""
        try:
            return cls._parse(registry.plain(config, ""))
        except ConfigSecurityError as err:
            raise CheckpointError(f"cannot rebuild the model from {source}: {err}") from err

    @classmethod
    def from_config(cls, cfg: DictConfig | Mapping[str, Any], classes: list[str]) -> ModelSpec:
        """From a composed training config (features, model and data groups)."""
        cfg = OmegaConf.create(dict(cfg)) if not isinstance(cfg, DictConfig) else cfg
        data = cfg.get("data") or {}
        resolved = {
            "features": OmegaConf.to_container(cfg.features, resolve=True),
            "model": OmegaConf.to_container(cfg.model, resolve=True),
            "data": {k: data.get(k) for k in ("sample_rate", "chunk_seconds", "eval_hop_seconds")},
            "classes": list(classes),
            "task": cfg.get("task", "multiclass"),
        }
        return cls._parse(registry.plain(resolved, ""))

    @classmethod
    def _parse(cls, config: Any) -> ModelSpec:
        if not isinstance(config, dict):
            raise ConfigSecurityError("the model spec is not a mapping")
        registry.check_targets(config)  # nothing anywhere in the spec may name an unregistered class
        features, model, data = (_mapping(config, key) for key in ("features", "model", "data"))
        classes = config.get("classes")
        if (not isinstance(classes, list) or not classes or len(classes) > MAX_CLASSES
                or not all(isinstance(c, str) and c for c in classes) or len(set(classes)) != len(classes)):
            raise ConfigSecurityError("classes must be a non-empty list of distinct names")
        for group, key, table in (("features", "frontend", registry.FRONTENDS), ("model", "backbone", registry.BACKBONES),
                                  ("model", "optimizer", registry.OPTIMIZERS), ("model", "scheduler", registry.SCHEDULERS)):
            node = (features if group == "features" else model).get(key)
            registry.check_targets(node, allowed=table, where=f"{group}.{key}")
        for group, key in (("features", "frontend"), ("model", "backbone")):
            node = (features if group == "features" else model).get(key)
            if not isinstance(node, dict) or "_target_" not in node:
                raise ConfigSecurityError(f"{group}.{key} must name a registered class with _target_")
        rate = _number(data, "sample_rate", int, *SAMPLE_RATES)
        chunk = _number(data, "chunk_seconds", float, bounds.CHUNK_SECONDS.low, bounds.CHUNK_SECONDS.high)
        hop = _number(data, "eval_hop_seconds", float, bounds.EVAL_HOP_SECONDS.low, bounds.EVAL_HOP_SECONDS.high,
                      default=chunk)
        frontend_rate = features["frontend"].get("sample_rate", rate)
        if frontend_rate != rate:
            raise ConfigSecurityError(f"features.frontend.sample_rate={frontend_rate} differs from data.sample_rate={rate}")
        task = config.get("task", "multiclass")
        if task not in TASKS:
            raise ConfigSecurityError(f"task={task!r} must be one of {', '.join(TASKS)}")
        average = model.get("track_average", "probabilities")
        if not isinstance(average, str) or average not in TRACK_POOLING or (average == "logits" and task != "multiclass"):
            raise ConfigSecurityError(f"model.track_average={average!r} must be one of {', '.join(TRACK_POOLING)} "
                                      "(logits: multiclass models only)")
        # Every size in range, and what they add up to, before anything is built from them.
        bounds.check(features, model, rate, chunk, len(classes))
        return cls(features, model, tuple(classes), rate, chunk, hop, task)

    # -- writing ----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The plain dict stored under `CONFIG_KEY` (the same layout every genre_lab checkpoint has)."""
        return {
            "features": self.features,
            "model": self.model,
            "data": {"sample_rate": self.sample_rate, "chunk_seconds": self.chunk_seconds,
                     "eval_hop_seconds": self.eval_hop_seconds},
            "classes": list(self.classes),
            "task": self.task,
        }

    # -- building ---------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return str(self.model.get("name", "?"))

    @property
    def features_name(self) -> str:
        return str(self.features.get("name", "?"))

    def build_frontend(self, device: str | None = None) -> nn.Module:
        """The front end; for one `device` only (`features.frontend.settings_for_device`) when given."""
        node = self.features["frontend"]
        if device is not None and node.get("_target_") == "genre_lab.features.FrontEnd":
            node = settings_for_device(node, device)
        return registry.build(node, registry.FRONTENDS, "features.frontend")

    def build_backbone(self, n_bins: int) -> nn.Module:
        return registry.build(self.model["backbone"], registry.BACKBONES, "model.backbone", n_bins=n_bins)

    def optimizer_factory(self) -> Any:
        """The optimizer, waiting for its parameters (`backbone_lr_scale` is genre_lab's own
        setting, read by the LightningModule, not the optimizer's)."""
        node = dict(self.model.get("optimizer") or {"_target_": "torch.optim.AdamW", "_partial_": True})
        node.pop("backbone_lr_scale", None)
        return registry.build({**node, "_partial_": True}, registry.OPTIMIZERS, "model.optimizer")

    def scheduler_factory(self) -> Any | None:
        node = self.model.get("scheduler")
        return registry.build({**node, "_partial_": True}, registry.SCHEDULERS, "model.scheduler") if node else None


def _mapping(config: dict[str, Any], key: str) -> dict[str, Any]:
    value = config.get(key)
    if not isinstance(value, dict):
        raise ConfigSecurityError(f"{key} must be a mapping")
    return value


def _number(data: dict[str, Any], key: str, kind: type, low: float, high: float, default: Any = None) -> Any:
    value = data.get(key, default)
    if value is None:
        value = default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not low <= value <= high:
        raise ConfigSecurityError(f"data.{key}={value!r} must be a number in [{low:g}, {high:g}]")
    if kind is int and value != int(value):
        raise ConfigSecurityError(f"data.{key}={value!r} must be a whole number")
    return kind(value)


def load_file(path: str | Path) -> Any:
    """A model file's contents, weights-only: tensors and plain data, never pickled code."""
    try:
        return torch.load(Path(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        # torch's own message is several paragraphs of advice to load the file unsafely.
        raise CheckpointError(f"cannot load checkpoint {path}: it holds pickled objects other than tensors and "
                              "plain data (refused without running them)") from err
    except Exception as err:  # torch raises many types (RuntimeError, EOFError...)
        raise CheckpointError(f"cannot load checkpoint {path}: {type(err).__name__}: {' '.join(str(err).split())}") from err


def parse(state: Any, path: str | Path) -> tuple[ModelSpec, dict[str, torch.Tensor]]:
    """(spec, state dict) of a loaded Lightning checkpoint or exported weights file: the spec
    validated (`ModelSpec.from_dict`), the weights finite (`check_weights`)."""
    if not isinstance(state, dict) or CONFIG_KEY not in state or not isinstance(state.get("state_dict"), dict):
        raise CheckpointError(f"{path} is not a genre_lab checkpoint (no '{CONFIG_KEY}' config or 'state_dict')")
    weights = state["state_dict"]
    spec = ModelSpec.from_dict(state[CONFIG_KEY], f"checkpoint {path}")
    check_weights(weights, path)
    return spec, network_keys(weights)


def network_keys(weights: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`weights` in the inference network's layout: a Lightning checkpoint's `net.` prefix
    dropped; model files and checkpoints of earlier versions have none (see above)."""
    return {k.removeprefix(NET_PREFIX): v for k, v in weights.items()}


def lightning_keys(weights: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`weights` in the LightningModule's layout: a state dict with no key under `net.` (written
    before the module held its network, when every key was the network's) gets the prefix on
    each key; one that has them (this version's) is returned as it is."""
    if any(k.startswith(NET_PREFIX) for k in weights):
        return dict(weights)
    return {NET_PREFIX + k: v for k, v in weights.items()}


def check_weights(weights: Any, source: str | Path) -> None:
    """Raise CheckpointError naming `source` unless `weights` maps names to tensors whose
    floating-point values are all finite. The one check every load of weights from a file
    goes through (evaluate, predict, serving, `init_from`, ensemble members, `resume`): a NaN
    or infinite weight (a damaged file or a diverged run) would otherwise load silently and
    score chance, or train on to a NaN loss, and be logged as a working model."""
    if not isinstance(weights, Mapping) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                                   for k, v in weights.items()):
        raise CheckpointError(f"{source}: state_dict must map names to tensors")
    for name, tensor in weights.items():
        if (tensor.is_floating_point() or tensor.is_complex()) and not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(f"{source}: weight '{name}' holds NaN or infinite values "
                                  "(a damaged file or a diverged run); refusing to load it")


def read(path: str | Path) -> tuple[ModelSpec, dict[str, torch.Tensor]]:
    """(spec, state dict) of a Lightning checkpoint or exported weights file, weights-only."""
    return parse(load_file(path), path)


def write(path: str | Path, spec: ModelSpec, state_dict: Mapping[str, torch.Tensor]) -> None:
    """Exported weights: the state dict and the spec, nothing else (no optimiser state)."""
    torch.save({"state_dict": dict(state_dict), CONFIG_KEY: spec.to_dict()}, Path(path))


# -- ensemble files ---------------------------------------------------------------------------
@dataclass(frozen=True)
class EnsembleMember:
    """One network of an ensemble file: its spec and weights, and the source (path, run id or
    URI) and MLflow run it was loaded from."""

    spec: ModelSpec
    weights: Mapping[str, torch.Tensor]
    source: str
    run_id: str | None = None


def is_ensemble(state: Any) -> bool:
    """Whether a loaded model file (`load_file`) is an ensemble rather than one network."""
    return isinstance(state, dict) and ENSEMBLE_KEY in state


def parse_ensemble(state: Any, path: str | Path) -> tuple[list[EnsembleMember], list[float]]:
    """(members, member weights) of a loaded ensemble file: 2 to `MAX_ENSEMBLE_MEMBERS`
    members, each spec validated (`ModelSpec.from_dict`) and each state dict finite
    (`check_weights`), the weights a list of numbers (their range is the ensemble's to check)."""
    body = state.get(ENSEMBLE_KEY) if isinstance(state, dict) else None
    if not isinstance(body, dict) or not isinstance(body.get("members"), list):
        raise CheckpointError(f"{path} is not a genre_lab ensemble (no members list)")
    entries = body["members"]
    if not 2 <= len(entries) <= MAX_ENSEMBLE_MEMBERS:
        raise CheckpointError(f"{path}: an ensemble needs 2 to {MAX_ENSEMBLE_MEMBERS} members, got {len(entries)}")
    members = [_ensemble_member(entry, path, i) for i, entry in enumerate(entries)]
    weights = body.get("weights")
    if not (isinstance(weights, list) and all(isinstance(w, (int, float)) for w in weights)):
        raise CheckpointError(f"{path}: ensemble weights must be a list of numbers")
    return members, [float(w) for w in weights]


def _ensemble_member(entry: Any, path: str | Path, index: int) -> EnsembleMember:
    if not isinstance(entry, dict) or not isinstance(entry.get("state_dict"), dict):
        raise CheckpointError(f"{path}: member {index} has no state_dict")
    where = f"member {index} of ensemble {path}"
    spec = ModelSpec.from_dict(entry.get(CONFIG_KEY), where)
    check_weights(entry["state_dict"], where)
    source, run_id = entry.get("source"), entry.get("run_id")
    return EnsembleMember(spec, entry["state_dict"], source if isinstance(source, str) else f"member {index}",
                          run_id if isinstance(run_id, str) else None)


def write_ensemble(path: str | Path, members: Sequence[EnsembleMember], weights: Sequence[float]) -> None:
    """An ensemble file: every member's spec and state dict, its source and run, and the
    member weights; the classes in the first member's order (the ensemble's)."""
    entries = [{"source": m.source, "run_id": m.run_id, CONFIG_KEY: m.spec.to_dict(), "state_dict": dict(m.weights)}
               for m in members]
    torch.save({ENSEMBLE_KEY: {"classes": list(members[0].spec.classes), "weights": [float(w) for w in weights],
                               "members": entries}}, Path(path))
