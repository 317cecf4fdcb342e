"""Bidirectional recurrent network over spectrogram frames."""

from __future__ import annotations

import torch
from torch import nn

from genre_lab.models.blocks import mean_max_pool

CELLS = {"gru": nn.GRU, "lstm": nn.LSTM}


class RNN(nn.Module):
    """(batch, 1, bins, frames) -> (batch, out_dim): frames as a sequence of band vectors."""

    def __init__(
        self,
        n_bins: int,
        hidden: int = 96,
        layers: int = 2,
        cell: str = "gru",
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"model.backbone.cell must be one of {list(CELLS)}, got '{cell}'")
        # A linear projection first keeps the recurrent layer small when bins are many (STFT).
        self.proj = nn.Sequential(nn.Linear(n_bins, hidden), nn.ReLU(inplace=True))
        self.rnn = CELLS[cell](
            hidden, hidden, num_layers=layers, batch_first=True, bidirectional=True,
            dropout=dropout if layers > 1 else 0.0,
        )
        self.dropout = nn.Dropout(dropout)
        self.out_dim = 4 * hidden

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seq = self.proj(x.squeeze(1).transpose(1, 2))  # (batch, frames, hidden)
        out, _ = self.rnn(seq)
        return self.dropout(mean_max_pool(out, dim=1))
