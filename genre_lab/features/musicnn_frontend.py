"""musicnn's own input (`features=musicnn`): a 96-band Slaney mel power spectrogram at 16 kHz
(n_fft 512, hop 256, Hann window, zero-padded centred frames as librosa 0.10 computes it) with
log10(1 + 10000 x) compression, and no per-band normalisation (the network's first layer is
its own batch norm). Pretrained musicnn weights only make sense on exactly this input.

The original stores the mel power as float16 before the log; this front end stays in float32
(float16 overflows to inf above a mel power of 6.55, i.e. on loud tonal input), and the
parity test states the difference that makes (`tests/models/test_musicnn.py`).
"""

from __future__ import annotations

import torch
import torchaudio
from torch import nn

#: The settings the pretrained musicnn weights were trained with (musicnn's configuration.py).
MUSICNN_INPUT = {"sample_rate": 16000, "n_fft": 512, "hop_length": 256, "n_mels": 96}


class MusicnnFrontEnd(nn.Module):
    """(batch, samples) at `sample_rate` -> (batch, 1, n_mels, frames) compressed log-mel.

    Has the attributes and methods of `FrontEnd` that training and benchmarks read
    (`kind`, `backend`, `backend_for`, `sample_rate`, `hop_length`, `n_bins`, `frames`,
    `spectrogram`)."""

    kind = "musicnn"

    def __init__(
        self,
        backend: str = "torchaudio",
        sample_rate: int = 16000,
        n_fft: int = 512,
        hop_length: int = 256,
        n_mels: int = 96,
        pad_mode: str = "constant",
    ) -> None:
        super().__init__()
        if backend != "torchaudio":
            # torch.stft is the fast path on CPU and fine on CUDA; one backend keeps parity simple.
            raise ValueError(f"features.frontend.backend must be 'torchaudio' for features=musicnn, got {backend!r}")
        self.backend = backend
        self.sample_rate, self.hop_length, self.n_bins = sample_rate, hop_length, n_mels
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=sample_rate, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels, f_min=0.0,
            power=2.0, center=True, pad_mode=pad_mode, norm="slaney", mel_scale="slaney",
        )

    def backend_for(self, device: torch.device) -> str:
        return self.backend

    def spectrogram(self, wave: torch.Tensor) -> torch.Tensor:
        """(batch, samples) -> (batch, n_mels, frames), always computed in float32: 10000 x
        leaves half precision's range."""
        with torch.autocast(wave.device.type, enabled=False):
            return torch.log10(1.0 + 10000.0 * self.mel(wave.float()))

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        if wave.dim() != 2:
            raise ValueError(f"MusicnnFrontEnd expects (batch, samples), got shape {tuple(wave.shape)}")
        return self.spectrogram(wave).unsqueeze(1)

    def frames(self, samples: int) -> int:
        return samples // self.hop_length + 1
