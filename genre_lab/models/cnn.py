"""VGG-style 2-D CNN over the whole spectrogram, pooled globally (cf. Won et al. 2020)."""

from __future__ import annotations

import torch
from torch import nn

from genre_lab.models.blocks import ConvBlock, mean_max_pool


class CNN(nn.Module):
    """(batch, 1, bins, frames) -> (batch, out_dim). Works for any input length."""

    def __init__(self, n_bins: int, channels: tuple[int, ...] = (16, 32, 64, 64), dropout: float = 0.2) -> None:
        super().__init__()
        chans = [1, *channels]
        self.blocks = nn.Sequential(*(ConvBlock(a, b, (2, 2)) for a, b in zip(chans, chans[1:])))
        self.dropout = nn.Dropout(dropout)
        self.out_dim = 2 * chans[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.blocks(x).flatten(2)  # (batch, channels, bins*frames)
        return self.dropout(mean_max_pool(h, dim=2))
