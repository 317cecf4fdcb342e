"""Every class a genre_lab config may name, and the one way configs become objects.

Configs name classes by `_target_`. Hydra would import any dotted path it is given, so a
checkpoint, a run's logged `config.yaml` or a model folder (all of them files someone else may
have written) could call any function: `genre_lab.features.frontend.torch.load` walked past the
old prefix check to unpickle a payload. Here a `_target_` is looked up by its exact name in an
explicit table of genre_lab components (`BACKBONES`, `FRONTENDS`, `DATA`, ...; optimizers and
schedulers from a fixed set), every setting must be plain data (numbers, strings, booleans,
lists, string-keyed mappings) accepted by the class's signature, and no interpolation
(`${...}`, `oc.env` or any resolver) is ever evaluated on a config that came from a file.

Code (not files) extends the tables: `register("backbone", "mypkg.MyNet", MyNet)`.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from typing import Any

import torch
import yaml
from omegaconf import DictConfig, ListConfig, OmegaConf

from genre_lab import models
from genre_lab.features import FrontEnd, HarmonicFilterbank, MusicnnFrontEnd, Waveform


class ConfigSecurityError(ValueError):
    """A config names something it may not, or holds something that is not plain data; the
    message names the setting."""


FRONTENDS: dict[str, Callable[..., Any]] = {
    "genre_lab.features.FrontEnd": FrontEnd, "genre_lab.features.MusicnnFrontEnd": MusicnnFrontEnd,
    "genre_lab.features.Waveform": Waveform, "genre_lab.features.HarmonicFilterbank": HarmonicFilterbank,
}
BACKBONES: dict[str, Callable[..., Any]] = {f"genre_lab.models.{name}": getattr(models, name) for name in models.__all__}
OPTIMIZERS: dict[str, Callable[..., Any]] = {
    f"torch.optim.{name}": getattr(torch.optim, name) for name in ("Adam", "AdamW", "SGD", "RMSprop")
}
SCHEDULERS: dict[str, Callable[..., Any]] = {
    f"torch.optim.lr_scheduler.{name}": getattr(torch.optim.lr_scheduler, name)
    for name in ("CosineAnnealingLR", "CosineAnnealingWarmRestarts", "StepLR", "MultiStepLR", "ExponentialLR", "OneCycleLR")
}


class LazyTable(MutableMapping[str, Callable[..., Any]]):
    """A table whose names are known up front and whose classes are imported when first
    looked up. Checking a model file's targets needs only the names: tagging never imports
    Lightning or the dataset classes (~4 s of the predict command's start-up, measured with
    `python -X importtime`)."""

    def __init__(self, names: Iterator[str] | tuple[str, ...], load: Callable[[], Mapping[str, Callable[..., Any]]]) -> None:
        self._names, self._load = tuple(names), load
        self._added: dict[str, Callable[..., Any]] = {}

    def __getitem__(self, name: str) -> Callable[..., Any]:
        if name in self._added:
            return self._added[name]
        if name not in self._names:
            raise KeyError(name)
        return self._load()[name]

    def __setitem__(self, name: str, cls: Callable[..., Any]) -> None:
        self._added[name] = cls

    def __delitem__(self, name: str) -> None:
        del self._added[name]

    def __iter__(self) -> Iterator[str]:
        yield from self._names
        yield from (n for n in self._added if n not in self._names)

    def __len__(self) -> int:
        return len(set(self._names) | set(self._added))


_DATA_NAMES = ("GenreDataModule", "SyntheticSource", "FolderSource", "GTZANSource", "ManifestSource",
               "FMASource", "MTATSource", "JamendoSource", "ShardSource", "ShardDataModule")
_CALLBACKS = ("ModelCheckpoint", "EarlyStopping", "LearningRateMonitor", "RichProgressBar", "TQDMProgressBar")


@functools.cache
def _data_classes() -> dict[str, Callable[..., Any]]:
    from genre_lab import data

    return {f"genre_lab.data.{name}": getattr(data, name) for name in _DATA_NAMES}


@functools.cache
def _lightning_classes() -> dict[str, Callable[..., Any]]:
    import lightning.pytorch as pl
    from lightning.pytorch import callbacks as pl_callbacks
    from lightning.pytorch import loggers as pl_loggers

    return {
        "lightning.pytorch.Trainer": pl.Trainer,
        "lightning.pytorch.loggers.MLFlowLogger": pl_loggers.MLFlowLogger,
        **{f"lightning.pytorch.callbacks.{name}": getattr(pl_callbacks, name) for name in _CALLBACKS},
    }


DATA = LazyTable((f"genre_lab.data.{name}" for name in _DATA_NAMES), _data_classes)
#: Lightning's own objects, for run configs (trainer, callbacks, logger) read back on resume.
LIGHTNING = LazyTable(
    ("lightning.pytorch.Trainer", "lightning.pytorch.loggers.MLFlowLogger",
     *(f"lightning.pytorch.callbacks.{name}" for name in _CALLBACKS)),
    _lightning_classes,
)
_TABLES = {
    "frontend": FRONTENDS, "backbone": BACKBONES, "optimizer": OPTIMIZERS, "scheduler": SCHEDULERS,
    "data": DATA, "lightning": LIGHTNING,
}


def register(kind: str, name: str, cls: Callable[..., Any]) -> None:
    """Allow `_target_: <name>` to build `cls` in configs of `kind` (backbone, frontend, ...)."""
    if kind not in _TABLES:
        raise ValueError(f"kind must be one of {sorted(_TABLES)}, got '{kind}'")
    _TABLES[kind][name] = cls


def all_targets() -> dict[str, Any]:
    """Every registered name (the values of lazy tables are not imported: only names are checked)."""
    return {name: table for table in _TABLES.values() for name in table}


#: The only underscore keys a node may carry: what to build and whether to build it later.
_NODE_KEYS = ("_target_", "_partial_")
#: Longest string accepted in a config from a file (paths, names); bounds what a crafted file
#: can make us hold or log.
_MAX_TEXT = 4096


#: Most containers and leaves one config from a file may hold, and how deep it may nest. A
#: real training config has ~300 leaves and depth < 8; the budget makes a YAML alias bomb or a
#: checkpoint whose lists share references (10^10 leaves from a few hundred bytes) fail at once
#: instead of expanding.
MAX_NODES = 50_000
#: Largest YAML text read from a store (a run's config.yaml is ~10 KB).
MAX_YAML_BYTES = 1_000_000
MAX_DEPTH = 32


def plain(value: Any, where: str) -> Any:
    """`value` as plain Python data (dict/list/str/number/bool/None), or ConfigSecurityError
    naming `where`. Strings holding `${` are refused: OmegaConf would evaluate them
    (`${oc.env:SECRET}` reads the environment) the moment the config is used. A container
    reached twice (a YAML alias, a shared reference in a pickle), more than `MAX_NODES` nodes
    or deeper than `MAX_DEPTH` levels is refused before it is expanded."""
    if isinstance(value, (DictConfig, ListConfig)):
        # Unresolved on purpose: an interpolation stays a string and is refused below.
        value = OmegaConf.to_container(value, resolve=False)
    return _plain(value, where, _Budget(), 0)


class _Budget:
    """Nodes seen so far, and the containers already visited (by identity)."""

    def __init__(self) -> None:
        self.nodes = 0
        self.containers: set[int] = set()

    def visit(self, value: Any, where: str, depth: int) -> None:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise ConfigSecurityError(f"{where or 'the config'}: more than {MAX_NODES} settings; refusing to expand it")
        if depth > MAX_DEPTH:
            raise ConfigSecurityError(f"{where}: nested deeper than {MAX_DEPTH} levels")
        if isinstance(value, (list, tuple, Mapping)) and len(value):  # empty ones expand to nothing
            if id(value) in self.containers:
                raise ConfigSecurityError(f"{where}: a shared reference (YAML alias) is not allowed in a config from a file")
            self.containers.add(id(value))


def _plain(value: Any, where: str, budget: _Budget, depth: int) -> Any:
    budget.visit(value, where, depth)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ConfigSecurityError(f"{where}={value!r}: only finite numbers are allowed")
        return value
    if isinstance(value, str):
        if "${" in value:
            raise ConfigSecurityError(f"{where}={value!r}: interpolations are never evaluated in a config read from a file")
        if len(value) > _MAX_TEXT:
            raise ConfigSecurityError(f"{where}: string of {len(value)} characters is too long")
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v, f"{where}[{i}]", budget, depth + 1) for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ConfigSecurityError(f"{where}: key {key!r} is not a string")
            out[key] = _plain(item, f"{where}.{key}" if where else key, budget, depth + 1)
        return out
    raise ConfigSecurityError(f"{where}: a {type(value).__name__} is not plain config data")


def check_targets(*configs: Any, allowed: Mapping[str, Any] | None = None, where: str = "") -> None:
    """Raise ConfigSecurityError naming any `_target_` that is not exactly one of `allowed`
    (default: every registered class), or any other underscore key Hydra would act on."""
    allowed = all_targets() if allowed is None else allowed

    def walk(node: Any, path: str) -> None:
        if isinstance(node, (Mapping, DictConfig)):
            for key, value in node.items():
                here = f"{path}.{key}" if path else str(key)
                if key == "_target_" and value not in allowed:
                    names = ", ".join(sorted(allowed)) if len(allowed) <= 8 else "genre_lab.registry's tables"
                    raise ConfigSecurityError(f"{here}={value!r} is not allowed here (allowed: {names})")
                if isinstance(key, str) and key.startswith("_") and key.endswith("_") and key not in _NODE_KEYS:
                    raise ConfigSecurityError(f"{here} is not allowed in a genre_lab config")
                walk(value, here)
        elif isinstance(node, (list, tuple, ListConfig)):
            for i, value in enumerate(node):
                walk(value, f"{path}[{i}]")

    for cfg in configs:
        walk(cfg, where)


def build(node: Any, allowed: Mapping[str, Callable[..., Any]], where: str, **extra: Any) -> Any:
    """Instantiate `{_target_: <name>, _partial_: bool, **settings}` with `allowed[name]`.

    Nested nodes with a `_target_` are built first, from the same table (as Hydra does). Every
    setting must be plain data and a parameter of the class; `extra` are keyword arguments
    the caller adds (not from the config)."""
    spec = plain(node, where)
    check_targets(spec, allowed=allowed, where=where)
    return _build(spec, allowed, where, extra)


def _build(spec: Any, allowed: Mapping[str, Callable[..., Any]], where: str, extra: Mapping[str, Any]) -> Any:
    if not isinstance(spec, dict) or "_target_" not in spec:
        raise ConfigSecurityError(f"{where} must be a mapping with a _target_")
    settings = {k: v for k, v in spec.items() if k not in _NODE_KEYS}
    cls = allowed[spec["_target_"]]
    kwargs = {
        key: _build(value, allowed, f"{where}.{key}", {}) if isinstance(value, dict) and "_target_" in value else value
        for key, value in settings.items()
    }
    _check_signature(cls, {**kwargs, **extra}, where, spec["_target_"], partial=bool(spec.get("_partial_")))
    if spec.get("_partial_"):
        return functools.partial(cls, **kwargs, **extra)
    return cls(**kwargs, **extra)


def _check_signature(cls: Callable[..., Any], kwargs: Mapping[str, Any], where: str, name: str, partial: bool) -> None:
    try:
        signature = inspect.signature(cls)
    except (TypeError, ValueError):  # builtins without a signature: nothing to check against
        return
    try:
        if partial:
            signature.bind_partial(**kwargs)
        else:
            signature.bind(**kwargs)
    except TypeError as err:
        params = [p for p in signature.parameters if p not in ("self", "args", "kwargs")]
        unknown = [k for k in kwargs if k not in signature.parameters]
        detail = f"unknown setting(s) {', '.join(f'{where}.{k}' for k in unknown)}" if unknown else str(err)
        raise ConfigSecurityError(f"{where} ({name}): {detail}; accepted: {', '.join(params)}") from err


class _YamlLimit(yaml.composer.ComposerError):
    """Valid YAML that breaks a limit of `_StoreYamlLoader`."""


class _StoreYamlLoader(yaml.SafeLoader):
    """Safe YAML that stops early: no aliases (`*name`: a 630-byte alias bomb would otherwise
    become billions of references), at most `MAX_NODES` nodes and `MAX_DEPTH` levels, counted
    while composing, so a crafted file is refused after reading only what the limits allow."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = self._nodes = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            raise _YamlLimit(None, None, "aliases (*name) are not allowed in a config from a store", event.start_mark)
        self._nodes += 1
        self._depth += 1
        try:
            if self._nodes > MAX_NODES:
                raise _YamlLimit(None, None, f"more than {MAX_NODES} settings", event.start_mark)
            if self._depth > MAX_DEPTH:
                raise _YamlLimit(None, None, f"nested deeper than {MAX_DEPTH} levels", event.start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _yaml_problem(err: yaml.YAMLError) -> str:
    """A YAML error as one line: what is wrong and where."""
    if isinstance(err, yaml.MarkedYAMLError):
        mark = err.problem_mark or err.context_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        return " ".join(f"{err.context or ''} {err.problem or ''}".split()) + where
    return " ".join(str(err).split())


def load_untrusted_yaml(text: str, where: str) -> dict[str, Any]:
    """A YAML document from a file someone else wrote (a run's config.yaml) as plain data:
    safe YAML, no interpolation, every `_target_` registered, within `MAX_YAML_BYTES` and
    `plain`'s budget (no aliases, no shared references). Not resolved, not instantiated.
    Every problem is one ConfigSecurityError line naming `where`."""
    if len(text) > MAX_YAML_BYTES:
        raise ConfigSecurityError(f"{where} holds {len(text)} characters (at most {MAX_YAML_BYTES})")
    try:
        loaded = yaml.load(text, Loader=_StoreYamlLoader)  # noqa: S506 - a SafeLoader subclass
    except _YamlLimit as err:
        raise ConfigSecurityError(f"{where}: {_yaml_problem(err)}") from err
    except yaml.YAMLError as err:
        raise ConfigSecurityError(f"{where} is not valid YAML: {_yaml_problem(err)}") from err
    except RecursionError as err:  # belt and braces: the composer's depth limit comes first
        raise ConfigSecurityError(f"{where}: nested too deeply") from err
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigSecurityError(f"{where} is not a mapping of settings")
    try:
        config = plain(loaded, "")
        check_targets(config)
    except ConfigSecurityError as err:
        raise ConfigSecurityError(f"{where}: {err}") from err
    return config
