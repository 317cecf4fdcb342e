"""`genre_lab.models.probe_file`: the linear probe's safetensors file holds the fitted head and is
recognised by its header; a mean-pooled probe of the penultimate layer is an ordinary network."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import save_file

from genre_lab.models.probe_file import ProbeHead, is_probe_file, write_probe


def head(n: int = 3, dim: int = 4, pooling: tuple[str, ...] = ("mean", "max")) -> ProbeHead:
    rng = np.random.default_rng(0)
    d = dim * len(pooling)
    return ProbeHead(tuple(f"c{i}" for i in range(n)), "penultimate", pooling,
                     rng.normal(size=d).astype(np.float32), rng.uniform(0.5, 2, d).astype(np.float32),
                     rng.normal(size=(n, d)).astype(np.float32), rng.normal(size=n).astype(np.float32),
                     "pretrained:musicnn-msd", "ab" * 32, 0.1)


def test_written_file_holds_the_head_and_is_recognised_by_its_header(tmp_path: Path) -> None:
    path = tmp_path / "probe.safetensors"
    probe = head()
    write_probe(path, probe)
    with safe_open(str(path), framework="numpy") as f:
        meta = f.metadata()
        tensors = {name: f.get_tensor(name) for name in f.keys()}
    assert json.loads(meta["classes"]) == ["c0", "c1", "c2"] and json.loads(meta["pooling"]) == ["mean", "max"]
    assert meta["layer"] == "penultimate" and float(meta["C"]) == 0.1 and meta["model_digest"] == "ab" * 32
    assert set(tensors) == {"mean", "scale", "coef", "intercept"}
    assert all(tensors[k].dtype == np.float32 and np.array_equal(tensors[k], getattr(probe, k)) for k in tensors)
    assert is_probe_file(path)
    other = tmp_path / "other.safetensors"
    save_file({"coef": probe.coef}, str(other), metadata={"format": "pickle"})
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x80\x04\x95not safetensors at all")
    assert not is_probe_file(other) and not is_probe_file(garbage) and not is_probe_file(tmp_path / "absent")


def test_folded_head_on_each_window_is_the_probe_on_the_mean_embedding() -> None:
    """W((e - mean) / scale) + b folded into one linear layer: the mean of the window logits is
    the probe's logits on the mean embedding, and the track average `logits` recovers the
    probe's distribution from the window softmaxes."""
    import torch

    from genre_lab.audio.windows import TRACK_POOLING, pool_windows

    probe = head(n=4, dim=6, pooling=("mean",))
    weight, bias = probe.folded()
    windows = np.random.default_rng(2).normal(size=(7, 6)).astype(np.float32)
    logits = windows.astype(np.float64) @ weight.T + bias
    expected = probe.probabilities(windows.mean(0, keepdims=True))[0]
    mean_logits = logits.mean(0)
    assert np.allclose(np.exp(mean_logits) / np.exp(mean_logits).sum(), expected, atol=1e-5)
    probs = torch.from_numpy(logits).float().softmax(1)
    one = torch.zeros(len(probs), dtype=torch.long)
    track = pool_windows(probs, one, 1, TRACK_POOLING["logits"])[0]
    assert np.allclose(track.numpy(), expected, atol=1e-5)
    # The arithmetic mean of window probabilities is another distribution.
    assert not np.allclose(pool_windows(probs, one, 1, "mean")[0].numpy(), expected, atol=1e-3)


@pytest.mark.parametrize(("layer", "pooling", "setting"), [
    ("penultimate", ("mean", "std"), "probe.pooling=mean,std"),
    ("penultimate", ("max",), "probe.pooling=max"),
    ("midend", ("mean",), "probe.layer=midend"),
    ("frontend", ("mean",), "probe.layer=frontend"),
    ("taggram", ("mean",), "probe.layer=taggram"),
])
def test_probes_that_are_no_per_window_head_are_refused_naming_the_setting(layer: str, pooling: tuple, setting: str) -> None:
    base = head(dim=4, pooling=pooling)
    probe = ProbeHead(base.classes, layer, pooling, base.mean, base.scale, base.coef, base.intercept)
    assert setting in (probe.servable() or "")
    with pytest.raises(ValueError, match=setting):
        probe.folded()


def test_probe_network_is_a_model_file_that_loads_weights_only(tmp_path: Path) -> None:
    """The probe on a tiny CNN as a GenreNet: its head is the folded probe, the rest the
    embedding model's; written as an ordinary model file it loads back through `load_model`
    with `track_average=logits`; a file whose spec names another track average is refused."""
    import torch

    from genre_lab.config import compose
    from genre_lab.models import model_file as checkpoint
    from genre_lab.models.loading import ModelSourceError, load_model
    from genre_lab.models.model_file import ModelSpec
    from genre_lab.models.network import GenreNet
    from genre_lab.models.probe_file import probe_network
    from tests.conftest import TINY

    embedding = GenreNet.from_spec(ModelSpec.from_config(compose([*TINY, "model=cnn"]), ["x", "y"])).eval()
    dim = embedding.backbone.out_dim
    rng = np.random.default_rng(3)
    probe = ProbeHead(("a", "b", "c"), "penultimate", ("mean",), rng.normal(size=dim).astype(np.float32),
                      rng.uniform(0.5, 2, dim).astype(np.float32), rng.normal(size=(3, dim)).astype(np.float32),
                      rng.normal(size=3).astype(np.float32))
    net = probe_network(embedding, probe, eval_hop_seconds=1.0)
    assert net.classes == ["a", "b", "c"] and net.track_average == "logits" and net.spec.eval_hop_seconds == 1.0
    weight, bias = probe.folded()
    assert torch.equal(net.head.weight, torch.from_numpy(weight)) and torch.equal(net.head.bias, torch.from_numpy(bias))
    assert torch.equal(net.backbone.blocks[0][0].weight, embedding.backbone.blocks[0][0].weight)
    path = tmp_path / "probe.pt"
    checkpoint.write(path, net.spec, net.state_dict())
    back = load_model(path).network
    assert back.track_average == "logits" and torch.equal(back.head.weight, net.head.weight)
    config = net.spec.to_dict()
    config["model"]["track_average"] = "median"
    torch.save({"state_dict": net.state_dict(), checkpoint.CONFIG_KEY: config}, tmp_path / "bad.pt")
    with pytest.raises(ModelSourceError, match="model.track_average"):
        load_model(tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="features"):
        probe_network(embedding, ProbeHead(probe.classes, "penultimate", ("mean",), probe.mean[:4], probe.scale[:4],
                                           probe.coef[:, :4], probe.intercept))
