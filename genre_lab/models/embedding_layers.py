"""Which layer of a network is its embedding: the one home of `probe.layer` and `embed --layer`.

Every `GenreNet` offers two layers: `penultimate` (the backbone's output, what the genre head
sees) and `taggram` (the model's own output probabilities: for a pretrained musicnn its 50 tags
as independent sigmoids, for a genre run its classes). A backbone may offer intermediate layers
pooled over time (`POOLED_LAYERS` and `pooled_layers(x)`): musicnn's `frontend` (its timbral
and temporal feature maps) and `midend` (the original extractor's `mean_pool` and `max_pool`).

`auto` picks, for a pretrained model, the layer the 5-fold linear probe of `genre-lab bench
probe` scored best on (`BEST_LAYERS`), and `penultimate` for any other model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from genre_lab.models.network import GenreNet

#: Every layer name, in the network's order (a model offers the ones `layers_of` lists).
LAYERS = ("frontend", "midend", "penultimate", "taggram")
#: The layer setting that means "the measured-best layer of this model".
AUTO = "auto"
#: `auto` per pretrained model: the layer with the best pooled 5-fold test accuracy in
#: `genre-lab bench probe` (300 hard synthetic clips; figures and how they were read in
#: docs/benchmarks.md, "Probe layers"). Any other model: `penultimate`.
BEST_LAYERS: dict[str, str] = {"pretrained:musicnn-msd": "midend", "pretrained:musicnn-mtt": "midend"}


class LayerError(ValueError):
    """A layer the model does not have; the message names the setting and the choices."""


def layers_of(network: GenreNet) -> tuple[str, ...]:
    """The layers `network` offers, in `LAYERS`' order."""
    pooled = set(getattr(network.backbone, "POOLED_LAYERS", ()))
    return tuple(name for name in LAYERS if name in pooled or name in ("penultimate", "taggram"))


def choose_layer(network: GenreNet, layer: object, model: str, setting: str = "probe.layer") -> str:
    """The layer `layer` names for `network` (loaded from `model`, as given: `auto` looks it up
    in `BEST_LAYERS`); a LayerError in one line naming `setting` and the choices otherwise."""
    offered = layers_of(network)
    text = str(layer)
    if text == AUTO:
        best = BEST_LAYERS.get(model, "penultimate")
        return best if best in offered else "penultimate"
    if text not in offered:
        shown = text if len(text) <= 40 else text[:40] + "..."
        kind = str((network.config.get("model") or {}).get("name", type(network.backbone).__name__))
        unknown = "is not a layer" if text not in LAYERS else f"is not a layer of model '{kind}'"
        raise LayerError(f"{setting}={shown!r} {unknown}; choose from {', '.join((AUTO, *offered))}")
    return text


def layer_output(network: GenreNet, wave: torch.Tensor, layer: str) -> torch.Tensor:
    """(batch, samples) audio -> (batch, dim) embedding at `layer` (one of `layers_of(network)`),
    in float32; `network` in eval mode (an inference copy of it too: `for_inference`)."""
    x = network.frontend(wave)
    if layer in ("penultimate", "taggram"):
        embedding = network.backbone(x)
        out = network.probabilities(network.head(embedding)) if layer == "taggram" else embedding
    else:
        out = network.backbone.pooled_layers(x)[layer]
    return out.float()
