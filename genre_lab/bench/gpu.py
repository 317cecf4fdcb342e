"""The GPU pass: front ends, training with AMP, data-loading share and tagging on one CUDA device.

- front ends: nnAudio and torchaudio on CUDA against librosa on the CPU (goal: nnAudio log-mel
  at least 100x librosa), each kind, batch sizes 1/8/32;
- training: clips/s of every model with automatic mixed precision (`bf16-mixed` where the GPU
  supports it, else `16-mixed`) and the share of step time spent waiting for data;
- tagging: songs tagged on the GPU, in audio seconds per second.

Without CUDA the CUDA parts are skipped with a message saying so; the CPU references (librosa,
the CPU front ends in quick mode) still run, so the command is tested on any machine. The
results land in MLflow `benchmarks` like every suite (tag `device` names the GPU), and
`readme_table` prints the table for the GPU section of `docs/benchmarks.md`.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import soundfile as sf
import torch
from rich.console import Console

from genre_lab.data.synthetic import GENRES, render_clip
from genre_lab.inference.tagger import Tagger
from genre_lab.bench import features, train
from genre_lab.bench.common import Result
from genre_lab.bench.tag import default_model

SKIP_MESSAGE = "bench gpu: no CUDA device here: skipping the CUDA front ends, AMP training and GPU tagging"


def amp_precision() -> str:
    return "bf16-mixed" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "16-mixed"


def write_songs(folder: Path, n: int, seconds: float, sample_rate: int = 44100) -> list[Path]:
    """Generated songs (the GPU machine may have no Debian music and no network)."""
    out = []
    for i in range(n):
        path = folder / f"song{i:02d}.flac"
        sf.write(str(path), render_clip(GENRES[i % len(GENRES)], i, seconds, sample_rate), sample_rate)
        out.append(path)
    return out


def run(quick: bool = False, console: Console | None = None) -> list[Result]:
    console = console or Console()
    cuda = torch.cuda.is_available()
    if not cuda:
        console.print(f"[yellow]{SKIP_MESSAGE}[/yellow]")
    devices: tuple[str, ...] = ("cuda",) if cuda else (("cpu",) if quick else ())
    results = features.run(
        clip_seconds=1.0 if quick else 3.0, n_clips=2 if quick else 32, batch_sizes=(2,) if quick else (1, 8, 32),
        repeats=1 if quick else 5, kinds=("logmel",) if quick else ("logmel", "mfcc", "stft", "cqt"), devices=devices,
    )
    if cuda:
        results += _training(quick)
        results += _tagging(quick)
    return results


def _training(quick: bool) -> list[Result]:
    steps = 6 if quick else 40
    extra = ["trainer=gpu", f"trainer.precision={amp_precision()}", "data.num_workers=2"]
    if quick:
        extra.append("data.source.clips_per_class={train: 4, val: 1, test: 1}")
    base = "loader_only_gpu"
    results = [Result(base, train.loader_only(extra, steps), "clips/s")]
    for name in ("cnn", "rnn", "crnn"):
        m = train.measure([f"model={name}", *extra], steps)
        results.append(Result(f"train_{name}_amp_cuda", m["clips_per_s"], "clips/s", base, extra=m))
    return results


def _tagging(quick: bool) -> list[Result]:
    with tempfile.TemporaryDirectory() as tmp:
        songs = [str(p) for p in write_songs(Path(tmp), 3 if quick else 12, 20.0 if quick else 120.0)]
        total = sum(sf.info(p).duration for p in songs)
        tagger = Tagger(default_model(), device="cuda", batch_size=64)
        tagger.tag(songs[0])
        t0 = time.perf_counter()
        results = list(tagger.tag_files(songs, workers=2))
        seconds = time.perf_counter() - t0
    assert all(r.ok for r in results), [r.error for r in results if not r.ok]
    return [Result("tag_cuda", total / seconds, "audio s/s", extra={"songs": float(len(songs))})]


def readme_table(results: Sequence[Result], device: str) -> str:
    """The GPU table of `docs/benchmarks.md` (markdown) from one run."""
    by = {r.name: r for r in results}
    rows = [f"| measured on {device} | rate | vs baseline |", "|---|---:|---:|"]
    for r in results:
        base = by.get(r.baseline or "")
        ratio = f"{r.value / base.value:.1f}x {base.name}" if base and base.value > 0 else "baseline"
        rows.append(f"| {r.name} | {r.value:,.0f} {r.unit} | {ratio} |")
    return "\n".join(rows)
