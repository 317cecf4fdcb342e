"""The config of a resumed run: re-composed from conf/ and the run's own overrides, never loaded.

A run records the Hydra overrides it was started with (tag `genre_lab.overrides`) and a hash
of its composed config (tag `genre_lab.config_hash`). `resume=` composes `conf/` again with
those overrides plus the new command line, and refuses to continue if the hash differs: the
run would otherwise silently train a different model (edited conf/, a changed learning rate)
on top of the old weights. Only `SAFE_KEYS` may change.

Nothing from the run's logged `config.yaml` is used. The recorded overrides are untrusted
strings (anyone who can write to the tracking store can change a tag), so each must be a plain
`key=value` without interpolation, `_target_` or Hydra settings, and the composed config may
only name classes in `genre_lab.registry`'s tables.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

import hydra
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, OmegaConf, open_dict

from .. import registry
from ..config import compose

#: Settings a resumed run may change: when to stop, and what is reported or shown. Anything
#: else (model, data, optimiser, seed, devices...) changes what the remaining epochs compute.
SAFE_KEYS = (
    "trainer.max_epochs",
    "trainer.enable_progress_bar",
    "trainer.log_every_n_steps",
    "callbacks.progress_bar",
    "test",
    "log_model",
    "throughput_seconds",
    "heartbeat_seconds",
)
#: Where a run writes and logs, not what it trains; set again on every (re)start.
_PLACE_KEYS = ("paths", "resume", "logger.mlflow.tracking_uri", "logger.mlflow.run_id")

_OVERRIDE = re.compile(r"^[+~]{0,2}[A-Za-z_][\w.\-/@]*=")
_MAX_OVERRIDE = 2000


class ResumeConfigError(ValueError):
    """A resume that would train a different config, or recorded overrides that are not plain."""


def config_hash(cfg: DictConfig) -> str:
    """sha256 of the unresolved config without `SAFE_KEYS` and where-it-runs settings.

    Unresolved, so `T_max: ${trainer.max_epochs}` hashes the same when max_epochs changes."""
    data = OmegaConf.to_container(cfg, resolve=False)
    assert isinstance(data, dict)
    for key in (*_PLACE_KEYS, *SAFE_KEYS):
        _drop(data, key.split("."))
    text = json.dumps(data, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _drop(node: Any, path: list[str]) -> None:
    if not isinstance(node, dict) or path[0] not in node:
        return
    if len(path) == 1:
        node.pop(path[0])
    else:
        _drop(node[path[0]], path[1:])


def task_overrides(overrides: Iterable[str]) -> list[str]:
    """The overrides that define what is trained: no `resume=`, no Hydra settings."""
    return [o for o in overrides if not o.lstrip("+~").startswith(("resume=", "hydra.", "hydra/"))]


def check_overrides(overrides: Sequence[str], source: str) -> list[str]:
    """Recorded overrides as plain `key=value` strings; ResumeConfigError naming `source` otherwise."""
    if not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides):
        raise ResumeConfigError(f"{source}: overrides must be a list of strings")
    for item in overrides:
        if len(item) > _MAX_OVERRIDE or not _OVERRIDE.match(item):
            raise ResumeConfigError(f"{source}: override {item[:80]!r} is not a plain key=value")
        if "${" in item or "_target_" in item or item.lstrip("+~").startswith("hydra"):
            raise ResumeConfigError(f"{source}: override {item[:80]!r} may not use interpolation, _target_ or hydra settings")
    return list(overrides)


def check_targets(cfg: DictConfig, source: str) -> None:
    """Every `_target_` of the re-composed config must be in genre_lab.registry's tables."""
    try:
        registry.check_targets(cfg)
    except registry.ConfigSecurityError as err:
        raise ResumeConfigError(f"{source}: {err}") from err


def recompose(overrides: Sequence[str], output_dir: str) -> DictConfig:
    """`conf/train.yaml` with `overrides`, writing into `output_dir` (the resumed run's folder).

    Inside `@hydra.main` Hydra is already initialised on conf/, so compose directly."""
    if GlobalHydra.instance().is_initialized():
        cfg = hydra.compose(config_name="train", overrides=list(overrides))
    else:
        cfg = compose(overrides, output_dir=output_dir)
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
    return cfg


def differences(old_params: dict[str, str], cfg: DictConfig) -> list[str]:
    """`key: old -> new` for the logged params a config changes (for the refusal message)."""
    from ..tracking import flatten  # the same flattening the params were logged with

    new = flatten(OmegaConf.to_container(cfg, resolve=True))
    skip = tuple(k + "." for k in (*_PLACE_KEYS, *SAFE_KEYS)) + tuple(_PLACE_KEYS) + SAFE_KEYS
    keys = sorted(k for k in set(old_params) | set(new) if not k.startswith(skip) and k not in skip)
    return [f"{k}: {old_params.get(k, '<unset>')} -> {new.get(k, '<unset>')}"
            for k in keys if str(old_params.get(k)) != str(new.get(k))]
