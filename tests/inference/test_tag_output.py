"""Tagging reports stay valid whatever the model returns: NaN/inf probabilities become an error."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

from genre_lab.inference.tag_output import NOT_FINITE, write_report
from genre_lab.inference.tagger import GenreScore, Segment, TagResult

NAN, INF = float("nan"), float("inf")


def _results() -> list[TagResult]:
    good = TagResult("good.wav", [GenreScore("jazz", 0.9), GenreScore("rock", 0.1)],
                     {"jazz": 0.9, "rock": 0.1}, [Segment(0.0, 3.0, [GenreScore("jazz", 0.9)])], 3.0)
    # What a model with NaN weights produced before: NaN everywhere and no error.
    broken = TagResult("nan.wav", [GenreScore("jazz", NAN), GenreScore("rock", NAN)],
                       {"jazz": NAN, "rock": NAN}, [Segment(0.0, 3.0, [GenreScore("jazz", NAN)])], 3.0)
    # Finite top-k but an infinite segment score: still not a usable result.
    partly = TagResult("inf.wav", [GenreScore("rock", 1.0)], {"jazz": 0.0, "rock": 1.0},
                       [Segment(0.0, 3.0, [GenreScore("rock", INF)])], 3.0)
    return [good, broken, partly]


def _strict_json(text: str) -> list[dict]:
    """Parse as JSON proper: Python's json accepts bare NaN/Infinity unless told otherwise."""

    def refuse(constant: str) -> None:
        raise ValueError(f"not JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def test_json_with_nan_probabilities_is_valid_json(tmp_path: Path) -> None:
    out = tmp_path / "tags.json"
    write_report(_results(), "json", 2, out)
    good, broken, partly = _strict_json(out.read_text())  # bare NaN made this raise before
    assert good["error"] is None and good["genres"][0] == {"label": "jazz", "probability": 0.9}
    for row in (broken, partly):
        assert row["error"] == NOT_FINITE and row["genres"] == [] and row["segments"] == []
        assert row["duration"] == 3.0


def test_json_to_stdout_and_an_existing_error_is_kept(capsys: pytest.CaptureFixture[str]) -> None:
    failed = TagResult("bad.wav", [GenreScore("jazz", NAN)], error="cannot decode bad.wav: truncated")
    write_report([failed], "json", 1)
    (row,) = _strict_json(capsys.readouterr().out)
    assert row["error"] == "cannot decode bad.wav: truncated" and row["genres"] == []


def test_csv_marks_non_finite_results_as_errors(tmp_path: Path) -> None:
    out = tmp_path / "tags.csv"
    write_report(_results(), "csv", 2, out)
    rows = list(csv.DictReader(out.open()))
    by_path = {(r["path"], r["scope"]): r for r in rows}
    assert math.isclose(float(by_path["good.wav", "track"]["probability_1"]), 0.9)
    for path in ("nan.wav", "inf.wav"):
        row = by_path[path, "track"]
        assert row["error"] == NOT_FINITE and row["probability_1"] == "" and (path, "segment") not in by_path
    cells = [v for r in rows for k, v in r.items() if k.startswith("probability_") and v]
    assert cells and all(math.isfinite(float(v)) for v in cells)
