"""Tagging whole songs against decoding them: how close to the decode limit tagging runs.

Contenders on the same files, in audio seconds per wall-second:
- `decode_1proc` (baseline): soundfile decodes every file, nothing else, in this process;
- `decode_2proc`: the same in two processes, the most this machine's decoder can give;
- `decode_resample`: genre_lab's loader, decode + mono + soxr resample to the model rate;
- `decode_resample_torchaudio`: the same with torchaudio's resampler (why soxr is the default);
- `librosa_script`: what a typical script does: `librosa.load(sr=22050)` + mel + dB;
- `tag_overlap`: genre_lab's Tagger with decoding threads running ahead of the model;
- `tag_serial`: the same Tagger decoding inline, to show what the overlap buys.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf

from ..audio import load_audio, resample, to_mono
from ..config import compose
from ..data.files import find_audio
from ..data.synthetic import GENRES
from ..inference.tagger import Tagger
from ..module import GenreClassifier
from .common import Result

#: Where Debian's music packages (installed by `make bench`) put their songs.
DEBIAN_MUSIC = (
    "/usr/share/games/wesnoth/1.16/data/core/music",
    "/usr/share/games/singularity/music",
)


def find_songs(folders: Sequence[str | Path], limit: int | None = None) -> list[Path]:
    songs = sorted(p for f in folders if Path(f).is_dir() for p in find_audio(Path(f)))
    return songs[:limit] if limit else songs


def _decode(path: str) -> float:
    """Decode fully; return the audio duration in seconds."""
    audio, sr = sf.read(path, dtype="float32", always_2d=True)
    return audio.shape[0] / sr


def _decode_resample_torchaudio(path: str, sample_rate: int) -> None:
    audio, sr = sf.read(path, dtype="float32", always_2d=True)
    resample(to_mono(audio), sr, sample_rate, method="torchaudio")


def _librosa_script(path: str) -> None:
    import librosa

    y, sr = librosa.load(path, sr=22050)
    librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=sr, n_mels=128))


def _timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def default_tagger(overrides: Sequence[str] = ()) -> Tagger:
    """The default model (CRNN, log-mel, 16 kHz, 3 s chunks) with fresh weights: the cost of
    tagging does not depend on what the weights learned."""
    cfg = compose(list(overrides))
    return Tagger(GenreClassifier.from_config(cfg, list(GENRES)), device="cpu")


def run(songs: Sequence[Path], repeats: int = 1, librosa_baseline: bool = True) -> list[Result]:
    if not songs:
        raise ValueError("no songs to tag: pass --songs DIR or install Debian's wesnoth-1.16-music / singularity-music")
    paths = [str(p) for p in songs]
    total = sum(sf.info(p).duration for p in paths)
    tagger = default_tagger()
    tagger.tag(paths[0])  # warm-up: allocator, kernels, first decode of a file

    def rate(fn: Callable[[], object]) -> float:
        return total / float(np.median([_timed(fn) for _ in range(max(1, repeats))]))

    base = "decode_1proc"
    results = [Result(base, rate(lambda: [_decode(p) for p in paths]), "audio s/s")]
    with ProcessPoolExecutor(2) as pool:
        list(pool.map(_decode, paths[:2]))  # start the workers before timing
        results.append(Result("decode_2proc", rate(lambda: list(pool.map(_decode, paths))), "audio s/s", base))
    results.append(Result("decode_resample", rate(lambda: [load_audio(p, tagger.sample_rate) for p in paths]), "audio s/s", base))
    results.append(Result("decode_resample_torchaudio", rate(lambda: [_decode_resample_torchaudio(p, tagger.sample_rate) for p in paths]), "audio s/s", base))
    if librosa_baseline:
        results.append(Result("librosa_script", rate(lambda: [_librosa_script(p) for p in paths]), "audio s/s", base))
    results.append(Result("tag_overlap", rate(lambda: list(tagger.tag_files(paths, workers=2))), "audio s/s", base))
    results.append(Result("tag_serial", rate(lambda: list(tagger.tag_files(paths, workers=0))), "audio s/s", base))
    for r in results:
        r.extra.update({"songs": len(paths), "audio_hours": total / 3600})
    return results
