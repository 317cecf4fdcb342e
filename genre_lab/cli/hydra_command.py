"""The entry of every Hydra command (`train`, `evaluate`, `sweep`): `@hydra.main` made quiet.

- A mistake is one line on stderr, `error: ...`, exit status 2: an unknown setting names the
  closest real one (`trainer.max_epoch` -> `trainer.max_epochs`, difflib over the composed
  config's keys), an unknown group option lists the options, a mandatory (`???`) setting gives
  an example, and each command's own refusals (a missing run, a bad path) keep their message.
  Hydra answers the first two before the task function runs, inside `hydra.main`, so the
  command runs Hydra with `HYDRA_FULL_ERROR=1` (Hydra then raises instead of printing a
  traceback and exiting) and turns what comes out into that line; the task function sees the
  user's own environment again (processes it starts, DDP ranks, inherit that).
- `--debug` (taken off the command line before Hydra reads it) or `HYDRA_FULL_ERROR=1`: the full
  traceback instead, as Python prints it.
- A failed run leaves no run folder when the folder holds nothing but Hydra's `.hydra/` and its
  log: nothing worth keeping was written (a checkpoint or `mlflow_run.json` keeps it).
- `--help` lists the config groups with their options and the settings users change most,
  composed from `conf/` without the command's module, so without torch, Lightning or MLflow
  (`genre-lab COMMAND --help` never imports it). `--hydra-help` is Hydra's own.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import os
import re
import shutil
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from genre_lab.cli.refusals import refuse
from genre_lab.cli.verbosity import take_verbose_flag

DEBUG_FLAG = "--debug"
FULL_ERROR = "HYDRA_FULL_ERROR"
HELP_FLAGS = ("-h", "--help")

#: What to pass for a mandatory (`???`) setting: by key, and for dataset settings by the
#: dataset chosen (`data=gtzan`); `None`: any other choice.
EXAMPLES: dict[str, dict[str | None, str]] = {
    "data.root": {
        "gtzan": "data.root=/path/to/gtzan (the folder holding genres_original/ or the <genre>/ folders)",
        "folder": "data.root=/path/to/music (a folder with one subfolder of audio per genre)",
        "fma": "data.root=/path/to/fma (the folder holding fma_metadata/ and fma_<subset>/)",
        "mtat": "data.root=/path/to/mtat (the folder holding annotations_final.csv and the mp3 folders 0/ ... f/)",
        "jamendo": "data.root=/path/to/mtg-jamendo-dataset (the cloned repository, with data/splits/)",
        None: "data.root=/path/to/dataset",
    },
    "data.audio_dir": {None: "data.audio_dir=/path/to/audio (MTG-Jamendo: the folder holding 00/ ... 99/)"},
    "data.manifest": {None: "data.manifest=/path/to/manifest.csv (rows of path,label[,split])"},
    "run": {None: "run=<MLflow run id | checkpoint file | models:/ or runs:/ URI | pretrained:musicnn-msd>"},
}


def hydra_command(name: str, rewrite: Callable[[list[str]], list[str]] | None = None
                  ) -> Callable[[Callable[[Any], Any]], Callable[..., int]]:
    """`@hydra.main` on `conf/<name>.yaml` for the command `genre-lab <name>`, wrapped as the
    module's docstring says. `-v` / `--verbose` is taken off the command line (`cli.verbosity`);
    `rewrite` turns what is left into Hydra overrides first (evaluate: a positional model
    becomes `run=<model>`), a ValueError from it being a one-line refusal.

    The decorated task function becomes `main(argv=None) -> int` (argv: the command line after
    the command's name; None: `sys.argv[1:]`); errors exit 2 through SystemExit, so
    `python -m genre_lab.cli.<name>` exits the same way as `genre-lab <name>`."""

    def decorate(task: Callable[[Any], Any]) -> Callable[..., int]:
        import hydra

        from genre_lab.config import CONF_DIR

        #: HYDRA_FULL_ERROR as the task should see it ("1" under --debug), while Hydra runs with "1".
        task_env: dict[str, str | None] = {}

        @functools.wraps(task)  # Hydra names the job after the unwrapped function's module
        def guarded(cfg: Any) -> Any:
            from hydra.core.hydra_config import HydraConfig

            hydra_cfg = HydraConfig.get()
            run_dir = Path(hydra_cfg.runtime.output_dir)
            choices = dict(hydra_cfg.runtime.choices)
            with _env(FULL_ERROR, task_env.get(FULL_ERROR)):  # what the task starts inherits it too
                try:
                    missing = _missing(cfg, choices)
                    if missing and os.environ.get(FULL_ERROR) != "1":  # --debug: OmegaConf's own error
                        refuse(missing)
                    try:
                        return task(cfg)
                    except Exception as err:
                        message = explain(err, choices)
                        if message is None:
                            raise
                        refuse(message, err)
                except BaseException as err:
                    if not (isinstance(err, SystemExit) and err.code in (0, None)):
                        remove_empty_run_dir(run_dir, str(hydra_cfg.job.name), _root(cfg))
                    raise

        hydra_main = hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name=name)(guarded)

        @functools.wraps(task)
        def main(argv: Sequence[str] | None = None) -> int:
            args = list(sys.argv[1:] if argv is None else argv)
            debug = DEBUG_FLAG in args or os.environ.get(FULL_ERROR) == "1"
            args = take_verbose_flag([a for a in args if a != DEBUG_FLAG])
            if any(a in HELP_FLAGS for a in args):
                return print_help(name, args, debug=debug)
            if rewrite is not None:
                try:
                    args = rewrite(args)
                except ValueError as err:
                    refuse(err)
            task_env[FULL_ERROR] = "1" if debug else os.environ.get(FULL_ERROR)
            saved = sys.argv
            # Run as a script or module: its own argv[0], which DDP ranks are started again from.
            sys.argv = [saved[0] if argv is None else f"genre-lab {name}", *args]
            try:
                with _env(FULL_ERROR, "1"):  # Hydra raises what it would otherwise print
                    hydra_main()
            except Exception as err:
                message = None if debug else explain(err)
                if message is None:
                    raise
                refuse(message, err)
            finally:
                sys.argv = saved
            return 0

        return main

    return decorate


@contextlib.contextmanager
def _env(name: str, value: str | None) -> Iterator[None]:
    """Environment variable `name` set to `value` (None: unset) for a block, then put back."""
    saved = os.environ.get(name)
    _set_env(name, value)
    try:
        yield
    finally:
        _set_env(name, saved)


def _set_env(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


# ---------------------------------------------------------------------------------------------
# Errors -> one line


def explain(err: BaseException, choices: dict[str, Any] | None = None) -> str | None:
    """The one line for an error the user can fix from the command line or their config, or
    None for anything else (a bug: its traceback is shown). `choices`: the group options chosen
    (`data` -> `gtzan`), for the example of a mandatory setting."""
    from hydra.errors import CompactHydraException, MissingConfigException, OverrideParseException
    from omegaconf.errors import (ConfigAttributeError, ConfigKeyError, InterpolationToMissingValueError,
                                  MissingMandatoryValue)

    if isinstance(err, MissingConfigException):
        return _unknown_option(err)
    if isinstance(err, OverrideParseException):
        return f"cannot read the override {err.override!r}: {_first_line(err.message)}"
    if isinstance(err, CompactHydraException):
        cause = err.__cause__
        wanted = re.match(r"Could not override '([^']+)'", str(err))
        if wanted and isinstance(cause, (ConfigAttributeError, ConfigKeyError)):
            return _unknown_key(wanted.group(1), cause)
        text = _first_line(str(err))
        if cause is not None and str(cause).strip():
            text = f"{text} ({_first_line(str(cause))})"
        return text
    if isinstance(err, MissingMandatoryValue):
        return _missing_value(str(err.full_key), choices)
    if isinstance(err, InterpolationToMissingValueError):  # `${data.root}` read while data.root is `???`
        key = re.search(r"Missing mandatory value: (\S+)", str(err))
        return _missing_value(key.group(1) if key else str(err.full_key), choices)
    if isinstance(err, (ConfigAttributeError, ConfigKeyError)) and getattr(err, "full_key", None):
        return _unknown_key(str(err.full_key), err, reading=True)
    return None


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), text.strip())


def _unknown_option(err: Any) -> str:
    """`model=crn`: the group's options (not the `_` pieces other options include), the closest first."""
    missing = str(err.missing_cfg_file or "")
    if err.options is None or "/" not in missing:
        return _first_line(str(err))
    group, option = missing.rsplit("/", 1)
    options = sorted(o for o in err.options if not o.startswith("_"))
    close = difflib.get_close_matches(option, options, n=1)
    hint = f"did you mean {group}={close[0]}? " if close else ""
    return f"no option {group}={option}; {hint}{group} is one of {', '.join(options)}"


def _unknown_key(key: str, cause: Any, reading: bool = False) -> str:
    """`trainer.max_epoch=2`: the closest key of the composed config (the node Hydra failed on
    knows its root)."""
    from genre_lab.config import config_groups

    keys = _config_keys(cause)
    head = key.split(".", 1)[0]
    if "." in key and head in config_groups() and not any(k == head for k in keys):
        # `data.root=...` for evaluate, whose data group is empty unless chosen.
        return f"no setting {key}: no {head} config is chosen; choose one first ({head}=<option>, see --help)"
    if not head.startswith("hydra"):
        keys = [k for k in keys if not k.startswith("hydra")]
    close = difflib.get_close_matches(key, keys, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]}?" if close else " (--cfg job lists every setting)"
    what = "the config has no setting" if reading else "no setting"
    return f"{what} {key}{hint}"


def _config_keys(cause: Any) -> list[str]:
    """Every key of the config holding the node an error names (groups and settings)."""
    from omegaconf import DictConfig, OmegaConf

    from genre_lab.config import config_items

    node = getattr(cause, "parent_node", None)
    if not isinstance(node, DictConfig):
        return []
    root = node._get_root()
    return [key for key, _ in config_items(OmegaConf.to_container(root, resolve=False, throw_on_missing=False))]


def _missing_value(key: str, choices: dict[str, Any] | None) -> str:
    examples = EXAMPLES.get(key)
    if examples is None:
        return f"{key} is not set: pass {key}=<value> (or set it in your config)"
    dataset = (choices or {}).get("data") if key.startswith("data.") else None
    return f"{key} is not set: pass {examples.get(dataset, examples[None])}"


def _missing(cfg: Any, choices: dict[str, Any]) -> str | None:
    """The mandatory (`???`) settings the command line left unset, as one line; None: none.
    Read as written: a setting that interpolates a missing one (data.source.root) is not listed."""
    from omegaconf import OmegaConf

    from genre_lab.config import config_items

    tree = OmegaConf.to_container(cfg, resolve=False, throw_on_missing=False)
    keys = sorted(key for key, value in config_items(tree, lists=True) if value == "???")
    return "; ".join(_missing_value(k, choices) for k in keys) or None


# ---------------------------------------------------------------------------------------------
# The run folder of a failed run


def _root(cfg: Any) -> Path | None:
    from omegaconf import OmegaConf

    try:
        root = OmegaConf.select(cfg, "paths.root_dir")
    except Exception:  # an unresolvable root: only the run folder itself is removed
        return None
    return Path(str(root)).resolve() if root else None


#: What Hydra writes into a run folder before the task runs.
HYDRA_FILES = {"config.yaml", "hydra.yaml", "overrides.yaml"}


def remove_empty_run_dir(run_dir: Path, job_name: str, root: Path | None) -> bool:
    """Remove `run_dir` when it holds only Hydra's `.hydra/` (its three files) and the job's
    log; then its parents that are left empty, up to `root` (never `root` itself and nothing
    outside it). Anything else in the folder keeps it. True: it was removed."""
    try:
        entries = {p.name: p for p in run_dir.iterdir()}
    except OSError:
        return False
    allowed = {".hydra", f"{job_name}.log"}
    if set(entries) - allowed:
        return False
    hydra_dir = entries.get(".hydra")
    if hydra_dir is not None:
        if hydra_dir.is_symlink() or not hydra_dir.is_dir():
            return False
        inside = list(hydra_dir.iterdir())
        if any(p.name not in HYDRA_FILES or not p.is_file() or p.is_symlink() for p in inside):
            return False
    log = entries.get(f"{job_name}.log")
    if log is not None and (log.is_symlink() or not log.is_file()):
        return False
    shutil.rmtree(run_dir, ignore_errors=True)
    if run_dir.exists():
        return False
    if root is not None:
        parent = run_dir.resolve().parent
        while parent != root and root in parent.parents:
            try:
                parent.rmdir()  # only an empty folder
            except OSError:
                break
            parent = parent.parent
    return True


# ---------------------------------------------------------------------------------------------
# --help


#: The settings users change most, per command: (key, what it does). A key of a group that is
#: not chosen (data.root with data=synthetic) is shown with the choice it belongs to.
COMMON: dict[str, list[tuple[str, str]]] = {
    "train": [
        ("seed", "seed of the weights, batches and augmentation"),
        ("trainer.max_epochs", "epochs at most (early stopping on val/loss may end sooner)"),
        ("trainer.accelerator", "auto | cpu | gpu"),
        ("data.root", "your dataset folder (data=gtzan, data=folder)"),
        ("data.manifest", "your CSV of path,label[,split] rows (data=csv)"),
        ("data.batch_size", "clips per training batch"),
        ("model.optimizer.lr", "learning rate (the backbone's: times model.optimizer.backbone_lr_scale)"),
        ("model.freeze", "none | backbone (a linear probe) | all_but_last_block"),
        ("model.backbone.*", "the chosen model's size settings"),
        ("features.frontend.*", "the chosen front end's settings (features=<option> picks it)"),
        ("init_from", "fine-tune from a run id, checkpoint, models:/ URI or pretrained:musicnn-msd"),
        ("resume", "continue an interrupted run: its MLflow run id or run folder"),
        ("task", "multiclass | multilabel (unset: the dataset's; data=csv with ;-separated tags needs multilabel)"),
        ("logger.mlflow.experiment_name", "the MLflow experiment the run goes to"),
    ],
    "evaluate": [
        ("run", "the trained model: MLflow run id, checkpoint file, models:/ or runs:/ URI"),
        ("split", "train | val | test"),
        ("data.root", "evaluate on your dataset (with data=gtzan or data=folder)"),
        ("hop_seconds", "window hop in seconds (null: the model's validation hop)"),
        ("accelerator", "auto | cpu | gpu"),
        ("tracking_uri", "the MLflow store (MLFLOW_TRACKING_URI wins)"),
        ("explain.enabled", "log per-genre explanation figures"),
    ],
    "sweep": [
        ("sweep.n_trials", "trials of the study in total, across workers and re-runs"),
        ("sweep.metric", "the objective, logged every validation epoch"),
        ("sweep.direction", "maximize | minimize"),
        ("sweep.storage", "the Optuna storage (sqlite file, postgresql://..., or a .log journal)"),
        ("sweep.timeout", "seconds after which this worker starts no new trial"),
        ("sweep.worker_id", "distinct per parallel worker"),
        ("sweep.space.*", "the searched settings (the sweep option's space)"),
        ("seed", "seed of the weights, batches and augmentation"),
        ("trainer.max_epochs", "epochs per trial at most"),
        ("data.root", "your dataset folder (data=gtzan, data=folder)"),
    ],
}

SUMMARY = {
    "train": "Fit, test and log one model (an MLflow run).",
    "evaluate": "Track-level metrics of a trained model on a dataset split, logged as a new MLflow run.",
    "sweep": "One Optuna sweep worker: start it again to resume, start several to share the study.",
}

EXAMPLES_USAGE = {
    "train": ["genre-lab train model=cnn features=mfcc trainer.max_epochs=30",
              "genre-lab train data=gtzan data.root=/path/to/gtzan",
              "genre-lab train -m seed=1,2,3 model=cnn,crnn"],
    "evaluate": ["genre-lab evaluate run=<run id>",
                 "genre-lab evaluate run=outputs/runs/<run>/checkpoints/best.ckpt data=gtzan data.root=/path/to/gtzan"],
    "sweep": ["genre-lab sweep sweep=crnn sweep.n_trials=20",
              "genre-lab sweep sweep=cnn data=gtzan data.root=/path/to/gtzan"],
}


def print_help(command: str, args: Sequence[str], debug: bool = False) -> int:
    """Print the help of `genre-lab <command>` (entry config `conf/<command>.yaml`), composed with
    the overrides of `args` (their choices shown); a bad override is the same one-line error
    as when running."""
    try:
        text = help_text(command, args)
    except Exception as err:
        debug = debug or DEBUG_FLAG in args or os.environ.get(FULL_ERROR) == "1"
        message = None if debug else explain(err)
        if message is None:
            raise
        refuse(message, err)
    sys.stdout.write(text)
    return 0


def help_text(command: str, args: Sequence[str]) -> str:
    from hydra import compose, initialize_config_dir

    from genre_lab.config import CONF_DIR

    overrides, dirs = _help_overrides(args)
    extra = [f"hydra.searchpath=[{','.join('file://' + str(Path(d).resolve()) for d in dirs)}]"] if dirs else []
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name=command, overrides=[*overrides, *extra], return_hydra_config=True)
    lines = [f"usage: genre-lab {command} [KEY=VALUE ...] [GROUP=OPTION ...] [-m] [--cfg job] "
             f"[--config-dir DIR] [--debug]", "", SUMMARY.get(command, ""), "",
             "== Configuration groups ==",
             "Choose one option per group with GROUP=OPTION (* the one in use):", "",
             *_group_lines(command, cfg, dirs), "",
             "== Common settings ==",
             f"KEY=VALUE, with their values for the choices above (every setting: genre-lab {command} --cfg job):", "",
             *_setting_lines(command, cfg), "",
             "== Flags ==", "",
             "  -m, --multirun       a grid: one run per combination of comma-separated values",
             "  --cfg job            print the composed config instead of running (--resolve: values resolved)",
             "  --config-dir DIR     add a folder of your own configs (DIR/model/mine.yaml: model=mine)",
             f"  {DEBUG_FLAG:<21}errors with their full traceback (also: HYDRA_FULL_ERROR=1)",
             "  --hydra-help         Hydra's own flags", "",
             "Examples:", *(f"  {e}" for e in EXAMPLES_USAGE.get(command, [])), ""]
    return "\n".join(lines)


def _group_lines(command: str, cfg: Any, dirs: Sequence[str]) -> list[str]:
    """`group: option, chosen*, ...` for the command's groups; Hydra's own groups and the `_`
    pieces other options include are not shown."""
    from genre_lab.config import group_options

    choices = {g: c for g, c in cfg.hydra.runtime.choices.items()
               if not g.startswith("hydra/") and not any(part.startswith("_") for part in g.split("/"))}
    width = max((len(g) for g in choices), default=0) + 2
    lines = []
    for group in sorted(choices):
        chosen = choices[group]
        shown = ", ".join(f"{o}*" if o == chosen else o for o in sorted(group_options(group, dirs)))
        if chosen is None:
            shown += "  (none: the run's own dataset)" if (command, group) == ("evaluate", "data") else "  (none chosen)"
        lines.append(f"  {group + ':':<{width}}{shown}")
    return lines


def _setting_lines(command: str, cfg: Any) -> list[str]:
    """`key=value   what it does` for the command's COMMON settings, values as written (nothing
    resolved: no store is opened for a `${genre_lab_tracking_uri:...}`)."""
    from omegaconf import OmegaConf

    from genre_lab.config import config_items

    rows: list[tuple[str, str]] = []
    for key, what in COMMON.get(command, []):
        if key.endswith(".*"):  # the settings under a node: the first few
            node = OmegaConf.select(cfg, key[:-2], throw_on_missing=False)
            if node is None:
                continue
            tree = OmegaConf.to_container(node, resolve=False, throw_on_missing=False)
            leaves = [(f"{key[:-2]}.{k}", v) for k, v in config_items(tree, whole=_one_setting)
                      if _one_setting(v) and not k.split(".")[-1].startswith("_")]
            rows += [(f"{k}={_show(v)}", what if i == 0 else "") for i, (k, v) in enumerate(leaves[:6])]
            if len(leaves) > 6:
                rows.append((f"{key[:-2]}....", f"(--cfg job lists all {len(leaves)})"))
            continue
        parent_key, _, last = key.rpartition(".")
        parent = OmegaConf.select(cfg, parent_key, throw_on_missing=False) if parent_key else cfg
        if not OmegaConf.is_dict(parent) or last not in list(parent.keys()):  # keys(): nothing resolved
            rows.append((key, what))  # a setting of another choice (data.root with data=synthetic)
            continue
        value = OmegaConf.to_container(parent, resolve=False, throw_on_missing=False)[last]
        rows.append((f"{key}={_show(value)}", what))
    width = min(max((len(r[0]) for r in rows), default=0) + 2, 34)
    lines = []
    for left, what in rows:
        if len(left) >= width:  # a long value: its description on the next line
            lines += [f"  {left}", *([f"  {'':<{width}}{what}"] if what else [])]
        else:
            lines.append(f"  {left:<{width}}{what}".rstrip())
    return lines


def _one_setting(value: Any) -> bool:
    """Whether a config value is one setting: not a mapping of settings (a search-space entry,
    a mapping with a `type`, is one)."""
    return not isinstance(value, dict) or "type" in value


def _show(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "[" + ",".join(_show(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_show(v)}" for k, v in value.items()) + "}"
    return str(value)


def _help_overrides(args: Sequence[str]) -> tuple[list[str], list[str]]:
    """The overrides (KEY=VALUE words) and `--config-dir` folders among `args`; other flags are
    for running and ignored by --help."""
    overrides: list[str] = []
    dirs: list[str] = []
    it = iter(args)
    for arg in it:
        if arg in ("--config-dir", "-cd"):
            dirs.append(next(it, ""))
        elif arg.startswith("--config-dir="):
            dirs.append(arg.split("=", 1)[1])
        elif not arg.startswith("-") and "=" in arg and "," not in arg:
            overrides.append(arg)
    return overrides, [d for d in dirs if d]
