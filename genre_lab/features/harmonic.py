"""A learnable harmonic filterbank front end (`features=harmonic`), after Won, Chun, Nieto and
Serra (2020), "Data-driven harmonic filters for audio representation learning" (ICASSP).

Triangular band-pass filters on the STFT power, one band per (harmonic h, pitch f0): centred at
h x f0, with bandwidth (0.1079 x centre + 24.7 Hz) / Q (the ERB law scaled by a quality factor).
The pitches start equally spaced on the MIDI scale from C1 (`semitone_scale` bands a semitone)
up to the pitch whose highest harmonic reaches Nyquist. Both the pitches and, per harmonic, Q
are trainable (the original trains Q only; `learn_f0=false` gives that). The output stacks the
harmonics along the bins axis, (batch, 1, harmonics x pitches, frames) in dB, so any backbone
can read it; `HarmonicCNN` unfolds it into one channel per harmonic.
"""

from __future__ import annotations

import math

import torch
import torchaudio
from torch import nn

#: C1 (32.7 Hz), the lowest pitch of the filterbank, as MIDI note number.
LOWEST_MIDI = 24
#: The ERB bandwidth law (Glasberg and Moore): bandwidth = ERB_ALPHA x frequency + ERB_BETA Hz.
ERB_ALPHA, ERB_BETA = 0.1079, 24.7
#: Bands one filterbank may have (harmonics x pitches): its matrix is (n_fft/2 + 1) x bands.
MAX_BANDS = 4096
_AMIN = 1e-10


def _midi(hz: float) -> float:
    return 12.0 * (math.log2(hz) - math.log2(440.0)) + 69.0


def pitches(sample_rate: int, harmonics: int, semitone_scale: int) -> int:
    """Pitches per harmonic: `semitone_scale` per semitone from C1 up to the note (rounded to
    the nearest semitone) whose `harmonics`-th harmonic sits at Nyquist."""
    highest = round(_midi(sample_rate / (2 * harmonics)))
    return max(0, (highest - LOWEST_MIDI) * semitone_scale)


class HarmonicFilterbank(nn.Module):
    """(batch, samples) -> (batch, 1, harmonics x pitches, frames): log power through learnable
    harmonic triangular filters, normalised per band (running statistics) when `normalize`."""

    kind = "harmonic"
    backend = "torchaudio"

    def __init__(self, sample_rate: int = 16000, n_fft: int = 512, hop_length: int = 256, harmonics: int = 6,
                 semitone_scale: int = 2, q: float = 1.0, learn_f0: bool = True, learn_q: bool = True,
                 normalize: bool = True) -> None:
        super().__init__()
        levels = pitches(sample_rate, harmonics, semitone_scale)
        if levels < 1:
            raise ValueError(f"features.frontend.harmonics={harmonics} at {sample_rate} Hz leaves no pitch above C1")
        if harmonics * levels > MAX_BANDS:
            raise ValueError(f"features.frontend: {harmonics} harmonics x {levels} pitches is more than {MAX_BANDS} bands")
        if not q > 0:
            raise ValueError(f"features.frontend.q must be positive, got {q}")
        self.sample_rate, self.hop_length, self.harmonics, self.levels = sample_rate, hop_length, harmonics, levels
        self.n_bins = harmonics * levels
        self.stft = torchaudio.transforms.Spectrogram(n_fft=n_fft, hop_length=hop_length, power=2.0)
        top = LOWEST_MIDI + levels / semitone_scale
        midi = torch.linspace(LOWEST_MIDI, top, levels + 1)[:-1]
        self.f0_midi = nn.Parameter(midi, requires_grad=learn_f0)
        self.log_q = nn.Parameter(torch.full((harmonics,), math.log(q)), requires_grad=learn_q)
        self.register_buffer("orders", torch.arange(1, harmonics + 1, dtype=torch.float32), persistent=False)
        self.register_buffer("fft_hz", torch.linspace(0, sample_rate / 2, n_fft // 2 + 1), persistent=False)
        self.norm = nn.BatchNorm1d(self.n_bins) if normalize else nn.Identity()

    def filterbank(self) -> torch.Tensor:
        """The (frequency bins, harmonics x pitches) triangular filters, harmonic-major."""
        f0 = 440.0 * 2.0 ** ((self.f0_midi - 69.0) / 12.0)                     # (pitches,)
        centre = (self.orders[:, None] * f0[None, :]).reshape(-1)              # (bands,)
        q = self.log_q.exp().repeat_interleave(self.levels)                     # (bands,)
        half_width = (ERB_ALPHA * centre + ERB_BETA) / q / 2
        distance = (self.fft_hz[:, None] - centre[None, :]).abs()
        return (1 - distance / half_width).clamp_min(0)

    def backend_for(self, device: torch.device) -> str:
        return self.backend

    def spectrogram(self, wave: torch.Tensor) -> torch.Tensor:
        """(batch, samples) -> (batch, bands, frames) in dB, computed in float32."""
        with torch.autocast(wave.device.type, enabled=False):
            power = self.stft(wave.float())                                     # (batch, freqs, frames)
            bands = torch.einsum("bft,fk->bkt", power, self.filterbank())
            return 10.0 * torch.log10(bands.clamp_min(_AMIN))

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        if wave.dim() != 2:
            raise ValueError(f"HarmonicFilterbank expects (batch, samples), got shape {tuple(wave.shape)}")
        return self.norm(self.spectrogram(wave)).unsqueeze(1)

    def frames(self, samples: int) -> int:
        return samples // self.hop_length + 1
