"""`python -m genre_lab.embed MODEL PATH... --output emb.npz [--per-window]`: embeddings.

One pooled embedding per file (the mean of the backbone's output over the file's windows, the
same windows tagging uses), and with `--per-window` every window's too. MODEL is any genre_lab
model (run id, checkpoint, `models:/` / `runs:/` URI) or a pretrained network
(`pretrained:musicnn-msd`: its 200-unit penultimate layer). The `.npz` holds `paths`,
`embeddings` (files x dim), `failed` / `reasons` for files that could not be embedded, and with
`--per-window` `window_embeddings`, `window_file` (row into `paths`) and `window_start`
(seconds). A linear probe on these is the classic transfer-learning baseline.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from torch import nn

from genre_lab.audio.decode import AudioDecodeError, load_audio
from genre_lab.cli.options import add_tracking_uri_option
from genre_lab.inference.tag_files import collect_audio_files
from genre_lab.models.loading import load_model
from genre_lab.models.network import for_inference
from genre_lab.audio.windows import samples, windows


@dataclass
class Embedder:
    """Front end + backbone of a model, and the windows it was trained on."""

    frontend: nn.Module
    backbone: nn.Module
    sample_rate: int
    chunk: int
    hop: int
    batch_size: int = 16

    @classmethod
    def load(cls, model: str, tracking_uri: str | None = None, hop_seconds: float | None = None) -> Embedder:
        """The front end and backbone of `model` (anything `load_model` takes but an ensemble),
        prepared for the CPU as the Tagger prepares them, and its windows (`hop_seconds`: the
        model's evaluation hop unless given)."""
        network = load_model(model, tracking_uri, "cpu", one_model_for="embed").network
        prepared = for_inference(network, torch.device("cpu"))
        spec = network.spec
        hop_s = hop_seconds or spec.eval_hop_seconds
        if hop_s <= 0:
            raise ValueError(f"--hop must be positive, got {hop_s}")
        rate = spec.sample_rate
        return cls(prepared.frontend, prepared.backbone, rate, samples(spec.chunk_seconds, rate), max(1, samples(hop_s, rate)))

    @torch.inference_mode()
    def windows(self, wave: torch.Tensor) -> tuple[torch.Tensor, list[int]]:
        """(windows, dim) embeddings of a mono wave at `sample_rate`, and the window starts."""
        batch, starts = windows(wave, self.chunk, self.hop)
        parts = [self.backbone(self.frontend(part)).float() for part in batch.split(self.batch_size)]
        return torch.cat(parts), starts


@dataclass
class Embeddings:
    paths: list[str] = field(default_factory=list)
    pooled: list[np.ndarray] = field(default_factory=list)
    per_window: list[np.ndarray] = field(default_factory=list)
    window_file: list[np.ndarray] = field(default_factory=list)
    window_start: list[np.ndarray] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)

    def save(self, path: Path, per_window: bool) -> None:
        dim = self.pooled[0].shape[0] if self.pooled else 0
        arrays = {
            "paths": np.array(self.paths, dtype=str),
            "embeddings": np.stack(self.pooled) if self.pooled else np.zeros((0, dim), np.float32),
            "failed": np.array([p for p, _ in self.failed], dtype=str),
            "reasons": np.array([r for _, r in self.failed], dtype=str),
        }
        if per_window:
            arrays["window_embeddings"] = np.concatenate(self.per_window) if self.per_window else np.zeros((0, dim), np.float32)
            arrays["window_file"] = np.concatenate(self.window_file) if self.window_file else np.zeros(0, np.int64)
            arrays["window_start"] = np.concatenate(self.window_start) if self.window_start else np.zeros(0, np.float32)
        np.savez(path, **arrays)


def embed_files(embedder: Embedder, files: list[Path]) -> Embeddings:
    """Embed each file; a file that cannot be decoded (or gives non-finite values) is listed in
    `failed` with its reason and the others go on."""
    out = Embeddings()
    for path in files:
        try:
            wave = load_audio(path, embedder.sample_rate)
            emb, starts = embedder.windows(wave)
            if not torch.isfinite(emb).all():
                raise ValueError("the model gave non-finite embeddings")
        except (AudioDecodeError, ValueError, RuntimeError) as err:
            out.failed.append((str(path), getattr(err, "reason", None) or str(err)))
            continue
        index = len(out.paths)
        out.paths.append(str(path))
        out.pooled.append(emb.mean(0).numpy())
        out.per_window.append(emb.numpy())
        out.window_file.append(np.full(len(starts), index, dtype=np.int64))
        out.window_start.append(np.array(starts, dtype=np.float32) / embedder.sample_rate)
    return out


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m genre_lab.embed", description=__doc__.splitlines()[0])
    p.add_argument("model", help="run id, checkpoint, models:/ or runs:/ URI, or pretrained:musicnn-msd|mtt")
    p.add_argument("paths", nargs="+", metavar="PATH", help="audio files or folders")
    p.add_argument("--output", type=Path, required=True, help="the .npz file to write")
    p.add_argument("--per-window", action="store_true", help="also store every window's embedding")
    p.add_argument("--hop", type=float, metavar="SECONDS", help="window hop (default: the model's evaluation hop)")
    add_tracking_uri_option(p)
    return p


def main(argv: list[str] | None = None) -> int:
    a = parser().parse_args(argv)
    err = Console(stderr=True)
    try:
        embedder = Embedder.load(a.model, a.tracking_uri, a.hop)
    except ValueError as error:
        err.print(f"[red]error:[/red] {error}", highlight=False)
        return 2
    result = embed_files(embedder, collect_audio_files(a.paths))
    a.output.parent.mkdir(parents=True, exist_ok=True)
    result.save(a.output, a.per_window)
    for path, reason in result.failed:
        err.print(f"[red]{path}:[/red] {reason}", highlight=False)
    dim = result.pooled[0].shape[0] if result.pooled else 0
    Console().print(f"{len(result.paths)} file(s) embedded ({dim} dims) -> {a.output}", highlight=False)
    return 1 if result.failed else 0


if __name__ == "__main__":
    sys.exit(main())
