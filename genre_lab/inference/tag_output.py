"""Write tagging results as a rich table, CSV or JSON, to a terminal or a file.

JSON: a list of objects `{path, duration, genres: [{label, probability}], segments?, error, warning}`,
`segments` only when a timeline was asked for, `error` null for a tagged file, `warning` null
unless the file carries no music to classify (`genre_lab.audio.content`).
CSV: one row per file (`scope=track`), plus one per segment (`scope=segment`) when asked,
with `label_i` / `probability_i` columns for the top-k genres, then `error` and `warning`.
"""

from __future__ import annotations

import csv
import json
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import IO

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from genre_lab.inference.tagger import GenreScore, TagResult

FORMATS = ("table", "csv", "json")


#: The error of a result whose numbers are NaN or infinite (a broken model, e.g. NaN weights).
NOT_FINITE = "model output is not finite (NaN or infinite probabilities)"


def finite_only(result: TagResult) -> TagResult:
    """`result`, or the same file marked failed with `NOT_FINITE` and no genres when any of its
    probabilities is not a finite number: such numbers mean nothing, and are not valid JSON."""
    numbers = [g.probability for g in result.genres] + list(result.distribution.values())
    numbers += [g.probability for s in result.segments or [] for g in s.genres]
    finite_duration = result.duration is None or math.isfinite(result.duration)
    if finite_duration and all(math.isfinite(x) for x in numbers):
        return result
    return replace(
        result,
        genres=[],
        distribution={},
        segments=None if result.segments is None else [],
        duration=result.duration if finite_duration else None,
        error=result.error or NOT_FINITE,
    )


def _genres_text(genres: Sequence[GenreScore]) -> str:
    return ", ".join(f"{g.label} {g.probability:.2f}" for g in genres)


def _common_folder(results: Sequence[TagResult]) -> str:
    """The folder all files share, so the table shows short names (CSV/JSON keep full paths)."""
    # Absolute first: commonpath refuses a mix of relative and absolute paths (`song.mp3 /music`).
    paths = [os.path.abspath(r.path) for r in results if r.path]
    if len(paths) < 2:
        return ""
    try:
        return os.path.commonpath([os.path.dirname(p) for p in paths])
    except ValueError:  # nothing in common, e.g. files on different Windows drives
        return ""


def write_table(results: Sequence[TagResult], console: Console) -> None:
    """File names, labels, errors and warnings are data: each cell is a plain `Text`, never
    read as rich markup (a class named `[/]` would otherwise fail the table)."""
    folder = _common_folder(results)
    table = Table(title=f"Genres of {len(results)} file(s)", caption=f"under {escape(folder)}" if folder else None)
    table.add_column("file", overflow="fold")
    table.add_column("seconds", justify="right")
    table.add_column("genres (probability)", no_wrap=True)
    table.add_column("error", style="red", overflow="fold")
    warned = any(r.warning for r in results)
    if warned:
        table.add_column("warning", style="yellow", overflow="fold")
    for r in results:
        seconds = f"{r.duration:.1f}" if r.duration is not None else ""
        name = os.path.relpath(r.path, folder) if folder and r.path else (r.path or "")
        row = [name, seconds, _genres_text(r.genres), r.error or ""]
        table.add_row(*map(Text, row), *([Text(r.warning or "")] if warned else []))
    console.print(table)
    for r in results:
        if not r.segments:
            continue
        timeline = Table(title=f"Timeline of {escape(r.path or '')}")
        timeline.add_column("from", justify="right")
        timeline.add_column("to", justify="right")
        timeline.add_column("genres (probability)")
        for s in r.segments:
            timeline.add_row(f"{s.start:.1f}", f"{s.end:.1f}", Text(_genres_text(s.genres)))
        console.print(timeline)


def write_csv(results: Sequence[TagResult], stream: IO[str], k: int) -> None:
    ranks = [f"{name}_{i}" for i in range(1, k + 1) for name in ("label", "probability")]
    writer = csv.writer(stream)
    writer.writerow(["path", "scope", "start", "end", *ranks, "error", "warning"])

    def cells(genres: Sequence[GenreScore]) -> list[str]:
        flat = [v for g in genres for v in (g.label, f"{g.probability:.6f}")]
        return flat + [""] * (2 * k - len(flat))

    for r in results:
        end = "" if r.duration is None else f"{r.duration:.3f}"
        writer.writerow([r.path, "track", "0.000" if end else "", end, *cells(r.genres), r.error or "", r.warning or ""])
        for s in r.segments or []:
            writer.writerow([r.path, "segment", f"{s.start:.3f}", f"{s.end:.3f}", *cells(s.genres), "", ""])


def write_json(results: Sequence[TagResult], stream: IO[str]) -> None:
    # allow_nan=False: never bare NaN/Infinity, which is not JSON (`finite_only` has removed them).
    json.dump([finite_only(r).to_dict() for r in results], stream, indent=2, allow_nan=False)
    stream.write("\n")


def write_report(
    results: Sequence[TagResult],
    fmt: str,
    k: int,
    output: Path | None = None,
    overwrite: bool = False,
    console: Console | None = None,
) -> None:
    """Write to `output` (refusing to replace an existing file unless `overwrite`) or stdout."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got '{fmt}'")
    results = [finite_only(r) for r in results]
    if output is None:
        console = console or Console()
        if fmt == "table":
            write_table(results, console)
        elif fmt == "csv":
            write_csv(results, sys.stdout, k)
        else:
            write_json(results, sys.stdout)
        return
    # Mode "x" makes the no-overwrite promise atomic: it fails if the file appeared meanwhile.
    # surrogateescape: a file name that is not UTF-8 is written back as the bytes the OS gave.
    with open(output, "w" if overwrite else "x", newline="", encoding="utf-8", errors="surrogateescape") as f:
        if fmt == "table":
            write_table(results, Console(file=f, width=160, color_system=None))
        elif fmt == "csv":
            write_csv(results, f, k)
        else:
            write_json(results, f)
