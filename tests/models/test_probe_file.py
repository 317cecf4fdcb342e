"""`genre_lab.models.probe_file`: the linear probe's safetensors file round-trips, and a damaged or
hostile one is refused with a message naming the file and the field."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from genre_lab.models.probe_file import ProbeFileError, ProbeHead, read_probe, write_probe


def head(n: int = 3, dim: int = 4, pooling: tuple[str, ...] = ("mean", "max")) -> ProbeHead:
    rng = np.random.default_rng(0)
    d = dim * len(pooling)
    return ProbeHead(tuple(f"c{i}" for i in range(n)), "penultimate", pooling,
                     rng.normal(size=d).astype(np.float32), rng.uniform(0.5, 2, d).astype(np.float32),
                     rng.normal(size=(n, d)).astype(np.float32), rng.normal(size=n).astype(np.float32),
                     "pretrained:musicnn-msd", "ab" * 32, 0.1)


def test_round_trip_gives_the_same_probabilities(tmp_path: Path) -> None:
    path = tmp_path / "probe.safetensors"
    write_probe(path, head())
    back = read_probe(path)
    assert back.classes == ("c0", "c1", "c2") and back.pooling == ("mean", "max") and back.C == 0.1
    x = np.random.default_rng(1).normal(size=(5, 8))
    p = back.probabilities(x)
    assert np.allclose(p, head().probabilities(x)) and np.allclose(p.sum(1), 1)


def _tensors(h: ProbeHead) -> dict[str, np.ndarray]:
    return {k: getattr(h, k) for k in ("mean", "scale", "coef", "intercept")}


def _meta(**changes: str) -> dict[str, str]:
    meta = {"format": "genre_lab_probe", "version": "1", "classes": '["a", "b", "c"]', "layer": "penultimate",
            "pooling": '["mean", "max"]', "C": "1.0"}
    return {**meta, **changes}


@pytest.mark.parametrize(("tensors", "meta", "field"), [
    ({**_tensors(head()), "coef": np.zeros((3, 7), np.float32)}, _meta(), "'coef'"),
    ({**_tensors(head()), "scale": np.full(8, np.nan, np.float32)}, _meta(), "'scale'"),
    ({**_tensors(head()), "mean": np.zeros(8, np.float64)}, _meta(), "'mean'"),
    (_tensors(head()), _meta(pooling='["mean", "median"]'), "'pooling'"),
    (_tensors(head()), _meta(classes='["a", "a", "b"]'), "'classes'"),
    (_tensors(head()), _meta(classes="{not json"), "'classes'"),
    (_tensors(head()), _meta(layer="../../etc"), "'layer'"),
    (_tensors(head()), _meta(format="pickle"), "genre_lab_probe"),
    ({**_tensors(head()), "extra": np.zeros(1, np.float32)}, _meta(), "exactly"),
])
def test_hostile_probe_files_are_refused(tmp_path: Path, tensors: dict, meta: dict, field: str) -> None:
    path = tmp_path / "bad.safetensors"
    save_file(tensors, str(path), metadata=meta)
    with pytest.raises(ProbeFileError, match=field) as err:
        read_probe(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_not_a_safetensors_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "probe.safetensors"
    path.write_bytes(b"\x80\x04\x95not safetensors at all")
    with pytest.raises(ProbeFileError, match="not a readable probe file"):
        read_probe(path)
