"""The config of a resumed run: re-composed from conf/ and the run's own overrides, never loaded.

A run records the Hydra overrides it was started with (tag `genre_lab.overrides`) and a hash
of its composed config (tag `genre_lab.config_hash`). `resume=` composes `conf/` again with
those overrides plus the new command line, and refuses to continue if the hash differs: the
run would otherwise silently train a different model (edited conf/, a changed learning rate)
on top of the old weights. Only `SAFE_KEYS` may change.

Nothing from the run's logged `config.yaml` is used. The recorded overrides are untrusted
strings (anyone who can write to the tracking store can change a tag), so each must pass
`check_overrides`, the rule for every override read from a store (a sweep's best config uses
it too): a group value is one of the group's shipped options, never a path; no interpolation,
`_target_`, `_` keys or Hydra settings. The composed config may only name classes in
`genre_lab.registry`'s tables, and training builds each part through them from the final,
resolved config.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ValueType
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf

from genre_lab import registry
from genre_lab.config import compose, config_groups, group_options

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
#: A setting or group named by plain names: `model`, `data.source.root` (no `/`, `..` or `_x`).
_KEY = re.compile(r"[A-Za-z][\w\-]*(\.[A-Za-z][\w\-]*)*")
_PACKAGE = _KEY
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


def check_overrides(overrides: Sequence[str], source: str, config_dirs: Sequence[str | Path] | None = None) -> list[str]:
    """Overrides from a store (a run's tag, a study's attribute) as plain `key=value` strings,
    or ResumeConfigError naming the override and `source`.

    The rule for every override that comes from a store: a config-group value (`model=`,
    `experiment=`, ...) is exactly one of the group's shipped options (`conf/<group>/<name>.yaml`)
    or one in a `--config-dir` named on this command line (`config_dirs`, default: the ones
    Hydra was started with), never a path; no interpolation (`${...}`) anywhere; no `_target_`
    and no key starting with `_` (Hydra's `_args_`, `_recursive_`...), in the key or inside a
    mapping or list value; no Hydra settings or sweeps. Parsed with Hydra's own override
    grammar, so the check sees what composing would see."""
    if not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides):
        raise ResumeConfigError(f"{source}: overrides must be a list of strings")
    dirs = user_config_dirs() if config_dirs is None else list(config_dirs)
    groups = config_groups(dirs)
    for item in overrides:
        _check_override(item, source, groups, dirs)
    return list(overrides)


def user_config_dirs() -> list[str]:
    """The `--config-dir` of this command (inside `@hydra.main`), whose options may be named too."""
    if not HydraConfig.initialized():
        return []
    sources = HydraConfig.get().runtime.config_sources
    return [str(s.path) for s in sources if s.provider == "command-line" and s.schema == "file"]


def _check_override(item: str, source: str, groups: set[str], dirs: Sequence[str | Path]) -> None:
    shown = repr(item[:80])

    def refuse(why: str) -> ResumeConfigError:
        return ResumeConfigError(f"{source}: override {shown} {why}")

    if len(item) > _MAX_OVERRIDE or not _OVERRIDE.match(item):
        raise refuse("is not a plain key=value")
    if "${" in item or "_target_" in item or item.lstrip("+~").startswith("hydra"):
        raise refuse("may not use interpolation, _target_ or hydra settings")
    try:
        (override,) = OverridesParser.create().parse_overrides([item])
    except (HydraException, ValueError) as err:
        raise refuse(f"is not a valid override ({str(err).splitlines()[0][:200]})") from err
    key, package = override.key_or_group, override.package
    if override.is_sweep_override() or override.value_type is not ValueType.ELEMENT:
        raise refuse("is a sweep (choice/range/glob), not one value")
    if not _KEY.fullmatch(key) or (package is not None and not _PACKAGE.fullmatch(package)):
        raise refuse("names a setting by anything but plain names (a path, or a key starting with '_')")
    value = override.value()
    if key in groups:
        options = group_options(key, dirs)
        if value is not None and (not isinstance(value, str) or value not in options):
            extra = " or a --config-dir option named on this command line" if not dirs else ""
            raise refuse(f"must name one of the shipped {key} options ({', '.join(sorted(options))}){extra}, "
                         "never a path or another file")
        return
    _check_value(value, refuse)


def _check_value(value: Any, refuse: Any) -> None:
    """Mappings and lists in an override value hold plain data: no `_` keys, no interpolation."""
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, item in node.items():
                if not isinstance(key, str) or key.startswith("_"):
                    raise refuse(f"holds the key {str(key)[:40]!r}: keys starting with '_' are Hydra's hooks")
                stack.append(item)
        elif isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, str) and "${" in node:
            raise refuse("may not use interpolation")
        elif node is not None and not isinstance(node, (str, int, float, bool)):
            raise refuse(f"holds a {type(node).__name__}, not plain data")


def check_targets(cfg: DictConfig, source: str) -> None:
    """Every `_target_` of the re-composed config must be in genre_lab.registry's tables."""
    try:
        registry.check_targets(cfg)
    except registry.ConfigSecurityError as err:
        raise ResumeConfigError(f"{source}: {err}") from err


def recompose(overrides: Sequence[str], output_dir: str) -> DictConfig:
    """`conf/train.yaml` with `overrides`, writing into `output_dir` (the resumed run's folder)."""
    return compose(overrides, output_dir=output_dir)


def differences(old_params: dict[str, str], cfg: DictConfig) -> list[str]:
    """`key: old -> new` for the logged params a config changes (for the refusal message)."""
    from genre_lab.tracking.mlflow_runs import flatten  # the same flattening the params were logged with

    new = flatten(OmegaConf.to_container(cfg, resolve=True))
    skip = tuple(k + "." for k in (*_PLACE_KEYS, *SAFE_KEYS)) + tuple(_PLACE_KEYS) + SAFE_KEYS
    keys = sorted(k for k in set(old_params) | set(new) if not k.startswith(skip) and k not in skip)
    return [f"{k}: {old_params.get(k, '<unset>')} -> {new.get(k, '<unset>')}"
            for k in keys if str(old_params.get(k)) != str(new.get(k))]
