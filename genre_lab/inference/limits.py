"""Bounds on what one tagging request may ask for: sample rates, timeline segments, top-k, and
the serving limits on audio length and upload size (configurable through the environment).

Every check raises `LimitError` with a message naming the field, its bounds and the value, so
the served model can turn it into that record's `error`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: Waveform sample rates accepted, in Hz: the bounds a file's header must keep too
#: (`genre_lab.audio.decode`): below 1 kHz nothing of a song's spectrum survives; 384 kHz is the
#: highest rate audio interfaces record at.
from genre_lab.audio.decode import MAX_SAMPLE_RATE as MAX_SAMPLE_RATE
from genre_lab.audio.decode import MIN_SAMPLE_RATE as MIN_SAMPLE_RATE
#: Shortest timeline segment. Shorter ones only repeat the overlapping windows' genres (a window
#: is seconds long) and multiply the answer: 0.001 s gave 30,000 segments (6 MB) for a 30 s clip.
MIN_SEGMENT_SECONDS = 0.5

#: Environment variables read by the served model when it loads, with their defaults.
ENV_MAX_SECONDS = "GENRE_LAB_SERVE_MAX_SECONDS"
ENV_MAX_UPLOAD_MB = "GENRE_LAB_SERVE_MAX_UPLOAD_MB"
ENV_MAX_SEGMENTS = "GENRE_LAB_SERVE_MAX_SEGMENTS"
DEFAULT_MAX_SECONDS = 20 * 60.0
#: 20 minutes of 44.1 kHz stereo 16-bit WAV is 212 MB.
DEFAULT_MAX_UPLOAD_MB = 256.0
#: 20 minutes in segments of `MIN_SEGMENT_SECONDS`.
DEFAULT_MAX_SEGMENTS = 2400


class LimitError(ValueError):
    """A request field outside its bounds; the message names the field."""


def _number(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise LimitError(f"{field} must be a number, got {value!r}") from None
    value = float(value)
    if not math.isfinite(value):
        raise LimitError(f"{field} must be a finite number, got {value}")
    return value


def check_sample_rate(value: Any, field: str = "sample_rate") -> int:
    """A whole number of Hz within `MIN_SAMPLE_RATE`..`MAX_SAMPLE_RATE`."""
    rate = _number(value, field)
    if rate != int(rate):
        raise LimitError(f"{field} must be a whole number of Hz, got {rate:g}")
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise LimitError(f"{field} must be between {MIN_SAMPLE_RATE} and {MAX_SAMPLE_RATE} Hz, got {rate:g}")
    return int(rate)


def check_segment_seconds(value: Any, field: str = "segment_seconds") -> float | None:
    """None or 0: no timeline; otherwise at least `MIN_SEGMENT_SECONDS`."""
    if value is None:
        return None
    seconds = _number(value, field)
    if seconds == 0:
        return None
    if seconds < MIN_SEGMENT_SECONDS:
        raise LimitError(f"{field} must be 0 (no timeline) or at least {MIN_SEGMENT_SECONDS} s, got {seconds:g}")
    return seconds


def check_top_k(value: Any, n_classes: int, field: str = "top_k") -> int:
    """A whole number from 1 to the model's number of classes."""
    k = _number(value, field)
    if k != int(k) or not 1 <= k <= n_classes:
        raise LimitError(f"{field} must be a whole number from 1 to {n_classes} (the model's classes), got {k:g}")
    return int(k)


@dataclass(frozen=True)
class ServingLimits:
    """Per-record limits of the served model."""

    max_seconds: float = DEFAULT_MAX_SECONDS
    max_upload_bytes: int = int(DEFAULT_MAX_UPLOAD_MB * 2**20)
    max_segments: int = DEFAULT_MAX_SEGMENTS

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> ServingLimits:
        """Defaults, overridden by `GENRE_LAB_SERVE_MAX_SECONDS`, `GENRE_LAB_SERVE_MAX_UPLOAD_MB`
        and `GENRE_LAB_SERVE_MAX_SEGMENTS`; a value that is not a positive number is an error
        naming the variable (the server then fails at start, not on a request)."""
        def read(name: str, default: float) -> float:
            text = environ.get(name)
            if text is None or not text.strip():
                return default
            try:
                value = float(text)
            except ValueError:
                value = math.nan
            if not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be a positive number, got {text!r}")
            return value

        return cls(
            max_seconds=read(ENV_MAX_SECONDS, DEFAULT_MAX_SECONDS),
            max_upload_bytes=int(read(ENV_MAX_UPLOAD_MB, DEFAULT_MAX_UPLOAD_MB) * 2**20),
            max_segments=int(read(ENV_MAX_SEGMENTS, DEFAULT_MAX_SEGMENTS)),
        )

    def check_upload(self, base64_chars: int) -> None:
        """Refuse a base64 string whose decoded size (3 bytes per 4 characters) is too large,
        before decoding it."""
        size = base64_chars // 4 * 3
        if size > self.max_upload_bytes:
            raise LimitError(f"audio_base64 decodes to {size / 2**20:.1f} MiB, above the limit of "
                             f"{self.max_upload_bytes / 2**20:g} MiB ({ENV_MAX_UPLOAD_MB})")

    def check_duration(self, seconds: float, segment_seconds: float | None) -> None:
        """Refuse audio longer than `max_seconds` or a timeline of more than `max_segments`."""
        if seconds > self.max_seconds:
            raise LimitError(f"audio of {seconds:.1f} s is longer than the limit of {self.max_seconds:g} s ({ENV_MAX_SECONDS})")
        if segment_seconds:
            count = math.ceil(seconds / segment_seconds)
            if count > self.max_segments:
                raise LimitError(f"segment_seconds={segment_seconds:g} gives {count} segments for {seconds:.1f} s of audio, "
                                 f"above the limit of {self.max_segments} ({ENV_MAX_SEGMENTS})")
