"""Pretrained networks shipped with genre_lab (`model.weights`, `pretrained:<name>`).

The weights live in `weights/` as safetensors files converted from the original releases
(see `weights/PROVENANCE.md`); nothing is downloaded at run time.
"""

from genre_lab.models.pretrained.musicnn_weights import MUSICNN_TAGS, musicnn_state_dict, weights_path

__all__ = ["MUSICNN_TAGS", "musicnn_state_dict", "weights_path"]
