"""Harmonic CNN: Won, Chun, Nieto and Serra (2020), "Data-driven harmonic filters for audio
representation learning" (ICASSP). Reads the harmonic filterbank (`features=harmonic`), one
input channel per harmonic, so a 3x3 kernel sees a pitch together with its overtones; seven
conv blocks (plain and residual, alternating) pool 128 pitches to one row, then a dense layer."""

from __future__ import annotations

import torch
from torch import nn

from genre_lab.models.blocks import ConvBlock


class ResPoolBlock(nn.Module):
    """relu(x + bn(conv(relu(bn(conv(x)))))) then max-pool: a residual block at constant width."""

    def __init__(self, channels: int, pool: tuple[int, int]) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels), nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels),
        )
        self.relu = nn.ReLU(inplace=True)
        self.pool = nn.MaxPool2d(pool, ceil_mode=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.relu(x + self.body(x)))


class HarmonicCNN(nn.Module):
    """(batch, 1, harmonics x pitches, frames) -> (batch, 2 x width). The input's bins are the
    harmonic filterbank's, harmonic-major; they are unfolded into `harmonics` channels."""

    def __init__(self, n_bins: int, harmonics: int = 6, width: int = 128, dropout: float = 0.5) -> None:
        super().__init__()
        if n_bins % harmonics:
            raise ValueError(f"model.backbone.harmonics={harmonics} does not divide the front end's {n_bins} bins: "
                             f"use features=harmonic with the same number of harmonics")
        self.harmonics = harmonics
        w2 = 2 * width
        self.blocks = nn.Sequential(
            ConvBlock(harmonics, width, (2, 2)), ResPoolBlock(width, (2, 2)),
            ConvBlock(width, w2, (2, 2)), ResPoolBlock(w2, (2, 2)),
            ConvBlock(w2, w2, (2, 2)), ResPoolBlock(w2, (2, 3)),
            ConvBlock(w2, w2, (2, 3)),
        )
        self.dense = nn.Sequential(nn.Linear(w2, w2, bias=False), nn.BatchNorm1d(w2), nn.ReLU(inplace=True),
                                   nn.Dropout(dropout))
        self.out_dim = w2

    def stages(self) -> list[nn.Module]:
        """The conv blocks, then the dense layer (`model.freeze=all_but_last_block`)."""
        return [*self.blocks, self.dense]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, _, bins, frames = x.shape
        h = x.reshape(batch, self.harmonics, bins // self.harmonics, frames)
        return self.dense(self.blocks(h).amax(dim=(2, 3)))
