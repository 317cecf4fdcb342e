"""Scan, cache and index cost at scale: the quick `bench scale` suite, the linear
identical-audio check, and a dataset of many clips held as references to its cache entries."""

from __future__ import annotations

import os
import pickle
import tracemalloc
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from mlflow import MlflowClient

from genre_lab.bench.scale import make_tree
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
            assert metrics[f"{phase}_{n}.open_files"] > 0 and metrics[f"{phase}_{n}.epoch_s"] > 0
            # Not one descriptor per clip (1,000 clips here), after setup nor while an epoch reads.
            assert metrics[f"{phase}_{n}.open_files_epoch"] < 64
        # Linear, not quadratic (1.0 is linear; generous for a shared machine's noise).
        assert metrics[f"{phase}_1000.growth_exponent"] == pytest.approx(1.0, abs=0.6)


def _open_files() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts open files in /proc/self/fd")
def test_many_clips_keep_open_files_and_memory_flat(tmp_path: Path) -> None:
    """Before: every cached clip was its own memory map holding a descriptor (1,000 clips:
    1,000 open files), and past the open-file limit the whole decoded dataset was read into
    memory. Now each clip is a reference to its entry, and a chunk is read when it is asked for."""
    import torch

    from genre_lab.data.cache import CachedWave
    from genre_lab.data.datamodule import GenreDataModule
    from genre_lab.data.folder import FolderSource

    n = 1000
    root, cache = make_tree(tmp_path / "tree", n), tmp_path / "cache"
    audio_bytes = n * 2000 * 4  # 0.25 s at 8 kHz, float32
    GenreDataModule(FolderSource(root, cache_dir=cache, workers=1), sample_rate=8000, chunk_seconds=0.1).setup()

    before = _open_files()
    tracemalloc.start()
    try:
        datamodule = GenreDataModule(FolderSource(root, cache_dir=cache, workers=1), sample_rate=8000,
                                     chunk_seconds=0.1, batch_size=50)
        datamodule.setup()  # every entry a cache hit: verified, not loaded
        _, setup_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert _open_files() <= before + 2
    waves = [w for split in datamodule.splits.values() for w in split.waves]
    assert len(waves) == n and all(type(w) is CachedWave for w in waves)
    # No samples per clip: only where they are, and their checksum.
    assert not any(isinstance(getattr(w, slot), np.ndarray) for w in waves for slot in CachedWave.__slots__)
    assert setup_peak < audio_bytes / 4, f"setup peaked at {setup_peak} bytes for {audio_bytes} bytes of audio"

    train, val = datamodule.train_dataloader(), datamodule.val_dataloader()
    # What a DataLoader worker is sent: the references, not the audio.
    assert len(pickle.dumps(train.dataset)) < audio_bytes / 10
    during, items = [], 0
    for loader in (train, val):
        for batch in loader:
            during.append(_open_files())
            assert torch.isfinite(batch[0]).all() and batch[0].abs().max() > 0
            items += len(batch[0])
    assert items == len(train.dataset) + len(val.dataset) > 800
    assert max(during) <= before + 2 and _open_files() <= before + 2, (before, max(during))
    assert train.dataset.unreadable.count == 0 and val.dataset.unreadable.count == 0
    # The chunks are the decoded audio: a validation window equals the clip's samples there.
    first, _, clip = val.dataset[0]
    np.testing.assert_array_equal(first.numpy(), np.asarray(datamodule.splits["val"].waves[clip])[:800])
