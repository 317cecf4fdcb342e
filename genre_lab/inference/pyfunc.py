"""The trained model as an MLflow pyfunc, so `mlflow models serve` answers with genres.

Request rows (a DataFrame; over HTTP `{"dataframe_records": [...]}`) carry either
`audio_base64` (the bytes of any audio file genre_lab decodes, base64-encoded) or `waveform`
(mono samples as floats) with its `sample_rate`. Params: `top_k` (default 3),
`segment_seconds` (0: no timeline) and `min_content` (default false: true makes audio without
music content an error instead of a warning). Each row answers `genres` (top-k `label`/`probability`),
`segments` when asked, `error` (null when tagged) and `warning` (null unless the audio carries
no music to classify: DC only, near-silence, mostly padding, a constant tone; see
`genre_lab.content`).

Limits, checked per record: a bad field gives that record its `error` and never fails the
others or the request (params apply to every record, so a bad param is every record's error):
- `sample_rate`: required with a `waveform`, a whole number of Hz from 1,000 to 384,000;
- `top_k`: a whole number from 1 to the model's number of classes;
- `segment_seconds`: 0 (no timeline) or at least 0.5 s, and at most
  `GENRE_LAB_SERVE_MAX_SEGMENTS` (default 2400) segments per record;
- audio duration: at most `GENRE_LAB_SERVE_MAX_SECONDS` (default 1200 s, 20 minutes) per
  record, checked on a waveform's length, on an upload's header before decoding and on the
  decoded audio;
- `audio_base64`: decodes to at most `GENRE_LAB_SERVE_MAX_UPLOAD_MB` (default 256 MiB), checked
  on the string's length before decoding.
The environment variables are read when the model loads (`genre_lab.inference.limits`).
The model's probabilities are checked finite: damaged weights give errors, never NaN genres.

Training logs it as an MLflow 3 LoggedModel (`models:/<model id>`, also `runs:/<run id>/model`).
The model directory holds the weights and plain config (`artifacts/weights.pt`, loaded
weights-only), `pyfunc_model.py` (MLflow "models from code": nothing is unpickled) and
genre_lab itself under `code/`, so a fresh environment needs only the pip requirements:
genre_lab's own dependencies, pinned to the versions installed here.
"""

from __future__ import annotations

import base64
import binascii
import io
import logging
import math
import tempfile
from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, requires, version
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd
import soundfile as sf
from mlflow import MlflowClient
from mlflow.entities import LoggedModelOutput, Metric
from mlflow.models import ModelSignature
from mlflow.tracking._tracking_service.utils import _use_tracking_uri
from mlflow.types import DataType
from mlflow.types.schema import AnyType, Array, ColSpec, Object, ParamSchema, ParamSpec, Property, Schema
from packaging.requirements import Requirement

from ..audio import AudioDecodeError
from .. import checkpoint
from ..module import GenreClassifier
from . import ensemble
from .ensemble import EnsembleClassifier
from .limits import LimitError, ServingLimits, check_sample_rate, check_segment_seconds, check_top_k
from .loading import PYFUNC_PATH, WEIGHTS_KEY
from .tagger import Tagger, TaggingError, TagResult

log = logging.getLogger(__name__)

#: The installed distribution whose dependencies the served model needs.
_DISTRIBUTION = "genre_lab"
#: The genre_lab package folder, logged with each model as code.
_PACKAGE_DIR = Path(__file__).resolve().parents[1]

_GENRES = Array(Object([Property("label", DataType.string), Property("probability", DataType.double)]))
SIGNATURE = ModelSignature(
    # The fields (`audio_base64` a string, `waveform` a list of floats, `sample_rate` in Hz) are
    # typed Any: MLflow enforces a typed schema on the request as a whole, so one record without
    # a sample_rate (NaN in an integer column) or without a waveform (NaN in an array column)
    # failed every record with HTTP 400. Each record is checked in `_tag_row` instead.
    inputs=Schema([
        ColSpec(AnyType(), "audio_base64", required=False),
        ColSpec(AnyType(), "waveform", required=False),
        ColSpec(AnyType(), "sample_rate", required=False),
    ]),
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


def _missing(value: Any) -> bool:
    # Columns absent from some records arrive as NaN/None after the DataFrame is built.
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


class GenreTaggerModel(mlflow.pyfunc.PythonModel):
    """pyfunc wrapper around `Tagger`. Logged as code (`pyfunc_model.py`), not pickled; the
    weights are the `weights` artifact."""

    #: Replaced by the environment's limits when the model loads (`load_context`).
    limits = ServingLimits()

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        self.limits = ServingLimits.from_env()
        self.tagger = Tagger.load(context.artifacts[WEIGHTS_KEY])

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        params = params or {}
        records = model_input.to_dict("records")
        try:
            k = check_top_k(params.get("top_k", 3), len(self.tagger.classes))
            seconds = check_segment_seconds(params.get("segment_seconds"))
        except LimitError as err:
            # A param is every record's: each one gets the error, and the request still answers.
            results = [TagResult(path=None, error=str(err)) for _ in records]
        else:
            strict = bool(params.get("min_content", False))
            results = [self._tag_row(record, k, seconds, strict) for record in records]
        rows = []
        for result in results:
            row = result.to_dict()
            row.pop("path", None)
            row.pop("duration", None)
            row.setdefault("segments", None)
            rows.append(row)
        # object dtype keeps None as None (JSON null); pandas would turn it into NaN.
        return pd.DataFrame(rows, columns=list(OUTPUT_COLUMNS), dtype=object)

    def _tag_row(self, record: dict[str, Any], k: int, seconds: float | None, min_content: bool = False) -> TagResult:
        try:
            encoded, wave = record.get("audio_base64"), record.get("waveform")
            if not _missing(encoded) and not _missing(wave):
                raise LimitError("a record carries either audio_base64 or waveform, not both")
            if not _missing(encoded):
                if not isinstance(encoded, str):
                    raise LimitError(f"audio_base64 must be a base64 string, got {type(encoded).__name__}")
                self.limits.check_upload(len(encoded))
                return self._tag_bytes(base64.b64decode(encoded, validate=True), k, seconds, min_content)
            if not _missing(wave):
                return self._tag_waveform(wave, record.get("sample_rate"), k, seconds, min_content)
            return TagResult(path=None, error="record has neither audio_base64 nor waveform")
        except TaggingError as err:
            return TagResult(path=None, error=err.reason)
        except LimitError as err:
            return TagResult(path=None, error=str(err))
        except binascii.Error as err:
            return TagResult(path=None, error=f"audio_base64 is not valid base64: {err}")
        except Exception as err:  # one bad row must not fail the whole request
            return TagResult(path=None, error=f"{type(err).__name__}: {err}")

    def _tag_waveform(self, wave: Any, rate: Any, k: int, seconds: float | None, min_content: bool) -> TagResult:
        if _missing(rate):
            raise LimitError("a waveform needs its sample_rate (Hz)")
        rate = check_sample_rate(rate)
        try:
            samples = np.asarray(wave, dtype=np.float32)
        except (TypeError, ValueError):
            raise LimitError("waveform must be a list of numbers (mono samples)") from None
        if samples.ndim != 1:
            raise LimitError(f"waveform must be a flat list of mono samples, got shape {samples.shape}")
        self.limits.check_duration(len(samples) / rate, seconds)
        return self.tagger.tag_wave(samples, rate, k, seconds, min_content=min_content)

    def _tag_bytes(self, data: bytes, k: int, seconds: float | None, min_content: bool) -> TagResult:
        # Through a file, so uploads get exactly the checks and messages of files on disk.
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "upload"
            path.write_bytes(data)
            try:
                declared = _declared_seconds(path)
                if declared is not None:  # before decoding: a long song would be decoded whole
                    self.limits.check_duration(declared, seconds)
                wave = self.tagger.decode(path)
                self.limits.check_duration(len(wave) / self.tagger.sample_rate, seconds)
                return self.tagger.tag_wave(wave, None, k, seconds, min_content=min_content)
            except (AudioDecodeError, TaggingError) as err:
                return TagResult(path=None, error=err.reason)


def _declared_seconds(path: Path) -> float | None:
    """The duration an audio file's header declares, None when it cannot be read (decoding
    then says why)."""
    try:
        info = sf.info(str(path))
    except Exception:  # noqa: BLE001 - any header libsndfile refuses is reported by the decoder
        return None
    return info.frames / info.samplerate if info.samplerate > 0 and info.frames > 0 else None


def export_weights(source: str | Path | GenreClassifier | EnsembleClassifier, dst: Path) -> dict[str, Any]:
    """Write a weights-only file (state dict + spec, no optimiser state; or an ensemble file)
    for the model dir, through the one checkpoint reader and writer; returns the config."""
    if isinstance(source, (str, Path)):
        state = checkpoint.load_file(source)
        if ensemble.is_ensemble(state):
            source = ensemble.from_state(state, source)
        else:
            spec, weights = checkpoint.parse(state, source)
            checkpoint.write(dst, spec, weights)
            return spec.to_dict()
    if isinstance(source, EnsembleClassifier):
        source.save(dst)
    else:
        checkpoint.write(dst, source.spec, source.state_dict())
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
        python_model=str(Path(__file__).with_name("pyfunc_model.py")),
        artifacts={WEIGHTS_KEY: str(weights)},
        # genre_lab (configs included) travels in the model's `code/` folder, which MLflow puts
        # on sys.path when loading: `mlflow models serve` with the default virtualenv manager
        # then needs only the pip requirements, not this package from an index.
        code_paths=[str(_PACKAGE_DIR)],
        signature=SIGNATURE,
        input_example=(input_example(int(config["data"]["sample_rate"])), {"top_k": 3}),
        # Explicit requirements: inferring them would load the model in a subprocess.
        pip_requirements=_requirements(),
        metadata={"genre_lab_run_id": run_id, "genre_lab_version": _package_version(),
                  "classes": list(config["classes"])},
    )


def save_tagger_model(
    path: str | Path, source: str | Path | GenreClassifier, run_id: str | None = None
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
    client: MlflowClient, run_id: str, source: str | Path | GenreClassifier,
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
        with _use_tracking_uri(client.tracking_uri):
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
