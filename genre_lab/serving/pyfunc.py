"""The trained model as an MLflow pyfunc, so `mlflow models serve` answers with genres.

Request rows (a DataFrame; over HTTP `{"dataframe_records": [...]}`) carry either
`audio_base64` (the bytes of any audio file genre_lab decodes, base64-encoded) or `waveform`
(mono samples as floats) with its `sample_rate`. Params: `top_k` (default 3),
`segment_seconds` (0: no timeline) and `min_content` (default false: true makes audio without
music content an error instead of a warning). Each row answers `genres` (top-k `label`/`probability`),
`segments` when asked, `error` (null when tagged) and `warning` (null unless the audio carries
no music to classify: DC only, near-silence, mostly padding, a constant tone; see
`genre_lab.audio.content`).

Every record gets exactly one answer row, in order: a record that is not an object
(`"dataframe_records": [1, 2, 3]`), carries neither audio field, or holds a field of the wrong
type gets a row with its `error`. MLflow is given no input schema for this reason: its schema
enforcement drops the columns a schema does not name, and with them every row of a request
whose records carry none of the fields (`request_fields` in the model's metadata lists them).

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

Training logs it as an MLflow 3 LoggedModel (`models:/<model id>`, also `runs:/<run id>/model`)
through `genre_lab.models.mlflow_model`, which writes the model directory and holds the request `SIGNATURE`.
"""

from __future__ import annotations

import base64
import binascii
import math
import tempfile
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd
import soundfile as sf

from genre_lab.audio.decode import AudioDecodeError
from genre_lab.models.model_file import WEIGHTS_KEY
from genre_lab.models.mlflow_model import OUTPUT_COLUMNS, REQUEST_FIELDS
from genre_lab.inference.limits import LimitError, ServingLimits, check_sample_rate, check_segment_seconds, check_top_k
from genre_lab.inference.tagger import Tagger, TaggingError, TagResult


def _missing(value: Any) -> bool:
    # Columns absent from some records arrive as NaN/None after the DataFrame is built.
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


#: The error of a record that is not an object of fields.
NOT_A_RECORD = "a record must be an object with audio_base64 or waveform"


class _NotARecord:
    """Stands for an input record that is not an object of fields; `kind` says what it was."""

    def __init__(self, kind: str) -> None:
        self.kind = kind


def _kind(value: Any) -> str:
    """What a JSON value was, in JSON's words."""
    if isinstance(value, (list, tuple, np.ndarray)):
        return "a list"
    if _missing(value):
        return "null"
    if isinstance(value, (bool, np.bool_)):
        return "a boolean"
    if isinstance(value, (int, float, np.number)):
        return "a number"
    return "a string" if isinstance(value, str) else type(value).__name__


def _record(item: Any) -> dict[str, Any] | _NotARecord:
    """A record's fields, 0-d arrays (how MLflow parses the scalars of an `inputs` or
    `instances` request) as plain values."""
    if not isinstance(item, dict):
        return _NotARecord(_kind(item))
    return {k: v.item() if isinstance(v, np.ndarray) and v.ndim == 0 else v for k, v in item.items()}


def _columns(fields: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The records of a columnar request (`{"inputs": {"audio_base64": [...]}}`: every field
    an array of the same length), None for one record given as a dict."""
    lengths = {len(v) if isinstance(v, np.ndarray) and v.ndim else -1 for v in fields.values()}
    if len(lengths) != 1 or -1 in lengths:
        return None
    (n,) = lengths
    return [{k: v[i] for k, v in fields.items()} for i in range(n)]


def _records(model_input: Any) -> list[dict[str, Any] | _NotARecord]:
    """One entry per input record, in order, whatever shape reaches the model: a DataFrame (its
    rows; numbered columns mean the records were not objects: pandas numbers the columns of
    `[1, 2, 3]` or `[[0.1, 0.2]]`), a list or 1-D array of records, the arrays of a columnar
    request, or one record as a dict."""
    if isinstance(model_input, pd.DataFrame):
        columns = list(model_input.columns)
        if columns and not any(isinstance(c, str) for c in columns):
            return [_NotARecord(_kind(row[0]) if len(columns) == 1 else "a list")
                    for row in model_input.itertuples(index=False)]
        return model_input.to_dict("records")
    if isinstance(model_input, dict):
        return [_record(r) for r in _columns(model_input) or [model_input]]
    if isinstance(model_input, np.ndarray) and model_input.ndim != 1:
        return [_NotARecord("a list") for _ in model_input] if model_input.ndim else [_NotARecord(_kind(model_input.item()))]
    if isinstance(model_input, (list, tuple, np.ndarray, pd.Series)):
        return [_record(item) for item in model_input]
    return [_NotARecord(_kind(model_input))]


class GenreTaggerModel(mlflow.pyfunc.PythonModel):
    """pyfunc wrapper around `Tagger`. Logged as code (`pyfunc_model.py`), not pickled; the
    weights are the `weights` artifact."""

    #: Replaced by the environment's limits when the model loads (`load_context`).
    limits = ServingLimits()

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        self.limits = ServingLimits.from_env()
        self.tagger = Tagger.load(context.artifacts[WEIGHTS_KEY])

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        """One row per record of `model_input`, in order: a DataFrame over HTTP; a list of
        records or one record as a dict also work in process (see `_records`)."""
        params = params or {}
        records = _records(model_input)
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

    def _tag_row(self, record: dict[str, Any] | _NotARecord, k: int, seconds: float | None,
                 min_content: bool = False) -> TagResult:
        if isinstance(record, _NotARecord):
            return TagResult(path=None, error=f"{NOT_A_RECORD}, got {record.kind}")
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
            others = sorted(str(key) for key, value in record.items() if key not in REQUEST_FIELDS and not _missing(value))
            return TagResult(path=None, error="record has neither audio_base64 nor waveform"
                             + (f" (unknown fields: {', '.join(others)[:200]})" if others else ""))
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
