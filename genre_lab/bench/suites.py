"""The benchmark suites and their full / quick sizes."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from pathlib import Path

import soundfile as sf
import torch

from genre_lab.data.synthetic import render_clip
from genre_lab.bench import architectures, features, frozen, gpu, pooling, probe_layers, quant, scale, serve, tag, train
from genre_lab.bench import musicnn_reference as musicnn
from genre_lab.bench.common import Result, environment_tags, report

log = logging.getLogger(__name__)


def _features(quick: bool, repeats: int | None, **_: object) -> tuple[list[Result], dict]:
    params = dict(sample_rate=22050, clip_seconds=1.0 if quick else 3.0, n_clips=2 if quick else 32,
                  batch_sizes=(2,) if quick else (1, 8, 32), repeats=repeats or (1 if quick else 5))
    return features.run(**params), params


def _train(quick: bool, repeats: int | None, **_: object) -> tuple[list[Result], dict]:
    extra = ["data.source.clips_per_class={train: 4, val: 1, test: 1}"] if quick else []
    params = dict(steps=4 if quick else 30, extra=extra, folder_clips_per_genre=3 if quick else 6,
                  folder_seconds=4.0 if quick else 30.0, num_workers=(0, 2) if quick else (0, 1, 2))
    return train.run(**params), params


def _tag(quick: bool, repeats: int | None, songs: str | None = None, max_songs: int | None = None,
         serve_requests: int | None = None, tf_python: str | None = None, musicnn_songs: int = 4,
         **_: object) -> tuple[list[Result], dict]:
    per_client = serve_requests or (1 if quick else 4)
    clip = 4.0 if quick else 30.0
    if quick and songs is None:
        with tempfile.TemporaryDirectory() as tmp:
            files = _quick_songs(Path(tmp))
            results = tag.run(files, repeats=1, librosa_baseline=False)
        params = {"songs": "synthetic", "n": len(files)}
    else:
        files = tag.find_songs([songs] if songs else tag.DEBIAN_MUSIC, max_songs)
        params = {"songs": songs or ",".join(tag.DEBIAN_MUSIC), "n": len(files), "repeats": repeats or 1}
        results = tag.run(files, repeats=repeats or 1)
    results += serve.run(tag.default_model(), clients=4, requests_per_client=per_client, clip_seconds=clip)
    python = musicnn.tf_python(tf_python)
    if python:  # the original TensorFlow tagger, from its side environment
        results += musicnn.run(files[:musicnn_songs], python)
        params["musicnn_songs"] = min(musicnn_songs, len(files))
    else:
        log.warning("bench tag: no TensorFlow musicnn contender (give --tf-python or $%s)", musicnn.ENV)
    return results, {**params, "serve_clients": 4, "serve_requests_per_client": per_client, "serve_clip_seconds": clip}


def _gpu(quick: bool, repeats: int | None, **_: object) -> tuple[list[Result], dict]:
    results = gpu.run(quick=quick)
    return results, {"amp": gpu.amp_precision(), "cuda": torch.cuda.is_available()}


def _quick_songs(folder: Path) -> list[Path]:
    """Three short songs in two formats, for the quick mode."""
    out = []
    for i, (genre, ext) in enumerate([("rock", "ogg"), ("jazz", "wav"), ("disco", "flac")]):
        path = folder / f"{genre}.{ext}"
        sf.write(str(path), render_clip(genre, i, 8.0, 44100), 44100)
        out.append(path)
    return out


def _zoo(quick: bool, repeats: int | None, **_: object) -> tuple[list[Result], dict]:
    # 30 s synthetic clips: FCN's window is 29.1 s.
    extra = ["data.source.clips_per_class={train: 2, val: 1, test: 1}" if quick else
             "data.source.clips_per_class={train: 8, val: 1, test: 1}", "data.source.clip_seconds=30.0",
             *(["data.batch_size=4"] if quick else [])]  # quick: a smoke run, not a measurement
    params = dict(models=("cnn", "fcn", "samplecnn") if quick else architectures.ZOO, steps=3 if quick else 10,
                  song_seconds=30.0 if quick else 120.0, extra=extra)
    return architectures.run(**params), params


def _quant(quick: bool, repeats: int | None, **_: object) -> tuple[list[Result], dict]:
    size = "{train: 6, val: 2, test: 2}" if quick else "{train: 24, val: 6, test: 12}"
    params = dict(overrides=[f"data.source.clips_per_class={size}"], epochs=1 if quick else 5)
    return quant.run(**params), params


def _frozen(quick: bool, repeats: int | None, **_: object) -> tuple[list[Result], dict]:
    size = "{train: 2, val: 1, test: 1}" if quick else "{train: 12, val: 3, test: 1}"
    params = dict(models=("cnn",) if quick else ("musicnn", "cnn"), epochs=3 if quick else 5,
                  extra=[f"data.source.clips_per_class={size}", "data.source.clip_seconds=6.0"])
    return frozen.run(**params), params


def _pooling(quick: bool, repeats: int | None, **_: object) -> tuple[list[Result], dict]:
    size = "{train: 3, val: 1, test: 2}" if quick else "{train: 16, val: 4, test: 10}"
    params = dict(seeds=(0,) if quick else (0, 1), epochs=1 if quick else 5, shifts=(1, 2),
                  extra=[f"data.source.clips_per_class={size}", "data.source.clip_seconds=12.0",
                         "data.source.difficulty=medium"])
    return pooling.run(**params), params


def _probe(quick: bool, repeats: int | None, **_: object) -> tuple[list[Result], dict]:
    # One musicnn window per clip (2.976 s): eight embeddings of 300 clips stay within a few CPU minutes.
    params = dict(models=probe_layers.MODELS[:1] if quick else probe_layers.MODELS,
                  layers=("midend", "taggram") if quick else probe_layers.LAYERS, per_genre=3 if quick else 30,
                  seconds=probe_layers.WINDOW_SECONDS, folds=3 if quick else 5)
    return probe_layers.run(**params), {**params, "difficulty": "hard"}


def _scale(quick: bool, repeats: int | None, sizes: str | None = None, **_: object) -> tuple[list[Result], dict]:
    chosen = tuple(int(n) for n in sizes.split(",")) if sizes else (100, 1000) if quick else (1000, 10000, 100000)
    return scale.run(chosen), {"sizes": ",".join(map(str, chosen)), "seconds_per_file": scale.SECONDS}


SUITES: dict[str, Callable[..., tuple[list[Result], dict]]] = {
    "features": _features, "train": _train, "tag": _tag, "gpu": _gpu, "quant": _quant, "zoo": _zoo, "frozen": _frozen,
    "pooling": _pooling, "probe": _probe, "scale": _scale}
#: What `python -m genre_lab.bench` runs with no suite named (`gpu` is asked for by name).
DEFAULT_SUITES = ("features", "train", "tag")


def run_suite(name: str, quick: bool = False, repeats: int | None = None, **kwargs: object) -> tuple[str, list[Result]]:
    results, params = SUITES[name](quick=quick, repeats=repeats, **kwargs)
    run_id = report(name, results, {**params, "quick": quick})
    if name == "gpu":
        from rich.console import Console

        Console(width=220).print(gpu.readme_table(results, environment_tags()["device"]), highlight=False)
    return run_id, results
