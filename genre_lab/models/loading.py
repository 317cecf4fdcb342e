"""Load a trained model from anything that names one: `load_model(source)`.

A source is a model file (a Lightning checkpoint, exported weights or an ensemble file:
`genre_lab.models.model_file`'s formats), a pyfunc model folder, an MLflow run id (its
`checkpoints/best.ckpt`, else its logged model), an MLflow URI (`models:/<name>/<version>`,
`models:/<name>@<alias>`, `runs:/<run id>/model` for the pyfunc logged by training,
`runs:/<run id>/<file>` for any checkpoint artifact) or a shipped pretrained network
(`pretrained:musicnn-msd`). A `genre-lab probe` run is a model too when it logged one (a
mean-pooled probe of the penultimate layer: `genre_lab.models.probe_file.probe_network`). Every command that takes a model goes through here: evaluate,
predict and the Tagger, explain, embed, ensemble members, serving and `init_from`. Whatever
the source, weights are read with `torch.load(weights_only=True)` and validated by
`genre_lab.models.model_file`: no pickled code from a model file is ever executed.

This module sits below both training and inference: training (`init_from`) loads single
networks here without importing `genre_lab.inference`, which is imported only to rebuild an
ensemble file.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from genre_lab.models import model_file as checkpoint
from genre_lab.models.model_file import PYFUNC_PATH, RUN_CHECKPOINT, WEIGHTS_KEY
from genre_lab.models.network import GenreNet

if TYPE_CHECKING:
    from genre_lab.models.ensemble import EnsembleClassifier

_RUN_ID = re.compile(r"^[0-9a-f]{32}$")


class ModelSourceError(ValueError):
    """The model argument names nothing loadable; the message says what was tried."""


@dataclass(frozen=True)
class ModelSource:
    """A model resolved to a local weights file, remembering the MLflow run it came from."""

    spec: str  # the source as given: a path, run id, URI or pretrained: name
    checkpoint: Path
    run_id: str | None = None


@dataclass(frozen=True)
class LoadedModel:
    """A rebuilt network (or ensemble) in eval mode, and where it came from."""

    network: GenreNet | EnsembleClassifier
    source: ModelSource


def load_model(source: str | Path, tracking_uri: str | None = None, device: str | torch.device | None = None,
               *, one_model_for: str | None = None) -> LoadedModel:
    """The model `source` names (see the module's docstring), rebuilt weights-only.

    `tracking_uri`: the MLflow store for run ids and URIs (else `MLFLOW_TRACKING_URI`, else the
    project's sqlite file). Without `device`: the whole model on the CPU, as portable as the
    file (training, evaluation, ensembles, export). With one: built to run only there (a
    `backend=auto` front end keeps one implementation; `GenreNet.from_spec`) and moved there.
    `one_model_for` names the setting or command that needs a single network (`init_from`,
    `embed`): an ensemble file is then refused, naming it, before anything is built."""
    resolved = resolve(source, tracking_uri)
    return LoadedModel(_rebuild(resolved, device, one_model_for), resolved)


def resolve(spec: str | Path, tracking_uri: str | None = None) -> ModelSource:
    """The local weights file of a model file, pyfunc folder, run id, `models:/` / `runs:/` URI
    or `pretrained:` name, downloading or writing it into `cache_root()` where needed."""
    text = str(spec)
    if text.startswith("pretrained:"):  # `pretrained.zoo.PREFIX`, without importing Hydra for a file
        return _pretrained(text)
    if Path(text).is_file():
        return ModelSource(text, Path(text))
    if Path(text).is_dir():
        return ModelSource(text, _pyfunc_weights(Path(text), text))
    if text.startswith(("models:/", "runs:/")) or _RUN_ID.match(text):
        # MLflow only from here on (imported lazily: a model file needs none of it). The same
        # store training writes to: the argument, else MLFLOW_TRACKING_URI, else the project's
        # sqlite file.
        from genre_lab.tracking import mlflow_runs as tracking

        uri = tracking_uri or tracking.tracking_uri()
        return _from_uri(text, uri) if text.startswith(("models:/", "runs:/")) else _from_run(text, uri)
    raise ModelSourceError(
        f"model '{text}' is not an existing checkpoint file, an MLflow run id (32 hex digits), "
        "a models:/ or runs:/ URI, or pretrained:musicnn-msd|mtt"
    )


def _pretrained(ref: str) -> ModelSource:
    """A shipped pretrained network as an ordinary genre_lab weights file (written into the private
    cache on each call): its own tags as the classes, `task=multilabel` (each tag
    an independent sigmoid, as the original tagger reports them) with its own tag layer as the
    head, its own 3 s windows without overlap. Everything that takes a model file then takes
    it: predict, the Tagger, evaluate, embed, serving (`save_tagger_model`), ensembles and
    `init_from`."""
    from genre_lab.models.pretrained import zoo

    try:
        name = zoo.pretrained_name(ref)
    except ValueError as err:
        raise ModelSourceError(str(err)) from err
    config = zoo.pretrained_config(ref)
    frontend, backbone = zoo.build_pretrained(ref)
    spec = checkpoint.ModelSpec.from_dict({**config, "classes": list(backbone.tag_names), "task": "multilabel"}, ref)
    model = GenreNet.from_spec(spec)
    model.frontend.load_state_dict(frontend.state_dict())
    model.backbone.load_state_dict(backbone.state_dict())
    # The original 50-tag output layer is the head.
    model.head.load_state_dict(backbone.tag_head.state_dict())
    path = cache_root() / f"pretrained-{name}.pt"
    partial = path.with_suffix(f".{os.getpid()}.tmp")
    checkpoint.write(partial, spec, model.state_dict())
    os.replace(partial, path)
    return ModelSource(ref, path)


def cache_root() -> Path:
    """This user's private folder for downloaded models: `$XDG_CACHE_HOME/genre_lab/models`
    (default `~/.cache/...`), created 0700. A shared, predictable `/tmp` path would let another
    local user plant a model folder there before we download into it."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    root = base / "genre_lab" / "models"
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    info = root.stat()
    if info.st_uid != os.getuid() or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise ModelSourceError(f"model cache {root} is not private to this user (owner uid {info.st_uid}, "
                               f"mode {stat.filemode(info.st_mode)}); remove it or set XDG_CACHE_HOME")
    os.chmod(root, 0o700)
    return root


def download_folder(tracking_uri: str, **where: str) -> Path:
    """The local folder a model artifact is downloaded into: one per (store, artifact) inside
    `cache_root()`, so repeated loads overwrite one copy instead of leaving a new temporary
    folder behind each time."""
    key = "\n".join([tracking_uri, *(f"{k}={v}" for k, v in sorted(where.items()))])
    folder = cache_root() / hashlib.sha256(key.encode()).hexdigest()[:20]
    folder.mkdir(exist_ok=True, mode=0o700)
    return folder


def _download(tracking_uri: str, **where: str) -> Path:
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    from genre_lab.tracking.mlflow_runs import using_tracking_uri

    try:
        dst = download_folder(tracking_uri, **where)
        # A logged model (`runs:/<id>/model`, `models:/m-...`) is looked up through the
        # process-wide tracking URI whatever URI is passed (MLflow 3.17): point it at this store.
        with using_tracking_uri(tracking_uri):
            return Path(mlflow.artifacts.download_artifacts(tracking_uri=tracking_uri, dst_path=str(dst), **where))
    except (MlflowException, OSError) as err:
        target = where.get("artifact_uri") or f"run {where.get('run_id')} artifact {where.get('artifact_path')}"
        raise ModelSourceError(f"cannot fetch {target} from {tracking_uri}: {err}") from err


def _from_run(run_id: str, tracking_uri: str) -> ModelSource:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from genre_lab.tracking.stores import sqlite_file
    from genre_lab.tracking.mlflow_runs import redact_url

    where = redact_url(tracking_uri)
    database = sqlite_file(tracking_uri)
    if database is not None and not database.is_file():  # MlflowClient would create an empty store
        raise ModelSourceError(f"no MLflow run '{run_id}' in {where}: that store does not exist")
    client = MlflowClient(tracking_uri)
    try:
        run = client.get_run(run_id)
    except MlflowException as err:
        raise ModelSourceError(f"no MLflow run '{run_id}' in {where}") from err
    names = {a.path for a in client.list_artifacts(run_id, "checkpoints")}
    if RUN_CHECKPOINT in names:
        return ModelSource(run_id, _download(tracking_uri, run_id=run_id, artifact_path=RUN_CHECKPOINT), run_id)
    if any(a.path == f"{PYFUNC_PATH}/MLmodel" for a in client.list_artifacts(run_id, PYFUNC_PATH)):
        model_dir = _download(tracking_uri, run_id=run_id, artifact_path=PYFUNC_PATH)
        return ModelSource(run_id, _pyfunc_weights(model_dir, run_id), run_id)
    if run.data.tags.get("run_type") == "probe":
        raise ModelSourceError(f"probe run '{run_id}' logged no model: only a probe with probe.layer=penultimate and "
                               "probe.pooling=mean on one split (no data.folds) is a network "
                               "(genre_lab.models.probe_file.probe_network); probe again with those settings")
    raise ModelSourceError(f"MLflow run '{run_id}' has neither {RUN_CHECKPOINT} nor a '{PYFUNC_PATH}' model")


def _registered_version(uri: str, tracking_uri: str) -> tuple[str, str | None]:
    """(storage URI, training run id) of `models:/<name>/<version>`, `models:/<name>@<alias>`
    or `models:/<name>/latest`, looked up in the registry of this tracking store.

    Resolved here because `mlflow.artifacts.download_artifacts` resolves `models:/` against
    the process-wide registry URI, ignoring the one it is given."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri, registry_uri=tracking_uri)
    body = uri.removeprefix("models:/").strip("/")
    try:
        if "@" in body:
            name, alias = body.split("@", 1)
            mv = client.get_model_version_by_alias(name, alias)
        else:
            name, _, ref = body.partition("/")
            if ref == "latest":
                versions = client.search_model_versions(f"name = '{name}'")
                if not versions:
                    raise ModelSourceError(f"registered model '{name}' has no versions")
                mv = max(versions, key=lambda v: int(v.version))
            elif ref.isdigit():
                mv = client.get_model_version(name, ref)
            else:
                raise ModelSourceError(f"'{uri}': use models:/<name>/<version>, models:/<name>/latest or models:/<name>@<alias>")
        return client.get_model_version_download_uri(mv.name, mv.version), mv.run_id or None
    except MlflowException as err:
        raise ModelSourceError(f"cannot find {uri} in the registry at {tracking_uri}: {err}") from err


def _from_uri(uri: str, tracking_uri: str) -> ModelSource:
    run_id = uri.split("/")[1] if uri.startswith("runs:/") else None
    if uri.startswith("models:/"):
        storage, run_id = _registered_version(uri, tracking_uri)
        local = _download(tracking_uri, artifact_uri=storage)
    else:
        local = _download(tracking_uri, artifact_uri=uri)
    if local.is_file():
        return ModelSource(uri, local, run_id)
    checkpoint = _pyfunc_weights(local, uri)
    if run_id is None:
        from mlflow.models import Model

        run_id = (Model.load(str(local)).metadata or {}).get("genre_lab_run_id")
    return ModelSource(uri, checkpoint, run_id)


def _pyfunc_weights(model_dir: Path, spec: str) -> Path:
    """The weights file inside a pyfunc model directory written by `genre_lab.models.mlflow_model`."""
    from mlflow.models import Model

    if not (model_dir / "MLmodel").is_file():
        raise ModelSourceError(f"'{spec}' is a folder without an MLmodel file, not a logged model")
    flavor = Model.load(str(model_dir)).flavors.get("python_function", {})
    entry = (flavor.get("artifacts") or {}).get(WEIGHTS_KEY)
    if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
        raise ModelSourceError(f"'{spec}' is an MLflow model without genre_lab weights (artifact '{WEIGHTS_KEY}')")
    weights = (model_dir / str(entry["path"])).resolve()
    if not weights.is_relative_to(model_dir.resolve()):
        raise ModelSourceError(f"'{spec}': artifact path {entry['path']!r} points outside the model folder")
    return weights


def _rebuild(source: ModelSource, device: str | torch.device | None,
             one_model_for: str | None) -> GenreNet | EnsembleClassifier:
    """The network (or ensemble) in `source.checkpoint`, every part validated and built through
    `genre_lab.models.model_file.ModelSpec`; a file that cannot be rebuilt is a ModelSourceError."""
    path = source.checkpoint
    only_for = None if device is None else torch.device(device).type
    try:
        state = checkpoint.load_file(path)
        if checkpoint.is_ensemble(state):
            if one_model_for:
                raise ModelSourceError(f"'{source.spec}' is an ensemble; {one_model_for} takes one of its members")
            model: GenreNet | EnsembleClassifier = _ensemble(state, path)
        else:
            spec, weights = checkpoint.parse(state, path)
            model = GenreNet.from_spec(spec, only_for)
            model.load_weights(weights)
    except ModelSourceError:
        raise
    except checkpoint.CheckpointError as err:
        from genre_lab.models.probe_file import is_probe_file

        if is_probe_file(path):
            raise ModelSourceError(f"{path} is a linear probe's head, not a network: give the probe's run id "
                                   "(its logged model) instead") from err
        raise ModelSourceError(str(err)) from err
    # A valid spec can still fail to build or not match its weights: the file's fault.
    except (ValueError, RuntimeError, TypeError, KeyError) as err:
        raise ModelSourceError(f"cannot rebuild the model from checkpoint {path}: {type(err).__name__}: {err}") from err
    return model.to(device or "cpu").eval()


def _ensemble(state: dict, path: Path) -> EnsembleClassifier:
    """An ensemble file's members (validated by `checkpoint.parse_ensemble`) averaged by
    `EnsembleClassifier`; members that cannot form one are the file's fault."""
    from genre_lab.models.ensemble import EnsembleClassifier, EnsembleError

    members, weights = checkpoint.parse_ensemble(state, path)
    try:
        return EnsembleClassifier.from_members(members, weights)
    except EnsembleError as err:
        raise ModelSourceError(f"{path}: {err}") from err
