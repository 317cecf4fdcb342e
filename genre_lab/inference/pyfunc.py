"""The trained model as an MLflow pyfunc, so `mlflow models serve` answers with genres.

Request rows (a DataFrame; over HTTP `{"dataframe_records": [...]}`) carry either
`audio_base64` (the bytes of any audio file genre_lab decodes, base64-encoded) or `waveform`
(mono samples as floats) with its `sample_rate`. Params: `top_k` (default 3) and
`segment_seconds` (0: no timeline). Each row answers `genres` (top-k `label`/`probability`),
`segments` when asked, and `error` (null when tagged): a bad row never fails the others.

The model directory holds the weights and plain config (`artifacts/weights.pt`, loaded
weights-only) and `pyfunc_model.py` (MLflow "models from code": nothing is unpickled); the
code is genre_lab itself, which must be importable where the model is served
(`--env-manager local` in this environment). The model's pip requirements are genre_lab's own
dependencies, pinned to the versions installed here.
"""

from __future__ import annotations

import base64
import binascii
import io
import logging
import math
import tempfile
from importlib.metadata import PackageNotFoundError, requires, version
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd
import soundfile as sf
import torch
from mlflow.models import ModelSignature
from mlflow.types import DataType
from mlflow.types.schema import Array, ColSpec, Object, ParamSchema, ParamSpec, Property, Schema
from packaging.requirements import Requirement

from ..audio import AudioDecodeError
from ..module import CONFIG_KEY, GenreClassifier
from .loading import PYFUNC_PATH, WEIGHTS_KEY
from .tagger import Tagger, TaggingError, TagResult

log = logging.getLogger(__name__)

#: The installed distribution whose dependencies the served model needs.
_DISTRIBUTION = "genre_lab"

_GENRES = Array(Object([Property("label", DataType.string), Property("probability", DataType.double)]))
SIGNATURE = ModelSignature(
    inputs=Schema([
        ColSpec(DataType.string, "audio_base64", required=False),
        ColSpec(Array(DataType.double), "waveform", required=False),
        ColSpec(DataType.long, "sample_rate", required=False),
    ]),
    outputs=Schema([
        ColSpec(_GENRES, "genres"),
        ColSpec(Array(Object([Property("start", DataType.double), Property("end", DataType.double),
                              Property("genres", _GENRES)])), "segments", required=False),
        ColSpec(DataType.string, "error", required=False),
    ]),
    params=ParamSchema([ParamSpec("top_k", DataType.long, 3), ParamSpec("segment_seconds", DataType.double, 0.0)]),
)


def _missing(value: Any) -> bool:
    # Columns absent from some records arrive as NaN/None after the DataFrame is built.
    return value is None or (isinstance(value, float) and math.isnan(value))


class GenreTaggerModel(mlflow.pyfunc.PythonModel):
    """pyfunc wrapper around `Tagger`. Logged as code (`pyfunc_model.py`), not pickled; the
    weights are the `weights` artifact."""

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        self.tagger = Tagger.load(context.artifacts[WEIGHTS_KEY])

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        params = params or {}
        k = int(params.get("top_k") or 3)
        seconds = float(params.get("segment_seconds") or 0) or None
        rows = [self._tag_row(record, k, seconds).to_dict() for record in model_input.to_dict("records")]
        for row in rows:
            row.pop("path", None)
            row.pop("duration", None)
            row.setdefault("segments", None)
        # object dtype keeps None as None (JSON null); pandas would turn it into NaN.
        return pd.DataFrame(rows, columns=["genres", "segments", "error"], dtype=object)

    def _tag_row(self, record: dict[str, Any], k: int, seconds: float | None) -> TagResult:
        try:
            encoded, wave = record.get("audio_base64"), record.get("waveform")
            if not _missing(encoded):
                return self._tag_bytes(base64.b64decode(str(encoded), validate=True), k, seconds)
            if wave is not None and not _missing(wave) and len(wave):
                rate = record.get("sample_rate")
                if _missing(rate):
                    raise TaggingError("<waveform>", "a waveform needs its sample_rate")
                return self.tagger.tag(np.asarray(wave, dtype=np.float32), int(rate), k, seconds)
            return TagResult(path=None, error="row has neither audio_base64 nor waveform")
        except TaggingError as err:
            return TagResult(path=None, error=err.reason)
        except (binascii.Error, ValueError) as err:
            return TagResult(path=None, error=f"invalid input: {err}")
        except Exception as err:  # one bad row must not fail the whole request
            return TagResult(path=None, error=f"{type(err).__name__}: {err}")

    def _tag_bytes(self, data: bytes, k: int, seconds: float | None) -> TagResult:
        # Through a file, so uploads get exactly the checks and messages of files on disk.
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "upload"
            path.write_bytes(data)
            try:
                return self.tagger.tag(path, k=k, segment_seconds=seconds)
            except (AudioDecodeError, TaggingError) as err:
                return TagResult(path=None, error=err.reason)


def export_weights(source: str | Path | GenreClassifier, dst: Path) -> dict[str, Any]:
    """Write a weights-only file (state dict + plain config, no optimiser state) for the model
    dir; returns the config."""
    if isinstance(source, GenreClassifier):
        state, config = source.state_dict(), source.config
    else:
        ckpt = torch.load(source, map_location="cpu", weights_only=True)
        state, config = ckpt["state_dict"], ckpt[CONFIG_KEY]
    torch.save({"state_dict": state, CONFIG_KEY: config}, dst)
    return config


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


def input_example(sample_rate: int, seconds: float = 0.5) -> pd.DataFrame:
    """One request row: a short chord as a base64 WAV file."""
    t = np.arange(int(sample_rate * seconds)) / sample_rate
    wave = sum(0.2 * np.sin(2 * np.pi * f * t) for f in (220.0, 277.2, 329.6))
    buf = io.BytesIO()
    sf.write(buf, wave, sample_rate, format="WAV", subtype="PCM_16")
    return pd.DataFrame({"audio_base64": [base64.b64encode(buf.getvalue()).decode("ascii")]})


def save_tagger_model(
    path: str | Path, source: str | Path | GenreClassifier, run_id: str | None = None
) -> Path:
    """Write the pyfunc model directory for `source` (a checkpoint or an in-memory model)."""
    path = Path(path)
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "weights.pt"
        config = export_weights(source, weights)
        mlflow.pyfunc.save_model(
            path=str(path),
            # Models from code: the model is this package's class, not a pickle of it.
            python_model=str(Path(__file__).with_name("pyfunc_model.py")),
            artifacts={WEIGHTS_KEY: str(weights)},
            signature=SIGNATURE,
            input_example=(input_example(int(config["data"]["sample_rate"])), {"top_k": 3}),
            # Explicit requirements: inferring them would load the model in a subprocess.
            pip_requirements=_requirements(),
            metadata={"genre_lab_run_id": run_id, "classes": list(config["classes"])},
        )
    return path


def log_tagger_model(client: Any, run_id: str, source: str | Path | GenreClassifier) -> str:
    """Save the pyfunc model and log it as the run's `model` artifact; returns its runs:/ URI."""
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = save_tagger_model(Path(tmp) / PYFUNC_PATH, source, run_id)
        client.log_artifacts(run_id, str(model_dir), PYFUNC_PATH)
    return f"runs:/{run_id}/{PYFUNC_PATH}"
