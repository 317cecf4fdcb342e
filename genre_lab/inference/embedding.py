"""Embeddings of songs: the work behind `genre-lab embed`.

One pooled embedding per file (the mean over the file's windows, the same windows tagging
uses), and every window's too, at one layer of the network (`--layer`, the names and the
`auto` default of `probe.layer`: `genre_lab.models.embedding_layers`; `penultimate` is the
backbone's output). The model is any single genre_lab network, or a pretrained one
(`pretrained:musicnn-msd`); an ensemble has no one embedding space and is refused. The `.npz`
(`Embeddings.save`) holds `layer`, `paths`, `embeddings` (files x dim), `failed` / `reasons`
for files that could not be embedded, and with per-window output `window_embeddings`, `window_file` (row into `paths`) and `window_start`
(seconds). A linear probe on these is the classic transfer-learning baseline.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from genre_lab.audio.decode import AudioDecodeError
from genre_lab.audio.windows import windows
from genre_lab.inference.tag_files import model_and_songs
from genre_lab.inference.tagger import Tagger
from genre_lab.models.embedding_layers import AUTO, choose_layer, layer_output


@dataclass
class Embedder:
    """A model prepared for inference (a Tagger's) giving one of its layers (`layer_output`),
    cutting a song into the Tagger's windows."""

    tagger: Tagger
    layer: str = "penultimate"

    @torch.inference_mode()
    def windows(self, wave: torch.Tensor) -> tuple[torch.Tensor, list[int]]:
        """(windows, dim) embeddings of a mono wave at the model's rate, and the window starts."""
        batch, starts = windows(wave, self.tagger.chunk, self.tagger.hop)
        parts = [layer_output(self.tagger.model, part, self.layer) for part in batch.split(self.tagger.batch_size)]
        return torch.cat(parts), starts


@dataclass
class Embeddings:
    """Pooled and per-window embeddings of the files that worked, and the files that did not."""

    paths: list[str] = field(default_factory=list)
    pooled: list[np.ndarray] = field(default_factory=list)
    per_window: list[np.ndarray] = field(default_factory=list)
    window_file: list[np.ndarray] = field(default_factory=list)
    window_start: list[np.ndarray] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    layer: str = ""

    @property
    def dim(self) -> int:
        return self.pooled[0].shape[0] if self.pooled else 0

    def save(self, path: Path, per_window: bool) -> None:
        """The `.npz` described in the module docstring (its folder created)."""
        dim = self.dim
        arrays = {
            "layer": np.array(self.layer, dtype=str),
            "paths": np.array(self.paths, dtype=str),
            "embeddings": np.stack(self.pooled) if self.pooled else np.zeros((0, dim), np.float32),
            "failed": np.array([p for p, _ in self.failed], dtype=str),
            "reasons": np.array([r for _, r in self.failed], dtype=str),
        }
        if per_window:
            arrays["window_embeddings"] = np.concatenate(self.per_window) if self.per_window else np.zeros((0, dim), np.float32)
            arrays["window_file"] = np.concatenate(self.window_file) if self.window_file else np.zeros(0, np.int64)
            arrays["window_start"] = np.concatenate(self.window_start) if self.window_start else np.zeros(0, np.float32)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, **arrays)


def embed_files(embedder: Embedder, files: Sequence[Path]) -> Embeddings:
    """Embed each file; a file that cannot be decoded (or gives non-finite values) is listed in
    `failed` with its reason and the others go on."""
    out = Embeddings(layer=embedder.layer)
    rate = embedder.tagger.sample_rate
    for path in files:
        try:
            wave = embedder.tagger.decode(path)
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
        out.window_start.append(np.array(starts, dtype=np.float32) / rate)
    return out


def embed_songs(model: str, paths: Sequence[str | Path], output: Path, per_window: bool = False,
                hop: float | None = None, tracking_uri: str | None = None, layer: str = AUTO) -> Embeddings:
    """Embed the songs `paths` name with `model` at `layer` and write `output`; raises
    ValueError (naming the model, `--hop` or `--layer`) before anything is written when the
    model cannot be used."""
    tagger, files = model_and_songs(model, paths, tracking_uri, hop, one_model_for="embed")
    result = embed_files(Embedder(tagger, choose_layer(tagger.model, layer, str(model), "--layer")), files)
    result.save(output, per_window)
    return result
