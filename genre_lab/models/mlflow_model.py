"""A trained model as an MLflow pyfunc model directory, and as the LoggedModel of its run.

The directory holds the weights and plain config (`artifacts/weights.pt`, loaded weights-only),
the serving code as a file (`genre_lab/serving/pyfunc_model.py`, MLflow's "models from code":
nothing is unpickled) and genre_lab itself under `code/`, so a fresh environment needs only the
pip requirements: genre_lab's own dependencies, pinned to the versions installed here.
`SIGNATURE` is the answer shape and params that `genre_lab.serving.pyfunc` serves; the request
fields are `REQUEST_FIELDS`, checked per record by the model (no input schema: see `SIGNATURE`).

Training and the ensemble command log models through this module; it refers to the serving
code by path and never imports `genre_lab.inference`.
"""

from __future__ import annotations

import base64
import io
import logging
import math
import tempfile
from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, requires, version
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import mlflow.pyfunc
import numpy as np
import pandas as pd
import soundfile as sf
from mlflow import MlflowClient
from mlflow.entities import LoggedModelOutput, Metric
from mlflow.models import ModelSignature
from genre_lab.tracking.mlflow_runs import using_tracking_uri
from mlflow.types import DataType
from mlflow.types.schema import Array, ColSpec, Object, ParamSchema, ParamSpec, Property, Schema
from packaging.requirements import Requirement

from genre_lab.config import CONF_DIR
from genre_lab.models import model_file as checkpoint
from genre_lab.models.model_file import PYFUNC_PATH, WEIGHTS_KEY
from genre_lab.models.network import GenreNet, exportable

if TYPE_CHECKING:  # training imports this module to log its model; never the other way round
    from genre_lab.training.lightning_module import GenreClassifier

log = logging.getLogger(__name__)


#: The installed distribution whose dependencies the served model needs.
_DISTRIBUTION = "genre_lab"
#: The genre_lab package folder, logged with each model as code.
_PACKAGE_DIR = Path(__file__).resolve().parent.parent
#: Logged as code too: a checkout's top-level `conf/` lands next to the package in the model's
#: `code/` folder, where config.CONF_DIR finds it; an installed package already holds its conf.
_CODE_PATHS = [str(_PACKAGE_DIR)] + ([] if CONF_DIR.is_relative_to(_PACKAGE_DIR) else [str(CONF_DIR)])
#: The served model's code (`GenreTaggerModel`), given to MLflow as a file.
_MODEL_CODE = _PACKAGE_DIR / "serving" / "pyfunc_model.py"

_GENRES = Array(Object([Property("label", DataType.string), Property("probability", DataType.double)]))
#: The fields a request record may carry: `audio_base64` (a string), `waveform` (a list of
#: floats) with its `sample_rate` (Hz). Listed in the model's metadata (`request_fields`).
REQUEST_FIELDS = ("audio_base64", "waveform", "sample_rate")
SIGNATURE = ModelSignature(
    # No input schema: MLflow's enforcement keeps only the columns a schema names, so a request
    # whose records carry none of the fields (`[{}]`, `[1, 2, 3]`) reached the model as zero
    # rows and was answered with none; a typed schema also failed every record of a request
    # for one record's missing field. Each record is checked in `GenreTaggerModel._tag_row`,
    # and gets its own row, an error row when it is unusable.
    inputs=None,
    outputs=Schema([
        ColSpec(_GENRES, "genres"),
        ColSpec(Array(Object([Property("start", DataType.double), Property("end", DataType.double),
                              Property("genres", _GENRES)])), "segments", required=False),
        ColSpec(DataType.string, "error", required=False),
        ColSpec(DataType.string, "warning", required=False),
    ]),
    params=ParamSchema([ParamSpec("top_k", DataType.long, 3), ParamSpec("segment_seconds", DataType.double, 0.0),
                        ParamSpec("min_content", DataType.boolean, False)]),
)


#: The answer's columns, one row per record.
OUTPUT_COLUMNS = ("genres", "segments", "error", "warning")



class SavesItself(Protocol):
    """A model that writes its own weights-only file (an ensemble): `config` holds its `data`
    contract (sample rate) and `classes`."""

    config: dict[str, Any]

    def save(self, path: str | Path) -> None: ...


Source = "str | Path | GenreNet | GenreClassifier | SavesItself"


def export_weights(source: Source, dst: Path) -> dict[str, Any]:
    """Write a weights-only file (state dict + spec, no optimiser state; or what a model that
    saves itself writes) for the model dir, through the one checkpoint reader and writer;
    returns the config."""
    if not isinstance(source, (str, Path)) and not exportable(source):
        raise ValueError("this model was prepared to run on one device (Tagger.model, or load_model(source, device=...)): "
                         "its state dict is not a checkpoint's; export the model as trained or loaded without a device")
    if isinstance(source, (str, Path)):
        spec, weights = checkpoint.read(source)
        checkpoint.write(dst, spec, weights)
        return spec.to_dict()
    if isinstance(getattr(source, "net", None), GenreNet):  # a GenreClassifier: a model file holds the network's keys
        source = source.net
    if isinstance(source, GenreNet):
        checkpoint.write(dst, source.spec, source.state_dict())
    else:
        source.save(dst)
    return source.config


def _requirements() -> list[str]:
    """genre_lab's own dependencies (not its extras), pinned to the installed versions: read
    from the installed distribution so the list cannot drift from pyproject.toml."""
    try:
        declared = requires(_DISTRIBUTION) or []
    except PackageNotFoundError:
        log.warning("%s is not installed as a distribution; the logged model lists no pip requirements", _DISTRIBUTION)
        return []
    out = []
    for line in declared:
        req = Requirement(line)
        # Evaluating the marker with no extra drops `extra == "dev"` entries and anything
        # not meant for this platform.
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        try:
            out.append(f"{req.name}=={version(req.name)}")
        except PackageNotFoundError:
            out.append(str(req))
    return out


def _package_version() -> str:
    try:
        return version(_DISTRIBUTION)
    except PackageNotFoundError:
        return "unknown"


def input_example(sample_rate: int, seconds: float = 0.5) -> pd.DataFrame:
    """One request row: a short chord as a base64 WAV file."""
    t = np.arange(int(sample_rate * seconds)) / sample_rate
    wave = sum(0.2 * np.sin(2 * np.pi * f * t) for f in (220.0, 277.2, 329.6))
    buf = io.BytesIO()
    sf.write(buf, wave, sample_rate, format="WAV", subtype="PCM_16")
    return pd.DataFrame({"audio_base64": [base64.b64encode(buf.getvalue()).decode("ascii")]})


def _model_arguments(weights: Path, config: dict[str, Any], run_id: str | None) -> dict[str, Any]:
    """What `save_model` and `log_model` are given: the model as code, its weights, request
    shape, requirements, and genre_lab itself as code so the model needs no install of it."""
    return dict(
        # Models from code: the model is this package's class, not a pickle of it.
        python_model=str(_MODEL_CODE),
        artifacts={WEIGHTS_KEY: str(weights)},
        # genre_lab and its configs travel in the model's `code/` folder, which MLflow puts
        # on sys.path when loading: `mlflow models serve` with the default virtualenv manager
        # then needs only the pip requirements, not this package from an index.
        code_paths=_CODE_PATHS,
        signature=SIGNATURE,
        input_example=(input_example(int(config["data"]["sample_rate"])), {"top_k": 3}),
        # Explicit requirements: inferring them would load the model in a subprocess.
        pip_requirements=_requirements(),
        metadata={"genre_lab_run_id": run_id, "genre_lab_version": _package_version(),
                  "classes": list(config["classes"]), "request_fields": list(REQUEST_FIELDS)},
    )


def save_tagger_model(
    path: str | Path, source: Source, run_id: str | None = None
) -> Path:
    """Write the pyfunc model directory for `source` (a checkpoint or an in-memory model)."""
    path = Path(path)
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "weights.pt"
        config = export_weights(source, weights)
        mlflow.pyfunc.save_model(path=str(path), **_model_arguments(weights, config, run_id))
    return path


#: Tags of the training run copied onto its LoggedModel (the Models tab's columns).
_MODEL_TAGS = ("model", "features", "dataset", "genre_lab_version")


def log_tagger_model(
    client: MlflowClient, run_id: str, source: Source,
    metrics: Mapping[str, float] | None = None,
) -> str:
    """Log the pyfunc as an MLflow 3 LoggedModel named `model`, output of run `run_id`, with the
    run's params and the reported `metrics` linked to it; returns its `models:/<model id>` URI.

    `runs:/<run id>/model` still resolves to it (MLflow maps a run's model name to its
    LoggedModel), so downloads, loading and `mlflow models serve` by run keep working."""
    run = client.get_run(run_id)
    logged = client.create_logged_model(
        run.info.experiment_id, name=PYFUNC_PATH, source_run_id=run_id, model_type="genre-tagger",
        params=dict(run.data.params),
        tags={k: run.data.tags[k] for k in _MODEL_TAGS if k in run.data.tags},
    )
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "weights.pt"
        config = export_weights(source, weights)
        # log_model writes through the process-wide tracking URI: point it at this run's store
        # for the call (MLflow's own context manager, which restores an unset URI as unset).
        with using_tracking_uri(client.tracking_uri):
            mlflow.pyfunc.log_model(name=PYFUNC_PATH, model_id=logged.model_id,
                                    **_model_arguments(weights, config, run_id))
    client.log_outputs(run_id, models=[LoggedModelOutput(logged.model_id, step=0)])
    # A metric `val/...` was measured on the run's dataset input of context `val` (the same for
    # train and test): linked with it, the model page lists the datasets it was scored on.
    datasets = {tag.value: (d.dataset.name, d.dataset.digest) for d in run.inputs.dataset_inputs
                for tag in d.tags if tag.key == "mlflow.data.context"}
    _link_metrics(client, run_id, logged.model_id, metrics or {}, datasets)
    return f"models:/{logged.model_id}"


def _link_metrics(client: MlflowClient, run_id: str, model_id: str, metrics: Mapping[str, float],
                  datasets: Mapping[str, tuple[str, str]]) -> None:
    """Attach the run's reported metrics (the kept epoch's validation scores, the test scores)
    to the model, with the dataset each was measured on (`datasets`: split -> (name, digest)):
    each is logged again at the step and time it was first logged, so the run's curves stay
    as they were."""
    linked = []
    for key, value in metrics.items():
        history = [m for m in client.get_metric_history(run_id, key) if math.isclose(m.value, value, rel_tol=1e-6)]
        if history:
            first = history[-1]
            name, digest = datasets.get(key.split("/", 1)[0], (None, None))
            linked.append(Metric(key, first.value, first.timestamp, first.step, model_id=model_id,
                                 dataset_name=name, dataset_digest=digest, run_id=run_id))
    for i in range(0, len(linked), 1000):  # MLflow's batch limit
        client.log_batch(run_id, metrics=linked[i : i + 1000])
