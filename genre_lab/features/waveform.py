"""The raw-waveform input (`features=waveform`): no spectrogram, for backbones that learn their
own filters from samples (SampleCNN). The audio passes through as a one-row "spectrogram" so
every backbone sees the same (batch, 1, bins, frames) layout, here (batch, 1, 1, samples)."""

from __future__ import annotations

import torch
from torch import nn


class Waveform(nn.Module):
    """(batch, samples) -> (batch, 1, 1, samples); with `normalize`, scaled by a running
    estimate of the training audio's level (a one-channel batch norm), as a spectrogram front
    end normalises its bands. A frame is one sample (`hop_length` 1)."""

    kind = "waveform"
    backend = "torch"
    n_bins = 1
    hop_length = 1

    def __init__(self, sample_rate: int = 16000, normalize: bool = True) -> None:
        super().__init__()
        self.sample_rate = sample_rate
        self.norm = nn.BatchNorm1d(1) if normalize else nn.Identity()

    def backend_for(self, device: torch.device) -> str:
        return self.backend

    def spectrogram(self, wave: torch.Tensor) -> torch.Tensor:
        """(batch, samples) -> (batch, 1, samples): the samples themselves, in float32."""
        return wave.float().unsqueeze(1)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        if wave.dim() != 2:
            raise ValueError(f"Waveform expects (batch, samples), got shape {tuple(wave.shape)}")
        return self.norm(self.spectrogram(wave)).unsqueeze(1)

    def frames(self, samples: int) -> int:
        return samples
