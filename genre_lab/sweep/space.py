"""The search space of a sweep: parsed from `sweep.space`, checked against the training config.

`sweep.space` mirrors the training config: the spec of `model.optimizer.lr` sits at
`sweep.space.model.optimizer.lr`, so every entry can be edited, added (`+sweep.space...`) or
removed (`~sweep.space...`) from the command line like any other Hydra setting. A spec is a
mapping with a `type`:

    {type: float, low: 1.0e-4, high: 1.0e-2, log: true}   # log-scale float
    {type: float, low: 0.0, high: 0.5}                     # uniform float (optional `step`)
    {type: int, low: 1, high: 3}                           # integer (optional `step` or `log`)
    {type: categorical, choices: [32, 64, 128]}            # any of a list of scalars

Everything wrong with the space is reported together, before any trial runs.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import optuna
from omegaconf import DictConfig, ListConfig, OmegaConf

from genre_lab.config import config_items

#: Keys each distribution accepts (`type` aside).
_KEYS = {
    "float": {"low", "high", "log", "step"},
    "int": {"low", "high", "log", "step"},
    "categorical": {"choices"},
}
_MISSING = object()
Scalar = None | bool | int | float | str


class SweepConfigError(ValueError):
    """A sweep setting that cannot work; raised before any study, run or trial exists."""


class SearchSpaceError(SweepConfigError):
    """A malformed `sweep.space` entry or one naming a setting the training config lacks."""


@dataclass(frozen=True)
class Param:
    """One searched setting: its config path (also its Optuna param name) and distribution."""

    path: str
    distribution: optuna.distributions.BaseDistribution

    def suggest(self, trial: optuna.Trial) -> Scalar:
        d = self.distribution
        if isinstance(d, optuna.distributions.FloatDistribution):
            return trial.suggest_float(self.path, d.low, d.high, log=d.log, step=d.step)
        if isinstance(d, optuna.distributions.IntDistribution):
            return trial.suggest_int(self.path, d.low, d.high, log=d.log, step=d.step)
        assert isinstance(d, optuna.distributions.CategoricalDistribution)
        return trial.suggest_categorical(self.path, d.choices)

    def override(self, value: Scalar) -> str:
        """`path=value` in Hydra's override grammar, so a trial is a plain command line."""
        return f"{self.path}={format_value(value)}"


    def check(self, value: Any, where: str) -> Scalar:
        """`value` if this distribution could have drawn it, else SearchSpaceError naming
        `where`: a trial's params come from a store anyone with write access may edit."""
        d = self.distribution
        ok = False
        if isinstance(d, optuna.distributions.CategoricalDistribution):
            # By type and value: 1, 1.0, True and "1" are different choices.
            ok = any(type(value) is type(c) and value == c for c in d.choices)
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            integral = isinstance(d, optuna.distributions.IntDistribution)
            ok = (not integral or isinstance(value, int) or float(value).is_integer()) and d.low <= value <= d.high
            if ok and d.step is not None:
                steps = (value - d.low) / d.step
                ok = math.isclose(steps, round(steps), abs_tol=1e-8)
            if ok and integral:
                value = int(value)
        if not ok:
            raise SearchSpaceError(f"{where}: {self.path}={repr(value)[:80]} is outside sweep.space.{self.path} "
                                   f"({describe(d)})")
        return value


def describe(d: optuna.distributions.BaseDistribution) -> str:
    """A distribution as the user declared it, for error messages."""
    if isinstance(d, optuna.distributions.CategoricalDistribution):
        return f"choices {list(d.choices)!r}"
    extra = f", step {d.step}" if d.step is not None else (", log" if getattr(d, "log", False) else "")
    return f"{d.low} to {d.high}{extra}"


def trial_values(params: Sequence[Param], stored: Mapping[str, Any], where: str) -> dict[str, Scalar]:
    """The values of a stored trial, each checked against the search space: every searched
    setting present and within its range or choices, and nothing else."""
    if not isinstance(stored, Mapping):
        raise SearchSpaceError(f"{where}: params are not a mapping")
    known = {p.path for p in params}
    unknown = sorted(str(k)[:80] for k in stored if k not in known)
    if unknown:
        raise SearchSpaceError(f"{where}: params {unknown} are not in sweep.space (searched: {sorted(known)})")
    missing = sorted(known - set(stored))
    if missing:
        raise SearchSpaceError(f"{where}: params {missing} of sweep.space are missing")
    return {p.path: p.check(stored[p.path], where) for p in params}


def format_value(value: Scalar) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    # Quoted, so that "32", "true" or "a,b" stay strings instead of being parsed as values.
    escaped = value.replace("\\", "\\\\").replace("'", "\\'")
    return f"'{escaped}'"


_SPEC_KEYS = {"type"}.union(*_KEYS.values())


def _specs(node: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(config path, spec) for every leaf: a mapping holding spec keys, or anything not a mapping.
    A mapping with `low`/`choices` but no `type` is a spec too, so it is reported as one."""
    if isinstance(node, Mapping) and node and not _SPEC_KEYS & set(node):
        for key, child in node.items():
            yield from _specs(child, f"{prefix}{key}" if not prefix else f"{prefix}.{key}")
    else:
        yield prefix, node


def _number(where: str, spec: Mapping[str, Any], key: str, kind: type, errors: list[str]) -> Any:
    value = spec.get(key)
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int:
        ok = ok and float(value).is_integer()
    if not ok or not math.isfinite(float(value)):
        errors.append(f"{where}: `{key}` must be {'an integer' if kind is int else 'a number'}, got {value!r}")
        return None
    return kind(value)


def _distribution(where: str, spec: Any, errors: list[str]) -> optuna.distributions.BaseDistribution | None:
    if not isinstance(spec, Mapping):
        errors.append(f"{where}: expected a mapping with `type` (float, int or categorical), got {spec!r}")
        return None
    kind = spec.get("type")
    if kind is None:
        errors.append(f"{where}: missing `type` (float, int or categorical)")
        return None
    if kind not in _KEYS:
        errors.append(f"{where}: unknown type {kind!r}; use one of {sorted(_KEYS)}")
        return None
    unknown = set(spec) - _KEYS[kind] - {"type"}
    if unknown:
        errors.append(f"{where}: unknown key(s) {sorted(unknown)} for type {kind}; allowed: {sorted(_KEYS[kind])}")
        return None
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, Sequence) or isinstance(choices, str) or not choices:
            errors.append(f"{where}: `choices` must be a non-empty list, got {choices!r}")
            return None
        bad = [c for c in choices if not isinstance(c, (type(None), bool, int, float, str))]
        if bad:
            errors.append(f"{where}: choices must be scalars (null, bool, number, string), got {bad!r}")
            return None
        if len(set(map(repr, choices))) != len(choices):
            errors.append(f"{where}: `choices` has duplicates: {list(choices)!r}")
            return None
        return optuna.distributions.CategoricalDistribution(list(choices))

    number = float if kind == "float" else int
    low, high = (_number(where, spec, k, number, errors) for k in ("low", "high"))
    log = spec.get("log", False)
    step = spec.get("step")
    if not isinstance(log, bool):
        errors.append(f"{where}: `log` must be true or false, got {log!r}")
        return None
    if step is not None:
        step = _number(where, spec, "step", number, errors)
        if step is not None and step <= 0:
            errors.append(f"{where}: `step` must be positive, got {step!r}")
            return None
    if low is None or high is None or (spec.get("step") is not None and step is None):
        return None
    if low > high:
        errors.append(f"{where}: `low` ({low}) is greater than `high` ({high})")
        return None
    if log and low <= 0:
        errors.append(f"{where}: a log-scale range needs `low` > 0, got {low}")
        return None
    if log and step is not None:
        errors.append(f"{where}: `log` and `step` cannot be combined")
        return None
    if kind == "float":
        return optuna.distributions.FloatDistribution(low, high, log=log, step=step)
    return optuna.distributions.IntDistribution(low, high, log=log, step=step or 1)


def _leaf_paths(cfg: DictConfig) -> list[str]:
    """The keys of `cfg`'s settings (its groups left out), interpolations unresolved."""
    tree = OmegaConf.to_container(cfg, resolve=False, throw_on_missing=False)
    return [key for key, value in config_items(tree) if not isinstance(value, dict)]


def _check_path(where: str, path: str, train_cfg: DictConfig, errors: list[str]) -> None:
    # Interpolations stay unresolved: only existence and kind of the node matter here.
    node = OmegaConf.select(train_cfg, path, default=_MISSING, throw_on_resolution_failure=False)
    if node is _MISSING:
        close = difflib.get_close_matches(path, _leaf_paths(train_cfg), n=3, cutoff=0.7)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        errors.append(f"{where}: the training config has no setting `{path}`{hint}")
    elif isinstance(node, (DictConfig, ListConfig)):
        errors.append(f"{where}: `{path}` is a group of settings, not one value; name a leaf such as `{path}.<key>`")


def parse_space(space: Mapping[str, Any] | DictConfig | None, train_cfg: DictConfig) -> list[Param]:
    """Every `sweep.space` entry as a Param, or one SearchSpaceError listing all the problems."""
    if isinstance(space, DictConfig):
        space = OmegaConf.to_container(space, resolve=True)
    if not space:
        raise SearchSpaceError("sweep.space is empty: declare at least one setting to search")
    errors: list[str] = []
    params: list[Param] = []
    for path, spec in _specs(space):
        where = f"sweep.space.{path}"
        if not re.fullmatch(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*", path):
            errors.append(f"{where}: not a config path")
            continue
        if isinstance(spec, Mapping) and not spec and isinstance(OmegaConf.select(train_cfg, path), DictConfig):
            continue  # a section emptied by `~sweep.space.data.batch_size`: nothing to search there
        _check_path(where, path, train_cfg, errors)
        dist = _distribution(where, spec, errors)
        if dist is not None:
            params.append(Param(path, dist))
    if errors:
        raise SearchSpaceError("invalid search space:\n  " + "\n  ".join(errors))
    return params
