"""Audio that becomes unreadable after the scan never kills an epoch, and is never used wrong.

What can happen to a running training, made real here: source files deleted, truncated or
made unreadable (harmless: their audio was decoded into the cache at setup); cache entries cut
short in place (before, with memory maps: the process died of SIGBUS, exit status 135, with no
Python error), deleted, or with samples overwritten in place (before: a memory map served the
new bytes as audio). The datasets read each chunk from its entry (`cache.CachedWave`), so such a
clip fails its read: it is skipped for the rest of the run with a warning and counted in the
run; the epoch goes on.

Everything runs in a child process, so that a regression kills the child, not pytest.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from mlflow import MlflowClient

from genre_lab.config import PROJECT_ROOT

FREQS = {"low": 220.0, "mid": 550.0, "high": 1400.0}


def _folder_dataset(root: Path, per_class: int = 8, seconds: float = 2.0, sr: int = 8000) -> Path:
    """One subfolder per class of real WAV files: a class's tone plus noise, varying per file."""
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * sr)) / sr
    for name, freq in FREQS.items():
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            wave = 0.4 * np.sin(2 * np.pi * freq * (1 + 0.02 * i) * t) + 0.05 * rng.standard_normal(len(t))
            sf.write(str(root / name / f"{name}{i}.wav"), wave.astype(np.float32), sr)
    return root


def _run(script: str, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(script), *args], cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


DATASETS = """
    import json, os, sys
    from pathlib import Path
    import numpy as np
    from torch.utils.data import DataLoader
    from genre_lab.data.cache import CachedWave, decode_files
    from genre_lab.data.clips import AudioSplit
    from genre_lab.data.datamodule import RandomChunks, TrackChunks

    def damaged_run(root, cache, workers):
        files = sorted(root.rglob("*.wav"))
        result = decode_files(files, 8000, cache)
        waves = [result.waves[str(f)] for f in files]
        assert all(isinstance(w, CachedWave) for w in waves)
        split = AudioSplit(ids=[f.name for f in files], labels=list(range(len(files))), waves=waves)
        train, evaluation = RandomChunks(split, 4000, per_clip=3), TrackChunks(split, 4000, 2000)
        # After the scan: entries 0 and 1 cut short in place, 2 deleted, 3 overwritten with NaN
        # in place (same size), source files 4 and 5 deleted and truncated.
        os.truncate(waves[0].path, 0)
        os.truncate(waves[1].path, os.path.getsize(waves[1].path) // 2)
        os.unlink(waves[2].path)
        overwrite = np.load(waves[3].path, mmap_mode="r+")
        overwrite[:] = np.nan
        overwrite.flush()
        del overwrite
        files[4].unlink()
        os.truncate(files[5], 100)
        seen = {"ids": split.ids}
        for name, ds in (("train", train), ("eval", evaluation)):
            labels = []
            for batch in DataLoader(ds, batch_size=5, num_workers=workers):
                labels += batch[1].tolist()
                assert batch[0].isfinite().all()
            seen[name] = {"items": len(labels), "labels": sorted(set(labels)), "count": ds.unreadable.count,
                          "marked": [split.ids[i] for i in ds.unreadable.marks.nonzero().flatten().tolist()]}
        return seen

    base = Path(sys.argv[1])
    print(json.dumps({w: damaged_run(base / f"music{w}", base / f"cache{w}", w) for w in (0, 2)}))
"""


def test_clips_cut_short_under_a_running_loader_are_skipped(tmp_path: Path) -> None:
    """In the main process (workers=0) and in DataLoader workers (2): before, the first died
    of SIGBUS and the second with 'DataLoader worker exited unexpectedly'."""
    for workers in (0, 2):
        _folder_dataset(tmp_path / f"music{workers}", per_class=3)
    proc = _run(DATASETS, str(tmp_path))
    assert proc.returncode == 0, f"exit status {proc.returncode} (-7: SIGBUS)\n{proc.stderr[-3000:]}"
    for workers, seen in json.loads(proc.stdout.strip().splitlines()[-1]).items():
        names = seen["ids"]
        for stage in ("train", "eval"):
            # The four damaged entries are lost; the clips whose source files went still serve.
            assert seen[stage]["count"] == 4 and seen[stage]["marked"] == names[:4], (workers, seen)
            assert seen[stage]["labels"] == list(range(4, len(names))), (workers, seen)
        # Every item is still served (a readable clip in place of a skipped one): no short epoch.
        assert seen["train"]["items"] == 3 * len(names)
    assert proc.stderr.count("is skipped for the rest of the run") >= 8
    assert "cache entry cut to 0 bytes during the run" in proc.stderr
    assert "cache entry changed on disk during the run" in proc.stderr
    assert "cache entry cannot be read: No such file or directory" in proc.stderr


TRAINING = """
    import json, os, sys
    from pathlib import Path
    import numpy as np
    from lightning.pytorch.callbacks import Callback
    from genre_lab.config import compose
    from genre_lab.training.fit import fit_and_test

    root, cache, out, workers = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), sys.argv[4]

    class Damage(Callback):
        \"\"\"After setup, once training runs: what a user or another program may do meanwhile.\"\"\"

        def on_train_start(self, trainer, pl_module):
            splits = trainer.datamodule.splits
            cut = [splits["train"].waves[0], splits["val"].waves[0], splits["test"].waves[0]]
            for wave in cut:
                os.truncate(wave.path, os.path.getsize(wave.path) // 3)
            os.unlink(splits["train"].waves[1].path)
            overwrite = np.load(splits["val"].waves[1].path, mmap_mode="r+")
            overwrite[:] = np.nan
            overwrite.flush()
            del overwrite
            sources = sorted(root.rglob("*.wav"))
            sources[0].unlink()
            os.truncate(sources[1], 100)
            os.chmod(sources[2], 0)

    cfg = compose([
        "data=folder", f"data.root={root}", f"data.cache_dir={cache}", f"data.num_workers={workers}",
        "data.sample_rate=8000", "data.chunk_seconds=1.0", "data.eval_hop_seconds=0.5",
        "data.val_fraction=0.25", "data.test_fraction=0.25", "data.batch_size=8",
        "model=cnn", "trainer.max_epochs=4", "callbacks.early_stopping=null",
        "callbacks.progress_bar=null", "throughput_seconds=0", "log_model=false",
        f"paths.root_dir={out}",
    ], output_dir=out / "run")
    result = fit_and_test(cfg, callbacks=[Damage()])
    print(json.dumps({"run_id": result.run_id, "metrics": result.metrics}))
"""


@pytest.mark.slow
def test_training_survives_audio_damaged_mid_run_and_counts_it(tmp_path: Path, mlflow_uri: str) -> None:
    root = _folder_dataset(tmp_path / "music")
    proc = _run(TRAINING, str(root), str(tmp_path / "cache"), str(tmp_path / "out"), "2")
    assert proc.returncode == 0, f"exit status {proc.returncode} (-7: SIGBUS)\n{proc.stderr[-3000:]}"
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    client = MlflowClient(mlflow_uri)
    run = client.get_run(out["run_id"])
    assert run.info.status == "FINISHED"
    # The entries cut short, deleted and overwritten, per split as damaged (two training clips
    # lost, as before entries could be deleted or overwritten); the damaged sources cost nothing.
    assert run.data.metrics["data/unreadable_clips/train"] == 2
    assert run.data.metrics["data/unreadable_clips/val"] == 2
    assert run.data.metrics["data/unreadable_clips/test"] == 1
    assert proc.stderr.count("is skipped for the rest of the run") >= 5
    assert "changed on disk during the run" in proc.stderr
    # Three tones: chance is 1/3; the remaining test clips are still told apart.
    assert out["metrics"]["test/track_acc"] >= 0.8, out["metrics"]


def test_without_a_cache_the_audio_is_held_in_memory(tmp_path: Path) -> None:
    """`data.cache_dir=null`: sources are never read again after the scan, so deleting or
    truncating them (or taking their permission) mid-run cannot fail (no SIGBUS risk: no maps)."""
    from torch.utils.data import DataLoader

    from genre_lab.data.cache import decode_files
    from genre_lab.data.clips import AudioSplit
    from genre_lab.data.datamodule import RandomChunks, TrackChunks

    files = sorted(_folder_dataset(tmp_path / "music", per_class=2).rglob("*.wav"))
    result = decode_files(files, 8000, None)
    split = AudioSplit(ids=[f.name for f in files], labels=list(range(len(files))), waves=[result.waves[str(f)] for f in files])
    datasets = RandomChunks(split, 4000), TrackChunks(split, 4000, 4000)
    files[0].unlink()
    os.truncate(files[1], 100)
    files[2].chmod(0)
    for ds in datasets:
        labels = [int(y) for batch in DataLoader(ds, batch_size=4) for y in batch[1]]
        assert sorted(set(labels)) == list(range(len(files))) and ds.unreadable.count == 0
