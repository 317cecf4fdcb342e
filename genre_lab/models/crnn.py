"""Convolutional recurrent network after Choi et al. 2017: conv blocks summarise local
time-frequency patterns, a GRU then models how they unfold over time."""

from __future__ import annotations

import torch
from torch import nn

from genre_lab.models.blocks import ConvBlock


class CRNN(nn.Module):
    """(batch, 1, bins, frames) -> (batch, out_dim)."""

    def __init__(
        self,
        n_bins: int,
        channels: tuple[int, ...] = (16, 32, 64),
        hidden: int = 64,
        layers: int = 1,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        chans = [1, *channels]
        # Pool frequency harder than time: the GRU needs frames, not bins.
        pools = [(4, 2) if i < 2 else (2, 1) for i in range(len(channels))]
        self.blocks = nn.Sequential(*(ConvBlock(a, b, p) for a, b, p in zip(chans, chans[1:], pools)))
        bins_left = n_bins
        for f, _ in pools:
            bins_left = -(-bins_left // f)  # ceil, as the pools use ceil_mode
        self.gru = nn.GRU(
            chans[-1] * bins_left, hidden, num_layers=layers, batch_first=True, bidirectional=True,
            dropout=dropout if layers > 1 else 0.0,
        )
        self.dropout = nn.Dropout(dropout)
        self.out_dim = 2 * hidden

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.blocks(x)  # (batch, channels, bins', frames')
        seq = h.flatten(1, 2).transpose(1, 2)  # (batch, frames', channels*bins')
        out, _ = self.gru(seq)
        return self.dropout(out.mean(dim=1))
