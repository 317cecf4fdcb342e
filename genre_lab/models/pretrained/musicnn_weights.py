"""The converted musicnn checkpoints shipped in this package, and the names of their tags.

Both were converted from the `musicnn==0.1.0` wheel (ISC licence, see `weights/PROVENANCE.md`)
by `python -m genre_lab.pretrained convert`. `msd`: trained on the Million Song Dataset's 50
most frequent Last.fm tags; `mtt`: on the 50 most frequent MagnaTagATune tags.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"

#: Tag names in output order, as in musicnn's `configuration.py` (MSD_LABELS, MTT_LABELS).
MUSICNN_TAGS: dict[str, tuple[str, ...]] = {
    "msd": (
        "rock", "pop", "alternative", "indie", "electronic", "female vocalists", "dance", "00s",
        "alternative rock", "jazz", "beautiful", "metal", "chillout", "male vocalists", "classic rock",
        "soul", "indie rock", "Mellow", "electronica", "80s", "folk", "90s", "chill", "instrumental",
        "punk", "oldies", "blues", "hard rock", "ambient", "acoustic", "experimental", "female vocalist",
        "guitar", "Hip-Hop", "70s", "party", "country", "easy listening", "sexy", "catchy", "funk",
        "electro", "heavy metal", "Progressive rock", "60s", "rnb", "indie pop", "sad", "House", "happy",
    ),
    "mtt": (
        "guitar", "classical", "slow", "techno", "strings", "drums", "electronic", "rock", "fast",
        "piano", "ambient", "beat", "violin", "vocal", "synth", "female", "indian", "opera", "male",
        "singing", "vocals", "no vocals", "harpsichord", "loud", "quiet", "flute", "woman",
        "male vocal", "no vocal", "pop", "soft", "sitar", "solo", "man", "classic", "choir", "voice",
        "new age", "dance", "male voice", "female vocal", "beats", "harp", "cello", "no voice",
        "weird", "country", "metal", "female voice", "choral",
    ),
}

#: Which checkpoint folder of the musicnn wheel each choice was converted from.
SOURCE_FOLDERS = {"msd": "MSD_musicnn", "mtt": "MTT_musicnn"}


def weights_path(which: str) -> Path:
    if which not in MUSICNN_TAGS:
        raise ValueError(f"unknown musicnn weights {which!r}; choose one of {', '.join(MUSICNN_TAGS)}")
    return WEIGHTS_DIR / f"musicnn_{which}.safetensors"


def musicnn_state_dict(which: str) -> dict[str, torch.Tensor]:
    """The state dict of `genre_lab.models.MusiCNN` for `which` (msd or mtt). safetensors
    holds plain tensors only: loading it runs no code."""
    path = weights_path(which)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: reinstall genre_lab, or run `python -m genre_lab.pretrained convert "
            f"musicnn-0.1.0-py3-none-any.whl`"
        )
    return load_file(str(path))
