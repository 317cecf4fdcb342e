"""The real command, timed as a user runs it: `python -m genre_lab.predict MODEL PATHS`.

Interpreter start-up, imports and model loading are included: that is what tagging a library
costs. The JSON reports of two ways of running it (today's decode threads and the worker
processes) are compared file by file: same top-1 genre, every probability within `TOLERANCE`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from genre_lab.models import model_file as checkpoint
from genre_lab.training.lightning_module import GenreClassifier

#: Largest |difference| of any genre probability allowed between two ways of tagging a song.
TOLERANCE = 0.02


def save_model(model: GenreClassifier, folder: Path) -> Path:
    """The model as a weights-only checkpoint file, as `predict` loads it."""
    path = folder / "model.ckpt"
    checkpoint.write(path, model.spec, model.net.state_dict())
    return path


def run_predict(model: Path, paths: Sequence[str], options: Sequence[str] = ()) -> tuple[float, list[dict]]:
    """(wall seconds, JSON rows) of one `predict` process on `paths` (all genres listed)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "tags.json"
        cmd = [sys.executable, "-m", "genre_lab.cli.predict", str(model), *paths, "--format", "json",
               "--output", str(out), "--top-k", "1000", "--no-progress", *options]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        seconds = time.perf_counter() - t0
        # 1: some files could not be tagged (each has its row; Debian's music holds a silent
        # 10 s file), not a failed run.
        if proc.returncode not in (0, 1) or not out.is_file():
            raise RuntimeError(f"{' '.join(cmd[:4])} ... exited with {proc.returncode}: {proc.stderr[-2000:]}")
        return seconds, json.loads(out.read_text())


def compare(reference: list[dict], other: list[dict]) -> dict[str, float]:
    """How far `other` is from `reference`: files whose top-1 differs and the largest
    probability difference over every genre of every file."""
    if [r["path"] for r in reference] != [o["path"] for o in other]:
        raise ValueError("the two reports list different files")
    top1_diff, worst = 0, 0.0
    for ref, new in zip(reference, other):
        if ref["error"] or new["error"]:
            top1_diff += int(bool(ref["error"]) != bool(new["error"]))
            continue
        a = {g["label"]: g["probability"] for g in ref["genres"]}
        b = {g["label"]: g["probability"] for g in new["genres"]}
        top1_diff += int(ref["genres"][0]["label"] != new["genres"][0]["label"])
        worst = max(worst, *(abs(a[c] - b.get(c, 0.0)) for c in a))
    return {"files_top1_changed": float(top1_diff), "max_prob_diff": worst,
            "within_tolerance": float(top1_diff == 0 and worst <= TOLERANCE)}
