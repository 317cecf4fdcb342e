"""Where the configs live, where stores and outputs go, and the OmegaConf resolvers for both.

The configs live in the top-level `conf/` of a checkout, which the build ships inside the
package as `genre_lab/conf/` (`CONF_DIR` finds either), and entry points compose them by
absolute path, so they work from any working directory and from an installed wheel; Hydra's
`--config-dir` adds a user's own folder on top. Stores (mlflow.db, optuna.db), the decode cache
and outputs go to the *home*: `GENRE_LAB_HOME` when set, else the current directory - never the
package location (inside site-packages once installed).
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import hydra
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, OmegaConf, open_dict

#: Environment variable naming the folder for stores, caches and outputs.
HOME_ENV = "GENRE_LAB_HOME"

_PACKAGE_DIR = Path(__file__).resolve().parent
#: The source checkout holding this package (tests, notebooks and experiments/ live there);
#: never a default location for data.
PROJECT_ROOT = _PACKAGE_DIR.parent
#: The Hydra configs: `conf/` at the top of a source checkout (and of a logged model's `code/`
#: folder), `genre_lab/conf/` in an installed wheel, where the build maps `conf/` into the package.
CONF_DIR = PROJECT_ROOT / "conf" if (PROJECT_ROOT / "conf" / "train.yaml").is_file() else _PACKAGE_DIR / "conf"


def home() -> Path:
    """`GENRE_LAB_HOME` (created if missing) when set, else the current directory; absolute."""
    value = os.environ.get(HOME_ENV)
    if not value:
        return Path.cwd()
    path = Path(value).expanduser().resolve()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OSError(f"{HOME_ENV}={value}: cannot create the folder: {err}") from err
    return path


# `${genre_lab_home:}` is the default root of every store, cache and output folder in conf/
# (`paths.root_dir`); `MLFLOW_TRACKING_URI` and overrides still win. Not cached: the working
# directory and the environment may change within one process (tests, notebooks).
if not OmegaConf.has_resolver("genre_lab_home"):
    OmegaConf.register_new_resolver("genre_lab_home", lambda: str(home()))


def _tracking_uri(root: str) -> str:
    from genre_lab.tracking.mlflow_runs import tracking_uri  # MLflow is imported only when a config's store is read

    return tracking_uri(root)


# `${genre_lab_tracking_uri:${paths.root_dir}}`: the MLflow store of the configs, by the same rule
# as every command's (`genre_lab.tracking.mlflow_runs.tracking_uri`).
if not OmegaConf.has_resolver("genre_lab_tracking_uri"):
    OmegaConf.register_new_resolver("genre_lab_tracking_uri", _tracking_uri)


def _multilabel_if(value: object, *multilabel_values: object) -> str:
    return "multilabel" if value in multilabel_values else "multiclass"


# `${genre_lab_multilabel_if:${data.labels},genres_all}`: `multilabel` when a dataset setting holds
# one of the values that pick multi-label targets, else `multiclass` (`data.dataset_task` of FMA).
if not OmegaConf.has_resolver("genre_lab_multilabel_if"):
    OmegaConf.register_new_resolver("genre_lab_multilabel_if", _multilabel_if)


def config_groups(dirs: Sequence[str | Path] = ()) -> set[str]:
    """Names of the config groups (`model`, `data`, ...): the folders of `conf/` and of `dirs`
    (a user's `--config-dir`)."""
    return {p.name for d in (CONF_DIR, *map(Path, dirs)) if Path(d).is_dir()
            for p in Path(d).iterdir() if p.is_dir() and not p.name.startswith((".", "_"))}


def group_options(group: str, dirs: Sequence[str | Path] = ()) -> set[str]:
    """The options of config group `group`: the `<name>.yaml` files in `conf/<group>/` and in
    `<dir>/<group>/` for each of `dirs`. Files starting with `_` are pieces other options
    include, not options."""
    return {p.stem for d in (CONF_DIR, *map(Path, dirs)) if (Path(d) / group).is_dir()
            for p in (Path(d) / group).glob("*.yaml") if not p.name.startswith("_")}


def config_items(tree: Any, prefix: str = "", lists: bool = False,
                 whole: Callable[[Any], bool] = lambda value: False) -> Iterator[tuple[str, Any]]:
    """(dotted key, value) of every node of a config read as plain containers
    (`OmegaConf.to_container`), a parent before its children: a mapping's entries and, with
    `lists`, a list's items by index (`a.0`). A value for which `whole` is true is not entered
    (a search-space entry is one setting). The keys are Hydra's override paths, for the
    did-you-mean of a misspelt setting and for listing a config's settings."""
    entries = tree.items() if isinstance(tree, dict) else enumerate(tree) if lists and isinstance(tree, list) else ()
    for key, value in entries:
        path = f"{prefix}{key}"
        yield path, value
        if not whole(value):
            yield from config_items(value, f"{path}.", lists, whole)


#: Hydra's compose API keeps global state: threads (a sweep worker's `n_jobs`) take turns.
_COMPOSE_LOCK = threading.Lock()


def compose(overrides: Sequence[str] = (), config_name: str = "train", output_dir: str | Path | None = None) -> DictConfig:
    """Compose `<config_name>.yaml` with overrides outside a Hydra run's own config (sweep trials,
    resumed runs, tests, notebooks). Inside `@hydra.main` Hydra is already initialised on `conf/`
    plus the user's `--config-dir`, so that search path is used; elsewhere `conf/` is. There is no
    Hydra run directory for the result, so `paths.output_dir` is set explicitly (a fresh temporary
    folder when `output_dir` is not given)."""
    with _COMPOSE_LOCK:
        if GlobalHydra.instance().is_initialized():
            cfg = hydra.compose(config_name=config_name, overrides=list(overrides))
        else:
            with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
                cfg = hydra.compose(config_name=config_name, overrides=list(overrides))
    if "paths" in cfg:
        with open_dict(cfg):
            cfg.paths.output_dir = str(output_dir or tempfile.mkdtemp(prefix="genre_lab_"))
    return cfg
