"""The linear probe's model file: a standardiser and a linear head on pooled track embeddings.

`genre-lab probe` (`genre_lab.inference.linear_probe`) fits a logistic regression on an
embedding network's window embeddings pooled per track (mean, std, max); this file holds what
the fit learnt, as a safetensors file (plain tensors, no pickle): `mean` and `scale` (the
standardiser fitted on the training split), `coef` (classes x features) and `intercept`, and in
its metadata the classes, the embedding layer, the pooling order, the source model (as given)
and the digest of its weights. The embedding network itself is not copied: the source model
and the digest name it.

The file is the run's record of the fit; nothing loads it back as a model (`load_model`
recognises one by its header, `is_probe_file`, and asks for the probe's run instead).

A probe of the penultimate layer pooled by the mean alone is also an ordinary network
(`probe_network`): the standardiser folded into the linear head, the embedding network's front
end and backbone under it. `genre-lab probe` logs that network as the run's model, so
`predict`, serving, ensembles and `init_from` (LP-FT) take a probe run like a training run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np


if TYPE_CHECKING:
    from genre_lab.models.network import GenreNet

#: The metadata `format` value of a probe file, and its version.
PROBE_FORMAT = "genre_lab_probe"
PROBE_VERSION = "1"
#: Pooling of window embeddings into one track vector, concatenated in the order given.
POOLINGS = ("mean", "std", "max")


@dataclass(frozen=True)
class ProbeHead:
    """A fitted probe: standardise pooled features, then a multinomial logistic regression."""

    classes: tuple[str, ...]
    layer: str
    pooling: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray
    source_model: str = ""
    model_digest: str = ""
    C: float = 1.0

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """(tracks, features) pooled embeddings -> (tracks, classes) softmax probabilities."""
        logits = ((features - self.mean) / self.scale) @ self.coef.T + self.intercept
        logits = logits - logits.max(axis=1, keepdims=True)
        e = np.exp(logits)
        return e / e.sum(axis=1, keepdims=True)

    def servable(self) -> str | None:
        """None when this probe is a per-window linear head on the embedding network (see
        `folded`), else the setting that prevents it, as one line."""
        if self.layer != "penultimate":
            return (f"probe.layer={self.layer}: only a probe of the penultimate layer (what the genre head "
                    "sees) is a network; probe again with probe.layer=penultimate probe.pooling=mean")
        if tuple(self.pooling) != ("mean",):
            return (f"probe.pooling={','.join(self.pooling)}: only a mean-pooled probe is a linear head on "
                    "each window; probe again with probe.pooling=mean")
        return None

    def folded(self) -> tuple[np.ndarray, np.ndarray]:
        """(weight (classes, dim), bias (classes,)) of one linear layer equal to standardising
        then applying the probe: W((e - mean) / scale) + b = (W / scale) e + (b - W (mean / scale)).

        Exact for `pooling=[mean]` only: the head is linear, so the logits of a track's mean
        embedding are the mean of its windows' logits. std and max pooling are not linear in
        the window embeddings and have no per-window head (ValueError naming the setting)."""
        problem = self.servable()
        if problem:
            raise ValueError(problem)
        coef, scale = self.coef.astype(np.float64), self.scale.astype(np.float64)
        weight = coef / scale
        bias = self.intercept.astype(np.float64) - weight @ self.mean.astype(np.float64)
        return weight.astype(np.float32), bias.astype(np.float32)


def probe_network(embedding: GenreNet, head: ProbeHead, eval_hop_seconds: float | None = None) -> GenreNet:
    """The probe as an ordinary `GenreNet`: `embedding`'s front end and backbone (copied), a
    head of the probe's classes holding `head.folded()`, `task=multiclass`, the windows the
    probe was fitted on (`eval_hop_seconds`, else the embedding model's).

    Its spec says `model.track_average: logits`: a track's distribution is the softmax of
    its windows' mean logits, which for a linear head is the head applied to the mean
    embedding, i.e. exactly the probe's decision (`genre_lab.audio.windows.TRACK_POOLING`;
    the Tagger, the served pyfunc and `evaluate` follow it).

    Why a folded head rather than a network that pools a track's windows first: everything
    that runs a model (the Tagger, evaluation, ensembles, the served pyfunc, fine-tuning)
    takes one window at a time, and a `GenreNet` file is the format all of them already
    validate (weights-only, `check_weights`). What still differs from the probe: an ensemble
    averages its members' window probabilities (arithmetically, before the track average),
    so a probe member contributes the mean of its window softmaxes there, not its exact
    track decision; LP-FT fine-tunes per window as training always does. Probes with std/max
    pooling or of another layer (musicnn's front end or mid-end, the taggram) are no
    per-window head on the embedding and are refused."""
    import torch

    from genre_lab.models.model_file import ModelSpec
    from genre_lab.models.network import GenreNet

    weight, bias = head.folded()
    config = dict(embedding.config)
    data = dict(config.get("data") or {})
    if eval_hop_seconds is not None:
        data["eval_hop_seconds"] = float(eval_hop_seconds)
    model = {**(config.get("model") or {}), "track_average": "logits"}
    spec = ModelSpec.from_dict({**config, "model": model, "data": data, "classes": list(head.classes),
                                "task": "multiclass"}, "the probe's embedding model")
    net = GenreNet.from_spec(spec)
    if weight.shape != (len(head.classes), net.backbone.out_dim):
        raise ValueError(f"the probe has {weight.shape[1]} features but the embedding model's penultimate layer "
                         f"has {net.backbone.out_dim}")
    state = {k: v for k, v in embedding.state_dict().items() if not k.startswith("head.")}
    state.update({"head.weight": torch.from_numpy(weight), "head.bias": torch.from_numpy(bias)})
    net.load_state_dict(state)
    return net.eval()


def write_probe(path: str | Path, head: ProbeHead) -> None:
    """`head` as a safetensors file: its four arrays in float32, the rest in the metadata."""
    from safetensors.numpy import save_file

    metadata = {
        "format": PROBE_FORMAT, "version": PROBE_VERSION, "classes": json.dumps(list(head.classes)),
        "layer": head.layer, "pooling": json.dumps(list(head.pooling)), "source_model": head.source_model,
        "model_digest": head.model_digest, "C": repr(float(head.C)),
    }
    tensors = {name: np.ascontiguousarray(getattr(head, name), dtype=np.float32)
               for name in ("mean", "scale", "coef", "intercept")}
    save_file(tensors, str(path), metadata=metadata)


def is_probe_file(path: str | Path) -> bool:
    """Whether `path` is a safetensors file whose metadata says it is a probe (its header only:
    nothing else is read)."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="numpy") as f:
            return (f.metadata() or {}).get("format") == PROBE_FORMAT
    except (SafetensorError, OSError, ValueError):
        return False
