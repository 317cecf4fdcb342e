"""Which candidate files can be trained on: decoded, long enough and not silent.

The file datasets screen every candidate before any split is made, so the splits hold usable
clips only, and every file left out is reported with its reason (the run's
`data/scan_report.json`). The silence rule is the tagger's (`genre_lab.audio.content`): a file the
tagger would refuse to tag is not trained or evaluated on either.
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from genre_lab.audio.decode import DEFAULT_MAX_SECONDS
from genre_lab.audio.content import SILENCE_DBFS, rms_dbfs
from genre_lab.data.cache import Wave, decode_files

log = logging.getLogger(__name__)

#: How many skipped names a log line spells out; the scan report always lists them all.
_LOG_NAMES = 10
#: How the reason for a clip shorter than one chunk begins.
SHORT_REASON = "shorter than one chunk"


@dataclass
class Screened:
    """Outcome of `screen`: the waves of the usable files and the reason for each other one."""

    waves: dict[str, Wave] = field(default_factory=dict)
    rejected: dict[str, str] = field(default_factory=dict)
    #: CRC-32 of each usable wave (`cache.checksum`), for the identical-audio check.
    checksums: dict[str, int] = field(default_factory=dict)


def screen(
    paths: Sequence[Path],
    sample_rate: int,
    min_samples: int,
    cache_dir: str | Path | None,
    workers: int | None,
    description: str,
    max_seconds: float | None = DEFAULT_MAX_SECONDS,
) -> Screened:
    """Decode every path once (through the cache) and keep those that carry audio to learn from.

    Keys are `str(path)`. A path is rejected when it is a dangling symbolic link, does not
    decode (its header declaring more than `max_seconds` included), is silent (RMS below
    `SILENCE_DBFS`) or holds fewer than `min_samples` samples. Never raises for a bad file.
    """
    out = Screened()
    to_decode = []
    for path in paths:
        if path.is_symlink() and not path.exists():
            out.rejected[str(path)] = f"dangling symbolic link to {os.readlink(path)}"
        else:
            to_decode.append(path)
    decoded = decode_files(to_decode, sample_rate, cache_dir, workers, description, max_seconds)
    out.rejected.update(decoded.failed)
    for name, wave in decoded.waves.items():
        # One clip in memory at a time: a cached wave is a reference to its entry.
        level = rms_dbfs(np.asarray(wave))
        if level < SILENCE_DBFS:
            out.rejected[name] = (
                f"silent: RMS {level:.0f} dBFS, below the {SILENCE_DBFS:.0f} dBFS that tagging also refuses"
            )
        elif len(wave) < min_samples:
            out.rejected[name] = short_reason(len(wave), min_samples, sample_rate)
        else:
            out.waves[name] = wave
            out.checksums[name] = decoded.checksums[name]
    return out


def short_reason(samples: int, chunk: int, sample_rate: int) -> str:
    """Why a clip of `samples` is left out under `data.short_clips=skip`."""
    return (f"{SHORT_REASON}: {samples / sample_rate:.2f} s < data.chunk_seconds={chunk / sample_rate:g} "
            "(data.short_clips=skip; =pad keeps it zero-padded)")


def log_skipped(dataset: str, skipped: Iterable[tuple[str, str]]) -> None:
    """One warning, grouped by reason: hundreds of clips absent from a partial copy read as one line."""
    by_reason: dict[str, list[str]] = defaultdict(list)
    for name, reason in skipped:
        by_reason[reason].append(name)
    if not by_reason:
        return
    parts = []
    for reason, names in by_reason.items():
        more = f" and {len(names) - _LOG_NAMES} more" if len(names) > _LOG_NAMES else ""
        parts.append(f"{', '.join(names[:_LOG_NAMES])}{more} ({reason})")
    total = sum(len(names) for names in by_reason.values())
    log.warning("%s: skipping %d file(s), all listed in data/scan_report.json: %s", dataset, total, "; ".join(parts))
