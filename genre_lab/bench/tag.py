"""Tagging whole songs against the machine's limit: decoding them with every core.

Every contender is compared with `decode_<N>proc`: soundfile decoding the same files in as many
processes as cores, nothing else. Nothing that must decode the songs can tag faster than that,
so its ratio is the share of the machine's limit a contender reaches. In audio seconds per
wall-second, on the same files, all measured in one run:
- `decode_1proc`: the same decoding in this process;
- `decode_resample`: genre_lab's loader, decode + mono + soxr resample to the model rate;
- `decode_resample_torchaudio`: the same with torchaudio's resampler (why soxr is the default);
- `librosa_script`: what a typical script does: `librosa.load(sr=22050)` + mel + dB;
- `tag_serial`, `tag_overlap`: the Tagger in this process, decoding inline / in threads;
- `tag_processes`: the Tagger in one worker process per core (`genre_lab.inference.workers`);
- `predict_command`: the real `python -m genre_lab.predict MODEL FILES` process as a user runs
  it (start-up and model loading included; decoding threads); `predict_command_processes` the
  same with one worker process per core. Their JSON reports are compared with the model as
  trained (no CPU inference preparation) tagging the same files (`bench.command.compare`):
  same top-1 for every song, every probability within `command.TOLERANCE`;
- `ensemble3` vs `members_one_by_one`: a 3-member ensemble (one decode per file) against its
  members tagging the same songs one after another.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from genre_lab.audio.decode import load_audio, resample, to_mono
from genre_lab.config import compose
from genre_lab.data.files import find_audio
from genre_lab.data.synthetic import GENRES
from genre_lab.models.ensemble import EnsembleClassifier
from genre_lab.inference.tagger import Tagger
from genre_lab.machine import cores
from genre_lab.training.lightning_module import GenreClassifier
from genre_lab.bench import command
from genre_lab.bench.common import Result

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


def default_model(overrides: Sequence[str] = (), seed: int = 0) -> GenreClassifier:
    """The default model (CRNN, log-mel, 16 kHz, 3 s chunks) with fresh seeded weights: the
    cost of tagging does not depend on what the weights learned."""
    torch.manual_seed(seed)
    return GenreClassifier.from_config(compose(list(overrides)), list(GENRES)).eval()


def run(songs: Sequence[Path], repeats: int = 1, librosa_baseline: bool = True, command_check: bool = True,
        ensemble: bool = True) -> list[Result]:
    if not songs:
        raise ValueError("no songs to tag: pass --songs DIR or install Debian's wesnoth-1.16-music / singularity-music")
    paths = [str(p) for p in songs]
    total = sum(sf.info(p).duration for p in paths)
    n = cores()
    model = default_model()
    tagger = Tagger(model, device="cpu")
    tagger.tag(paths[0])  # warm-up: allocator, kernels, first decode of a file

    def rate(fn: Callable[[], object]) -> float:
        return total / float(np.median([_timed(fn) for _ in range(max(1, repeats))]))

    limit = f"decode_{n}proc"
    with ProcessPoolExecutor(n) as pool:
        list(pool.map(_decode, paths[:n]))  # start the workers before timing
        results = [Result(limit, rate(lambda: list(pool.map(_decode, paths))), "audio s/s")]
    results.append(Result("decode_1proc", rate(lambda: [_decode(p) for p in paths]), "audio s/s", limit))
    results.append(Result("decode_resample", rate(lambda: [load_audio(p, tagger.sample_rate) for p in paths]), "audio s/s", limit))
    results.append(Result("decode_resample_torchaudio", rate(lambda: [_decode_resample_torchaudio(p, tagger.sample_rate) for p in paths]), "audio s/s", limit))
    if librosa_baseline:
        results.append(Result("librosa_script", rate(lambda: [_librosa_script(p) for p in paths]), "audio s/s", limit))
    results.append(Result("tag_serial", rate(lambda: list(tagger.tag_files(paths, workers=0))), "audio s/s", limit))
    results.append(Result("tag_overlap", rate(lambda: list(tagger.tag_files(paths, workers=2))), "audio s/s", limit))
    results.append(Result("tag_processes", rate(lambda: list(tagger.tag_files(paths, processes=n))), "audio s/s", limit))
    if command_check:
        results += _commands(model, paths, total, limit)
    if ensemble:
        results += _ensemble(paths, total, rate, n)
    for r in results:
        r.extra.update({"songs": len(paths), "audio_hours": total / 3600, "cores": n})
    return results


def _commands(model: GenreClassifier, paths: list[str], total: float, limit: str) -> list[Result]:
    """The predict process as a user runs it (default options: decoding threads) and with one
    worker process per core, once each. Both JSON reports are compared with the reference: the
    same model as trained (eager, no batch-norm folding, default memory layout) tagging the
    same files in this process, the path before the CPU inference changes."""
    reference = _plain_rows(model, paths)
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = command.save_model(model, Path(tmp))
        default_s, default = command.run_predict(ckpt, paths)
        procs_s, procs = command.run_predict(ckpt, paths, ["--processes", str(cores())])
    return [Result("predict_command", total / default_s, "audio s/s", limit,
                   dict(command.compare(reference, default), seconds=default_s)),
            Result("predict_command_processes", total / procs_s, "audio s/s", limit,
                   dict(command.compare(reference, procs), seconds=procs_s))]


def _plain_rows(model: GenreClassifier, paths: list[str]) -> list[dict]:
    """Report rows (every genre) of `model` exactly as trained, not prepared for inference."""
    tagger = Tagger(model, device="cpu")
    tagger.model = model.eval()
    return [r.to_dict() for r in tagger.tag_files(paths, k=len(tagger.classes))]


def _ensemble(paths: list[str], total: float, rate: Callable[[Callable[[], object]], float], n: int) -> list[Result]:
    """Issue 12: three CRNN members as one ensemble (each file decoded once, the window batch
    through the three models) against the three members tagging the songs one after another."""
    members = [default_model(seed=s) for s in (1, 2, 3)]
    one = Tagger(EnsembleClassifier(members), device="cpu")
    each = [Tagger(m, device="cpu") for m in members]
    base = "members_one_by_one"
    results = [Result(base, rate(lambda: [list(t.tag_files(paths, workers=2)) for t in each]), "audio s/s")]
    results.append(Result("ensemble3", rate(lambda: list(one.tag_files(paths, workers=2))), "audio s/s", base))
    results.append(Result("members_one_by_one_processes", rate(lambda: [list(t.tag_files(paths, processes=n)) for t in each]), "audio s/s"))
    results.append(Result("ensemble3_processes", rate(lambda: list(one.tag_files(paths, processes=n))), "audio s/s",
                          "members_one_by_one_processes"))
    return results
