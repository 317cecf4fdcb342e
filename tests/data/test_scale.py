"""Scan, cache and index cost at scale: the quick `bench scale` suite and the linear
identical-audio check."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from mlflow import MlflowClient

from genre_lab.data.leakage import identical_audio


@dataclass(frozen=True, eq=False)
class Counted:
    """An entry that counts how often it is compared with another one."""

    path: Path
    clip_id: str
    compared = [0]

    def __eq__(self, other: object) -> bool:
        Counted.compared[0] += 1
        return self is other

    __hash__ = object.__hash__


def test_identical_audio_is_linear_in_a_group_of_copies() -> None:
    """3000 copies of one recording: every copy paired with the first, in one pass (the former
    filter compared each remaining entry with every copy: ~9 million comparisons)."""
    wave = np.linspace(-0.5, 0.5, 800, dtype=np.float32)
    n = 3000
    entries = [(Counted(Path(f"/music/copy{i}.wav"), f"copy{i}"), "train" if i % 2 else "test") for i in range(n)]
    waves = {str(e.path): wave for e, _ in entries}
    crcs = {name: 7 for name in waves}
    other = np.ones(800, dtype=np.float32)  # same length and checksum, other audio: not a pair
    entries.append((Counted(Path("/music/other.wav"), "other"), "val"))
    waves["/music/other.wav"], crcs["/music/other.wav"] = other, 7
    Counted.compared[0] = 0
    pairs = identical_audio(entries, waves, crcs)
    assert len(pairs) == n - 1 and {p["first"]["clip"] for p in pairs} == {"copy0"}
    assert "other" not in {p["second"]["clip"] for p in pairs}
    assert Counted.compared[0] < n


def test_quick_scale_bench_logs_cold_and_warm_costs(tmp_path: Path, mlflow_uri: str) -> None:
    from genre_lab.bench.__main__ import main

    assert main(["scale", "--quick"]) == 0
    client = MlflowClient(mlflow_uri)
    (run,) = client.search_runs([client.get_experiment_by_name("benchmarks").experiment_id])
    metrics = run.data.metrics
    assert run.data.params["sizes"] == "100,1000" and run.info.status == "FINISHED"
    for phase in ("cold", "warm"):
        for n in (100, 1000):
            assert metrics[f"{phase}_{n}.clips"] == n
            assert metrics[f"{phase}_{n}.cache_mb"] > 0 and metrics[f"{phase}_{n}.peak_rss_mb"] > 0
            assert metrics[f"{phase}_{n}.open_files"] > 0
        # Linear, not quadratic (1.0 is linear; generous for a shared machine's noise).
        assert metrics[f"{phase}_1000.growth_exponent"] == pytest.approx(1.0, abs=0.6)
