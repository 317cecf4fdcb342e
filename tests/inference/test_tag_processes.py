"""Tagging in worker processes (`Tagger.tag_files(processes=N)`, predict's default on several
cores): the same results as tagging in this process, in order, bad files as rows, and a worker
killed by a file never stops the others."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import soundfile as sf

from genre_lab.bench.tag import default_model
from genre_lab.data.synthetic import render_clip
from genre_lab.inference.tag_files import PredictOptions, processes_for
from genre_lab.inference.tagger import Tagger


class CrashingTagger(Tagger):
    """A tagger whose decoder kills its process on files named `crash*` (as a decoder
    segfault would)."""

    def decode(self, path):
        if Path(path).name.startswith("crash"):
            os._exit(3)
        return super().decode(path)


def _songs(folder: Path, names: list[str]) -> list[Path]:
    out = []
    for i, name in enumerate(names):
        path = folder / name
        if name.startswith("broken"):
            path.write_bytes(b"not audio at all" * 10)
        else:
            sf.write(str(path), render_clip(["rock", "jazz", "metal", "disco"][i % 4], i, 4.0, 22050), 22050)
        out.append(path)
    return out


def test_processes_give_the_in_process_results_in_order(tmp_path: Path) -> None:
    files = _songs(tmp_path, ["a.wav", "broken.wav", "b.flac", "c.wav"])
    tagger = Tagger(default_model(), device="cpu")
    inline = list(tagger.tag_files(files, workers=0, segment_seconds=2.0))
    seen = []
    parallel = list(tagger.tag_files(files, processes=2, segment_seconds=2.0, on_result=seen.append))
    assert [r.path for r in parallel] == [str(f) for f in files] == [r.path for r in seen]
    assert [r.ok for r in parallel] == [True, False, True, True]
    assert "not a recognised audio format" in parallel[1].error
    for a, b in zip(inline, parallel):
        if a.ok:
            assert [g.label for g in a.genres] == [g.label for g in b.genres]
            assert max(abs(a.distribution[c] - b.distribution[c]) for c in a.distribution) < 1e-4
            assert len(b.segments) == 2


@pytest.mark.slow
def test_a_file_that_kills_its_worker_is_an_error_row_and_the_rest_are_tagged(tmp_path: Path) -> None:
    files = _songs(tmp_path, ["a.wav", "b.wav", "crash.wav", "c.wav", "d.wav", "e.wav"])
    tagger = CrashingTagger(default_model(), device="cpu")
    rows = list(tagger.tag_files(files, processes=2))
    assert [r.path for r in rows] == [str(f) for f in files]
    assert [r.ok for r in rows] == [True, True, False, True, True, True]
    assert "crashed the worker process" in rows[2].error


def test_predict_uses_processes_only_when_asked() -> None:
    assert processes_for(PredictOptions(model="m", paths=["x"])) == 0
    assert processes_for(PredictOptions(model="m", paths=["x"], processes=0)) == 0
    assert processes_for(PredictOptions(model="m", paths=["x"], processes=3)) == 3
