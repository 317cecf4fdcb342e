"""musicnn's own tagging recipe on the PyTorch port: taggram and top tags of a waveform.

As the original `musicnn.extractor`/`tagger.top_tags`: the log-mel of the whole signal is cut
into non-overlapping 187-frame (3 s) patches, the remainder dropped; each patch gets sigmoid
tag probabilities (the taggram); a song's top-k tags are the highest mean probabilities.
"""

from __future__ import annotations

import torch

from genre_lab.features.musicnn_frontend import MusicnnFrontEnd
from genre_lab.models.musicnn import PATCH_FRAMES, MusiCNN


@torch.inference_mode()
def taggram(
    model: MusiCNN, frontend: MusicnnFrontEnd, wave: torch.Tensor,
    patch_frames: int = PATCH_FRAMES, hop_frames: int | None = None,
) -> torch.Tensor:
    """(samples,) mono audio at `frontend.sample_rate` -> (patches, tags) probabilities."""
    if wave.dim() != 1:
        raise ValueError(f"taggram expects mono audio of shape (samples,), got {tuple(wave.shape)}")
    spec = frontend(wave[None])[0]  # (1, bins, frames)
    hop = hop_frames or patch_frames
    if spec.shape[-1] < patch_frames:
        raise ValueError(
            f"{wave.shape[0] / frontend.sample_rate:.2f} s of audio is shorter than one musicnn patch "
            f"({patch_frames} frames = {(patch_frames - 1) * frontend.hop_length / frontend.sample_rate:.2f} s)"
        )
    patches = spec.unfold(-1, patch_frames, hop)  # (1, bins, patches, patch_frames)
    patches = patches.permute(2, 0, 1, 3)  # (patches, 1, bins, patch_frames)
    return torch.sigmoid(model.eval().tag_logits(patches))


def top_tags(probabilities: torch.Tensor, names: tuple[str, ...], k: int = 3) -> list[tuple[str, float]]:
    """The k tags with the highest mean probability over the taggram's patches."""
    mean = probabilities.mean(dim=0)
    values, index = mean.topk(min(k, len(names)))
    return [(names[i], float(v)) for v, i in zip(values.tolist(), index.tolist())]
