"""`genre-lab bench probe`: the K-fold linear probe (`genre_lab.inference.linear_probe`) of the
pretrained musicnn taggers at each of their layers, on hard synthetic genres written as audio
files (`data=folder data.folds=K`, so the probe runs as a user's would).

Two kinds of result. Timing, for the first model: each layer probed twice, the first run
embedding every track (and decoding the files) into empty caches, the second taking every
embedding from the cache; the rate is probes per minute, the seconds ride along. Accuracy, for
every model and layer: the test accuracy of the folds' test predictions pooled (every clip is
tested once), with the mean and std over folds and macro-F1 beside it, against the same
model's penultimate layer. The embedding caches and the probes' MLflow runs live in a
temporary folder; only the suite's own run goes to the experiment `benchmarks`.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import soundfile as sf

from genre_lab.bench.common import Result
from genre_lab.config import compose
from genre_lab.data.synthetic import GENRES, synthetic_split
from genre_lab.inference.linear_probe import ProbeResult, run_probe
from genre_lab.models.embedding_layers import LAYERS

MODELS = ("pretrained:musicnn-msd", "pretrained:musicnn-mtt")
#: musicnn's rate and window (186 hops of 256 samples at 16 kHz): a clip of this length is one window.
RATE = 16000
WINDOW_SECONDS = 47616 / RATE


def write_clips(folder: Path, per_genre: int, seconds: float, seed: int = 0) -> int:
    """`per_genre` hard synthetic clips of every genre as float WAV files under `folder/<genre>/`."""
    waves, labels, ids = synthetic_split("train", per_genre, seconds, RATE, seed, "hard")
    for wave, label, clip in zip(waves, labels, ids):
        genre = folder / GENRES[label]
        genre.mkdir(parents=True, exist_ok=True)
        sf.write(genre / f"{Path(clip).name}.wav", wave, RATE, subtype="FLOAT")
    return len(waves)


def timed_probe(model: str, layer: str, music: Path, root: Path, folds: int) -> tuple[ProbeResult, float]:
    """One `genre-lab probe MODEL data=folder data.folds=K probe.layer=LAYER` with the config's
    other defaults (pooling, C grid), its caches and store under `root`; and its seconds."""
    cfg = compose(["data=folder", f"data.root={music}", f"data.folds={folds}", f"data.cache_dir={root / 'audio'}",
                   f"paths.root_dir={root}", f"tracking_uri=sqlite:///{root / 'mlflow.db'}", f"probe.layer={layer}",
                   f"run_name=bench-probe-{layer}"], config_name="probe")
    cfg.embedding_model = model
    start = time.perf_counter()
    result = run_probe(cfg)
    return result, time.perf_counter() - start


def short(model: str) -> str:
    return model.removeprefix("pretrained:").replace("musicnn-", "")


def run(models: Sequence[str] = MODELS, layers: Sequence[str] = LAYERS, per_genre: int = 30,
        seconds: float = WINDOW_SECONDS, folds: int = 5) -> list[Result]:
    """`time_<layer>_first` / `time_<layer>_cached` (probes/min, first model) and
    `<model>_<layer>` (pooled test accuracy, percent) per model and layer."""
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        music, root = Path(tmp) / "music", Path(tmp) / "home"
        clips = write_clips(music, per_genre, seconds)
        for i, model in enumerate(models):
            base = f"{short(model)}_penultimate"
            for layer in layers:
                result, first = timed_probe(model, layer, music, root, folds)
                if i == 0:
                    again, cached = timed_probe(model, layer, music, root, folds)
                    if again.computed:
                        raise RuntimeError(f"bench probe: the second probe of {layer} embedded {again.computed} track(s)")
                    results.append(Result(f"time_{layer}_first", 60.0 / first, "probes/min",
                                          extra={"seconds": first, "embedded_tracks": float(result.computed)}))
                    results.append(Result(f"time_{layer}_cached", 60.0 / cached, "probes/min", f"time_{layer}_first",
                                          extra={"seconds": cached, "cached_tracks": float(again.cached)}))
                m = result.metrics
                results.append(Result(f"{short(model)}_{layer}", 100.0 * m["test/track_acc"], "test acc %",
                                      None if f"{short(model)}_{layer}" == base else base,
                                      extra={"acc_mean": m["test/track_acc_mean"], "acc_std": m["test/track_acc_std"],
                                             "f1": m["test/track_f1"], "clips": float(clips),
                                             "dim": float(result.folds[0].head.coef.shape[1])}))
    return results
