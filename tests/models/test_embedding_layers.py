"""The layers a network offers as embeddings (`genre_lab.models.embedding_layers`): their sizes
and values for the pretrained musicnn and a plain CNN, `auto`, and the one-line refusals."""

from __future__ import annotations

import pytest
import torch

from genre_lab.config import compose
from genre_lab.models.embedding_layers import (AUTO, BEST_LAYERS, LAYERS, LayerError, choose_layer, layer_output,
                                               layers_of)
from genre_lab.models.loading import load_model
from genre_lab.models.network import GenreNet, for_inference
from genre_lab.training.lightning_module import GenreClassifier
from tests.conftest import TINY

MODEL = "pretrained:musicnn-msd"
WINDOW = 47616  # musicnn's 2.976 s at 16 kHz


@pytest.fixture(scope="module")
def musicnn() -> GenreNet:
    return load_model(MODEL).network.eval()


@pytest.fixture(scope="module")
def cnn() -> GenreNet:
    return GenreClassifier.from_config(compose([*TINY, "model=cnn"]), ["a", "b", "c"]).net.eval()


@torch.inference_mode()
def test_musicnn_layers_have_the_extractors_sizes_and_values(musicnn: GenreNet) -> None:
    wave = torch.randn(2, WINDOW) * 0.1
    assert layers_of(musicnn) == LAYERS
    got = {layer: layer_output(musicnn, wave, layer) for layer in LAYERS}
    assert {k: tuple(v.shape) for k, v in got.items()} == {
        "frontend": (2, 2 * 561), "midend": (2, 2 * 753), "penultimate": (2, 200), "taggram": (2, 50)}
    x = musicnn.frontend(wave)
    found = musicnn.backbone.features(x)
    # frontend: the timbral and temporal maps pooled over time, mean then max; they are the
    # first 561 channels of the mid-end's pools.
    front = found["frontend"]
    assert torch.allclose(got["frontend"], torch.cat([front.mean(2), front.amax(2)], 1))
    assert torch.allclose(got["frontend"][:, :561], found["mean_pool"][:, :561])
    assert torch.allclose(got["midend"], torch.cat([found["mean_pool"], found["max_pool"]], 1))
    assert torch.allclose(got["penultimate"], found["penultimate"])
    # taggram: the 50 tags' independent probabilities, as the original tagger reports them.
    assert torch.allclose(got["taggram"], musicnn.backbone.tag_logits(x).sigmoid(), atol=1e-6)
    # The CPU inference copy (batch norms folded) gives the same layers.
    prepared = for_inference(musicnn, torch.device("cpu"))
    for layer in LAYERS:
        assert torch.allclose(layer_output(prepared, wave, layer), got[layer], atol=1e-3, rtol=1e-4), layer


@torch.inference_mode()
def test_a_cnn_offers_its_penultimate_and_its_class_probabilities(cnn: GenreNet) -> None:
    assert layers_of(cnn) == ("penultimate", "taggram")
    wave = torch.randn(3, 22050)
    penultimate = layer_output(cnn, wave, "penultimate")
    taggram = layer_output(cnn, wave, "taggram")
    assert penultimate.shape == (3, cnn.backbone.out_dim) and taggram.shape == (3, 3)
    assert torch.allclose(taggram.sum(1), torch.ones(3))  # multiclass: a softmax over its classes
    assert torch.allclose(taggram, cnn(wave).softmax(1))


def test_auto_is_the_measured_best_of_a_pretrained_model_else_penultimate(musicnn: GenreNet, cnn: GenreNet) -> None:
    assert set(BEST_LAYERS) == {"pretrained:musicnn-msd", "pretrained:musicnn-mtt"}
    assert set(BEST_LAYERS.values()) <= set(LAYERS)
    assert choose_layer(musicnn, AUTO, MODEL) == BEST_LAYERS[MODEL]
    # The same network from a file or run is not the pretrained reference: penultimate.
    assert choose_layer(musicnn, AUTO, "/tmp/musicnn.ckpt") == "penultimate"
    assert choose_layer(cnn, AUTO, "0123456789abcdef0123456789abcdef") == "penultimate"
    assert choose_layer(cnn, "taggram", "x") == "taggram"


@pytest.mark.parametrize("layer, refusal", [
    ("midend", "probe.layer='midend' is not a layer of model 'cnn'; choose from auto, penultimate, taggram"),
    ("logits", "probe.layer='logits' is not a layer; choose from auto, penultimate, taggram"),
    ("x" * 500 + "\n", "probe.layer='" + "x" * 40 + "...' is not a layer; choose from auto, penultimate, taggram"),
])
def test_a_layer_the_model_lacks_is_refused_in_one_line(cnn: GenreNet, layer: str, refusal: str) -> None:
    with pytest.raises(LayerError) as err:
        choose_layer(cnn, layer, "x")
    assert str(err.value) == refusal


def test_the_refusal_names_the_setting_it_came_from(cnn: GenreNet) -> None:
    with pytest.raises(LayerError, match=r"^--layer='frontend' is not a layer of model 'cnn'"):
        choose_layer(cnn, "frontend", "x", "--layer")
