"""The linear probe's model file: a standardiser and a linear head on pooled track embeddings.

`genre-lab probe` (`genre_lab.inference.linear_probe`) fits a logistic regression on an
embedding network's window embeddings pooled per track (mean, std, max); this file holds what
the fit learnt, as a safetensors file (plain tensors, no pickle): `mean` and `scale` (the
standardiser fitted on the training split), `coef` (classes x features) and `intercept`, and in
its metadata the classes, the embedding layer, the pooling order, the source model (as given)
and the digest of its weights. The embedding network itself is not copied: it is named by the
source model and checked by the digest.

Reading validates every field (sizes within bounds, shapes consistent, values finite), so a
probe file from a store is data, never code.

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

from genre_lab.models.bounds import MAX_CLASSES
from genre_lab.models.embedding_layers import LAYERS

if TYPE_CHECKING:
    from genre_lab.models.network import GenreNet

#: The metadata `format` value of a probe file, and its version.
PROBE_FORMAT = "genre_lab_probe"
PROBE_VERSION = "1"
#: Pooling of window embeddings into one track vector, concatenated in the order given.
POOLINGS = ("mean", "std", "max")
#: The widest feature vector a probe file may declare (3 poolings of a 4096-unit layer).
MAX_FEATURES = 3 * 4096


class ProbeFileError(ValueError):
    """A file that is not a usable probe; the message names the file and the field."""


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


def read_probe(path: str | Path) -> ProbeHead:
    """The probe in `path`, every field validated; a ProbeFileError naming the field otherwise."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="numpy") as f:
            meta = f.metadata() or {}
            tensors = {name: f.get_tensor(name) for name in f.keys()}
    except (SafetensorError, OSError, ValueError) as err:
        raise ProbeFileError(f"{path}: not a readable probe file ({err})") from err
    if meta.get("format") != PROBE_FORMAT or meta.get("version") != PROBE_VERSION:
        raise ProbeFileError(f"{path}: not a {PROBE_FORMAT} file of version {PROBE_VERSION}")
    try:
        classes, pooling = json.loads(meta["classes"]), json.loads(meta["pooling"])
        c = float(meta.get("C", "1.0"))
    except (KeyError, ValueError, RecursionError) as err:
        raise ProbeFileError(f"{path}: metadata 'classes', 'pooling' or 'C' missing or not valid ({err})") from None
    if not (isinstance(classes, list) and 2 <= len(classes) <= MAX_CLASSES and all(isinstance(x, str) for x in classes)
            and len(set(classes)) == len(classes)):
        raise ProbeFileError(f"{path}: metadata 'classes' must be 2..{MAX_CLASSES} distinct names")
    if not (isinstance(pooling, list) and pooling and all(p in POOLINGS for p in pooling) and len(set(pooling)) == len(pooling)):
        raise ProbeFileError(f"{path}: metadata 'pooling' must be distinct names among {POOLINGS}")
    if meta.get("layer") not in LAYERS:
        raise ProbeFileError(f"{path}: metadata 'layer' must be one of {LAYERS}")
    if set(tensors) != {"mean", "scale", "coef", "intercept"}:
        raise ProbeFileError(f"{path}: tensors must be exactly mean, scale, coef, intercept (found {sorted(tensors)})")
    n, coef = len(classes), tensors["coef"]
    if coef.ndim != 2 or coef.shape[0] != n or not 0 < coef.shape[1] <= MAX_FEATURES or coef.shape[1] % len(pooling):
        raise ProbeFileError(f"{path}: 'coef' must be ({n} classes, features divisible by {len(pooling)} poolings), "
                             f"got {coef.shape}")
    d = coef.shape[1]
    for name, shape in (("mean", (d,)), ("scale", (d,)), ("intercept", (n,))):
        if tensors[name].shape != shape:
            raise ProbeFileError(f"{path}: '{name}' must have shape {shape}, got {tensors[name].shape}")
    for name, value in tensors.items():
        if value.dtype != np.float32 or not np.isfinite(value).all():
            raise ProbeFileError(f"{path}: '{name}' must hold finite float32 values")
    if not (tensors["scale"] > 0).all() or not np.isfinite(c) or c <= 0:
        raise ProbeFileError(f"{path}: 'scale' and 'C' must be positive")
    return ProbeHead(tuple(classes), meta["layer"], tuple(pooling), tensors["mean"], tensors["scale"], coef,
                     tensors["intercept"], meta.get("source_model", ""), meta.get("model_digest", ""), c)
