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
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genre_lab.models.bounds import MAX_CLASSES

#: The metadata `format` value of a probe file, and its version.
PROBE_FORMAT = "genre_lab_probe"
PROBE_VERSION = "1"
#: Pooling of window embeddings into one track vector, concatenated in the order given.
POOLINGS = ("mean", "std", "max")
#: Embedding layers: the backbone's output (the penultimate layer before the genre head) or,
#: for musicnn, its mid-end features pooled over time (mean and max, 2 x 753).
LAYERS = ("penultimate", "midend")
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
    except (KeyError, ValueError) as err:
        raise ProbeFileError(f"{path}: metadata 'classes', 'pooling' or 'C' missing or not valid ({err})") from err
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
