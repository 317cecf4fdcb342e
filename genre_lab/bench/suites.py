"""The benchmark suites and their full / quick sizes."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import soundfile as sf

from ..data.synthetic import render_clip
from . import features, tag, train
from .common import Result, report


def _features(quick: bool, repeats: int | None, **_: object) -> tuple[list[Result], dict]:
    params = dict(sample_rate=22050, clip_seconds=1.0 if quick else 3.0, n_clips=2 if quick else 32,
                  batch_sizes=(2,) if quick else (1, 8, 32), repeats=repeats or (1 if quick else 5))
    return features.run(**params), params


def _train(quick: bool, repeats: int | None, **_: object) -> tuple[list[Result], dict]:
    extra = ["data.source.clips_per_class={train: 4, val: 1, test: 1}"] if quick else []
    params = dict(steps=4 if quick else 40, extra=extra, folder_clips_per_genre=3 if quick else 10,
                  folder_seconds=4.0 if quick else 30.0)
    return train.run(**params), params


def _tag(quick: bool, repeats: int | None, songs: str | None = None, max_songs: int | None = None, **_: object) -> tuple[list[Result], dict]:
    if quick and songs is None:
        with tempfile.TemporaryDirectory() as tmp:
            files = _quick_songs(Path(tmp))
            return tag.run(files, repeats=1, librosa_baseline=False), {"songs": "synthetic", "n": len(files)}
    files = tag.find_songs([songs] if songs else tag.DEBIAN_MUSIC, max_songs)
    params = {"songs": songs or ",".join(tag.DEBIAN_MUSIC), "n": len(files), "repeats": repeats or 1}
    return tag.run(files, repeats=repeats or 1), params


def _quick_songs(folder: Path) -> list[Path]:
    """Three short songs in two formats, for the quick mode."""
    out = []
    for i, (genre, ext) in enumerate([("rock", "ogg"), ("jazz", "wav"), ("disco", "flac")]):
        path = folder / f"{genre}.{ext}"
        sf.write(str(path), render_clip(genre, i, 8.0, 44100), 44100)
        out.append(path)
    return out


SUITES: dict[str, Callable[..., tuple[list[Result], dict]]] = {"features": _features, "train": _train, "tag": _tag}


def run_suite(name: str, quick: bool = False, repeats: int | None = None, **kwargs: object) -> tuple[str, list[Result]]:
    results, params = SUITES[name](quick=quick, repeats=repeats, **kwargs)
    return report(name, results, {**params, "quick": quick}), results
