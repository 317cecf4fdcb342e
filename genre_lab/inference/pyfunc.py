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

Training logs it as an MLflow 3 LoggedModel (`models:/<model id>`, also `runs:/<run id>/model`)
through `genre_lab.export`, which writes the model directory and holds the request `SIGNATURE`.
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

from ..audio import AudioDecodeError
from ..checkpoint import WEIGHTS_KEY
from ..export import OUTPUT_COLUMNS
from .limits import LimitError, ServingLimits, check_sample_rate, check_segment_seconds, check_top_k
from .tagger import Tagger, TaggingError, TagResult


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
