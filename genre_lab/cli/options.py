"""Command-line conventions that several commands share, declared once (import-light: the
predict command's start-up loads neither MLflow nor Hydra).

- Every command's usage names it as users type it: `genre-lab <command>` (`command_parser`).
- A model is named the same way in every command that takes one: positional, or `run=<model>`
  (run id, model file, `models:/` / `runs:/` URI, `pretrained:` name). The argparse commands
  accept `run=` beside their positional MODEL (`models_from_run_arguments`); the Hydra command
  `evaluate` accepts a positional model beside its `run=` override (`model_as_override`, given
  to `cli.hydra_command`).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

#: The `run=<model>` form of a model argument.
RUN_PREFIX = "run="

#: Hydra 1.3's flags that take the next argument as their value (`hydra.main.get_args_parser`);
#: `--info` / `-i` takes one only when it is one of `_HYDRA_INFO_CHOICES`.
_HYDRA_VALUE_FLAGS = frozenset({"--cfg", "-c", "--package", "-p", "--config-path", "-cp", "--config-name", "-cn",
                                "--config-dir", "-cd", "--experimental-rerun"})
_HYDRA_OPTIONAL_VALUE_FLAGS = frozenset({"--info", "-i"})
_HYDRA_INFO_CHOICES = frozenset({"all", "config", "defaults", "defaults-tree", "plugins", "searchpath"})


def command_parser(name: str, doc: str | None = None, **kwargs: Any) -> argparse.ArgumentParser:
    """An argparse parser whose usage reads `genre-lab <name>` (the one documented way in, also
    under `python -m genre_lab.<name>`), described by the first line of `doc` unless
    `description=` is given; other keywords go to `argparse.ArgumentParser`."""
    if doc and doc.strip():
        kwargs.setdefault("description", doc.strip().splitlines()[0])
    return argparse.ArgumentParser(prog=f"genre-lab {name}", **kwargs)


def add_tracking_uri_option(parser: argparse.ArgumentParser) -> None:
    """`--tracking-uri`: the MLflow store to read runs and models from. Left out (None), the
    command uses `genre_lab.tracking.mlflow_runs.tracking_uri()`, the store training writes to."""
    parser.add_argument(
        "--tracking-uri", default=None,
        help="MLflow store (default: $MLFLOW_TRACKING_URI, else mlflow.db in $GENRE_LAB_HOME or the working directory)",
    )


def models_from_run_arguments(parser: argparse.ArgumentParser, positionals: Sequence[str],
                              models: int | None = 1, rest_name: str | None = None) -> tuple[list[str], list[str]]:
    """(models, the other positionals) of a command whose positionals are MODEL [PATH...]:
    every `run=<model>` names a model wherever it stands; without one, the first `models`
    positionals are the models (`None`: all of them, in their order, as `ensemble` takes them).
    A command taking one model refuses more than one `run=`, and, when `rest_name` names the other
    positionals (`PATH`), their absence, through `parser.error` (usage, exit status 2). A file
    really named `run=...` is given as `./run=...`."""
    named = [value[len(RUN_PREFIX):] for value in positionals if value.startswith(RUN_PREFIX)]
    others = [value for value in positionals if not value.startswith(RUN_PREFIX)]
    if any(not model for model in named):
        parser.error("run= needs a model: run=<run id | model file | models:/ or runs:/ URI | pretrained:NAME>")
    if models is None:
        return [value.removeprefix(RUN_PREFIX) for value in positionals], []
    if not named:
        return list(positionals[:models]), list(positionals[models:])
    if len(named) != models:
        parser.error(f"give the model once (positional or run=), got {len(named)} run= arguments")
    if rest_name is not None and not others:
        parser.error(f"the following arguments are required: {rest_name}")
    return named, others


def model_as_override(argv: Sequence[str]) -> list[str]:
    """Hydra arguments with a positional model turned into the `run=` override: the first
    argument that is neither a flag, a flag's value, an override (`key=value`, `~key`) becomes
    `run=<it>`, quoted so that Hydra reads it as one literal string (no sweep on a comma, no
    number). Everything else is passed as it came, so Hydra's flags (`-m`, `--help`, `--cfg job`,
    `--info`, ...) and overrides keep their meaning. A positional model next to `run=` raises
    ValueError."""
    args = list(argv)
    takes_value = False
    for index, arg in enumerate(args):
        if takes_value:
            takes_value = False
            continue
        if arg.startswith("-"):
            takes_value = arg in _HYDRA_VALUE_FLAGS
            if arg in _HYDRA_OPTIONAL_VALUE_FLAGS and index + 1 < len(args) and args[index + 1] in _HYDRA_INFO_CHOICES:
                takes_value = True
            continue
        if "=" in arg or arg.startswith("~"):
            continue
        if any(a.lstrip("+").startswith(RUN_PREFIX) for a in args):
            raise ValueError(f"give the model once: '{arg}' or run=..., not both")
        args[index] = RUN_PREFIX + _hydra_quoted(arg)
        break
    return args


def _hydra_quoted(value: str) -> str:
    """`value` as a Hydra quoted string where one quote style needs no escaping; else as given."""
    if "\\" in value:
        return value
    if "'" not in value:
        return f"'{value}'"
    if '"' not in value:
        return f'"{value}"'
    return value
