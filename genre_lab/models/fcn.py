"""FCN: the fully convolutional tagger of Choi, Fazekas and Sandler (2016), "Automatic tagging
using deep convolutional neural networks" (ISMIR), as re-implemented in Won et al. (2020)'s
reference comparison: five 3x3 conv blocks whose max-pools shrink a 96-band mel spectrogram of
29.1 s at 16 kHz (hop 256) to one cell, 64 channels out."""

from __future__ import annotations

import torch
from torch import nn

from genre_lab.models.blocks import ConvBlock

#: The paper's pooling per block, (frequency, time): 96 bands -> 1, 1813 frames -> 1.
FCN_POOLS = ((2, 4), (2, 4), (2, 4), (3, 5), (4, 4))


class FCN(nn.Module):
    """(batch, 1, bins, frames) -> (batch, channels[-1]).

    The blocks pool as the paper's (`FCN_POOLS`); whatever the input's size, what remains after
    them is max-pooled to one cell, so shorter windows than the paper's 29.1 s work too (the
    pools round up)."""

    def __init__(self, n_bins: int, channels: tuple[int, ...] = (64, 128, 128, 128, 64), dropout: float = 0.5) -> None:
        super().__init__()
        if len(channels) != len(FCN_POOLS):
            raise ValueError(f"model.backbone.channels must list {len(FCN_POOLS)} widths (one per block), got {len(channels)}")
        chans = [1, *channels]
        self.blocks = nn.Sequential(*(ConvBlock(a, b, pool) for a, b, pool in zip(chans, chans[1:], FCN_POOLS)))
        self.dropout = nn.Dropout(dropout)
        self.out_dim = chans[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.blocks(x).amax(dim=(2, 3)))
