"""Scan, cache and index cost against dataset size: trees of many tiny files.

For each size a folder dataset of that many short tones (10 genre folders) is generated, then a
fresh process runs the whole path a training run takes before its first step (`FolderSource`
scan, screening through the decode cache, the seeded split, `GenreDataModule.setup`), twice:
`cold` (empty cache: decode and write every entry) and `warm` (every entry a cache hit), then
reads one training epoch (one random chunk per clip, batches of 256, no workers) and one pass
of the validation windows, as the first epoch would. Each phase reports its wall time to the
first step (`wall_s`), the epoch's (`epoch_s`), the process's peak RSS (`resource.getrusage`;
`import_rss_mb` is its RSS after the imports), its open files after setup and the most seen
during the epoch (`psutil`) and the cache's size. A fresh process per phase keeps one size's
peak memory from hiding the next one's.

The growth exponent of a phase, log(t2 / t1) / log(n2 / n1) between successive sizes, is 1 for
linear cost and 2 for quadratic.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from genre_lab.bench.common import Result

SAMPLE_RATE = 8000
SECONDS = 0.25
GENRES = 10


def make_tree(root: Path, n_files: int) -> Path:
    """`n_files` distinct 0.25 s tones (16-bit WAV at 8 kHz), spread over 10 genre folders."""
    t = np.arange(int(SECONDS * SAMPLE_RATE)) / SAMPLE_RATE
    for g in range(GENRES):
        (root / f"genre{g}").mkdir(parents=True, exist_ok=True)
    for i in range(n_files):
        g = i % GENRES
        # Distinct audio per file: identical files would be reported as duplicates.
        wave = 0.3 * np.sin(2 * np.pi * (100 + g * 50 + (i // GENRES) * 0.01) * t)
        sf.write(str(root / f"genre{g}" / f"{i:06d}.wav"), wave, SAMPLE_RATE, subtype="PCM_16")
    return root


def probe(root: str, cache: str) -> dict[str, float]:
    """One phase in this process: scan, screen through the cache, split and set up the data."""
    import resource
    import time

    import psutil

    from genre_lab.data.datamodule import GenreDataModule
    from genre_lab.data.folder import FolderSource

    imported = psutil.Process().memory_info().rss / 2**20  # torch, Lightning: the floor of every run
    start = time.perf_counter()
    source = FolderSource(root, cache_dir=cache, workers=1)
    source.scan()
    scanned = time.perf_counter()
    datamodule = GenreDataModule(source, sample_rate=SAMPLE_RATE, chunk_seconds=0.1)
    datamodule.setup()
    done = time.perf_counter()
    process = psutil.Process()
    after_setup = process.num_fds()
    datamodule.batch_size = datamodule.eval_batch_size = 256
    during = 0
    for loader in (datamodule.train_dataloader(), datamodule.val_dataloader()):
        for _ in loader:
            during = max(during, process.num_fds())
    epoch = time.perf_counter()
    clips = sum(len(s) for s in datamodule.splits.values())
    cache_bytes = sum(f.stat().st_size for f in Path(cache).rglob("*") if f.is_file())
    return {"scan_s": scanned - start, "wall_s": done - start, "epoch_s": epoch - done, "clips": clips,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "import_rss_mb": imported,
            "open_files": after_setup, "open_files_epoch": during, "cache_mb": cache_bytes / 2**20}


def _phase(root: Path, cache: Path) -> dict[str, float]:
    code = ("import json, sys; from genre_lab.bench.scale import probe; "
            "print(json.dumps(probe(sys.argv[1], sys.argv[2])))")
    # This genre_lab, wherever it is imported from (a checkout or the installed package).
    package_parent = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore",
           "PYTHONPATH": os.pathsep.join(filter(None, [package_parent, os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, "-c", code, str(root), str(cache)], capture_output=True, text=True,
                          env=env, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"bench scale: the probe of {root} failed: {proc.stderr.strip().splitlines()[-1:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run(sizes: tuple[int, ...] = (1000, 10000, 100000)) -> list[Result]:
    results: list[Result] = []
    previous: dict[str, tuple[int, float]] = {}
    for n in sizes:
        with tempfile.TemporaryDirectory(prefix="genre_lab_scale_") as tmp:
            root = make_tree(Path(tmp) / "tree", n)
            for phase in ("cold", "warm"):
                measured = _phase(root, Path(tmp) / "cache")
                extra: dict[str, float | str] = {k: round(float(v), 3) for k, v in measured.items()}
                if phase in previous:
                    n0, t0 = previous[phase]
                    extra["growth_exponent"] = round(math.log(measured["wall_s"] / t0) / math.log(n / n0), 3)
                previous[phase] = (n, measured["wall_s"])
                results.append(Result(f"{phase}_{n}", n / measured["wall_s"], "files/s",
                                      baseline=f"{phase}_{sizes[0]}" if n != sizes[0] else None, extra=extra))
    return results
