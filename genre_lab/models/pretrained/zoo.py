"""Pretrained models by name, as `pretrained:<name>` references (predict, Tagger, init_from).

`musicnn-msd` and `musicnn-mtt` are the two musicnn taggers (`genre_lab.models.pretrained.musicnn_weights`).
Their configuration comes from the same Hydra configs as `model=musicnn model.weights=...`
so a pretrained reference and a training run can never disagree on the input.
"""

from __future__ import annotations

from typing import Any

from omegaconf import OmegaConf

from genre_lab.config import compose
from genre_lab.features.musicnn_frontend import MusicnnFrontEnd
from genre_lab.models.musicnn import PATCH_FRAMES, MusiCNN

PREFIX = "pretrained:"
#: name -> model.weights choice of conf/model/musicnn.yaml
PRETRAINED: dict[str, str] = {"musicnn-msd": "msd", "musicnn-mtt": "mtt"}


def is_pretrained(ref: str) -> bool:
    return isinstance(ref, str) and ref.startswith(PREFIX)


def pretrained_name(ref: str) -> str:
    """`pretrained:musicnn-msd` (or `musicnn-msd`) -> `musicnn-msd`; ValueError naming the
    known names otherwise."""
    name = ref[len(PREFIX):] if is_pretrained(ref) else ref
    if name not in PRETRAINED:
        known = ", ".join(PREFIX + n for n in PRETRAINED)
        raise ValueError(f"unknown pretrained model {ref!r}; available: {known}")
    return name


def pretrained_config(ref: str) -> dict[str, Any]:
    """Resolved `features`, `model` and `data` (sample rate, 3 s windows) groups of `ref`,
    as plain data: the layout of a checkpoint's model spec."""
    weights = PRETRAINED[pretrained_name(ref)]
    cfg = compose(["model=musicnn", f"model.weights={weights}"])
    chunk = (PATCH_FRAMES - 1) * cfg.features.frontend.hop_length / cfg.features.frontend.sample_rate
    return {
        "features": OmegaConf.to_container(cfg.features, resolve=True),
        "model": OmegaConf.to_container(cfg.model, resolve=True),
        "data": {"sample_rate": int(cfg.data.sample_rate), "chunk_seconds": chunk, "eval_hop_seconds": chunk},
    }


def build_pretrained(ref: str) -> tuple[MusicnnFrontEnd, MusiCNN]:
    """The front end and the backbone (with its 50-tag head, `tag_names`) of `ref`, in eval mode."""
    weights = PRETRAINED[pretrained_name(ref)]
    return MusicnnFrontEnd().eval(), MusiCNN(weights=weights).eval()
