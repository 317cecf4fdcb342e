"""Backbones that attend over time: CNN+SA (a CNN front end, then self-attention over its time
steps) and a small spectrogram transformer (patches of the spectrogram, then self-attention).
Both prepend a learned [CLS] token and return its final state."""

from __future__ import annotations

import torch
from torch import nn

from genre_lab.models.shortchunk import ResBlock2d

#: Tokens one window of the spectrogram transformer may make: attention costs their square.
MAX_TOKENS = 16384


def _encoder(dim: int, layers: int, heads: int, ff_dim: int, dropout: float, norm_first: bool) -> nn.TransformerEncoder:
    if dim % heads:
        raise ValueError(f"model.backbone.dim ({dim}) must be a multiple of model.backbone.heads ({heads})")
    layer = nn.TransformerEncoderLayer(dim, heads, ff_dim, dropout, activation="gelu", batch_first=True,
                                       norm_first=norm_first)
    return nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)


class _Parts(nn.Module):
    """Modules and bare parameters grouped as one stage for freezing; shares, never copies, them."""

    def __init__(self, *parts: nn.Module | nn.Parameter | None) -> None:
        super().__init__()
        self.modules_ = nn.ModuleList([p for p in parts if isinstance(p, nn.Module)])
        self.params_ = nn.ParameterList([p for p in parts if isinstance(p, nn.Parameter)])


def _with_cls(cls: nn.Parameter, tokens: torch.Tensor) -> torch.Tensor:
    return torch.cat([cls.expand(len(tokens), -1, -1), tokens], dim=1)


class CNNSA(nn.Module):
    """CNN+SA: Won, Chun and Serra (2019), "Toward interpretable music tagging with
    self-attention". Seven residual conv blocks shrink a 128-band mel spectrogram to one
    frequency row (stride 2 in both axes for the first three, in frequency only after), then a
    BERT-style encoder (post-norm, 2 layers, 8 heads, no position embeddings, as the reference)
    runs over the time steps behind a [CLS] token, whose state goes through BERT's pooler
    (dense + tanh). (batch, 1, bins, frames) -> (batch, dim)."""

    def __init__(self, n_bins: int, width: int = 128, dim: int = 256, layers: int = 2, heads: int = 8,
                 ff_dim: int = 1024, dropout: float = 0.4) -> None:
        super().__init__()
        widths = [width, width, 2 * width, 2 * width, 2 * width, 2 * width, 2 * width]
        strides = [2, 2, 2, (2, 1), (2, 1), (2, 1), (2, 1)]
        chans = [1, *widths]
        self.cnn = nn.Sequential(*(ResBlock2d(a, b, s) for a, b, s in zip(chans, chans[1:], strides)))
        # The reference's CNN ends at the encoder's width (2 x 128 = 256); other widths are projected.
        self.project = nn.Identity() if chans[-1] == dim else nn.Linear(chans[-1], dim)
        self.cls = nn.Parameter(torch.rand(1, 1, dim))
        self.encoder = _encoder(dim, layers, heads, ff_dim, dropout, norm_first=False)
        self.pooler = nn.Sequential(nn.Linear(dim, dim), nn.Tanh())
        self.out_dim = dim

    def stages(self) -> list[nn.Module]:
        """The conv blocks, then the attention part (`model.freeze=all_but_last_block`)."""
        return [*self.cnn, _Parts(self.project, self.encoder, self.pooler, self.cls)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.cnn(x).amax(dim=2)  # (batch, channels, time); frequency is one row for 128 bands
        tokens = self.project(h.transpose(1, 2))
        return self.pooler(self.encoder(_with_cls(self.cls, tokens))[:, 0])


class SpectrogramTransformer(nn.Module):
    """A spectrogram transformer in the manner of AST (Gong, Chung and Glass 2021, "AST: Audio
    Spectrogram Transformer"): the spectrogram is cut into `patch` x `patch` patches overlapping
    by `patch - stride` (a strided convolution embeds them), learned positions along frequency
    and along time (up to `max_positions` patch columns; longer is an error naming the setting,
    never a silent crop) are added, and a pre-norm transformer encoder runs over them behind a
    [CLS] token. Small by default, to train on a CPU; no pretrained weights.
    (batch, 1, bins, frames) -> (batch, dim)."""

    def __init__(self, n_bins: int, patch: int = 16, stride: int = 10, dim: int = 192, layers: int = 4,
                 heads: int = 4, ff_dim: int = 768, dropout: float = 0.1, max_positions: int = 512) -> None:
        super().__init__()
        if not 0 < stride <= patch:
            raise ValueError(f"model.backbone.stride must be in [1, patch={patch}], got {stride}")
        if n_bins < patch:
            raise ValueError(f"model.backbone.patch={patch} is taller than the front end's {n_bins} bins")
        rows = (n_bins - patch) // stride + 1
        if rows * max_positions > MAX_TOKENS:
            raise ValueError(f"{rows} patch rows x model.backbone.max_positions={max_positions} columns is more than "
                             f"{MAX_TOKENS} tokens a window (attention grows with their square): raise stride or patch")
        self.patch, self.stride, self.max_positions = patch, stride, max_positions
        self.embed = nn.Conv2d(1, dim, patch, stride=stride)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.freq_positions = nn.Parameter(torch.zeros(1, rows, 1, dim))
        self.time_positions = nn.Parameter(torch.zeros(1, 1, max_positions, dim))
        for p in (self.cls, self.freq_positions, self.time_positions):
            nn.init.trunc_normal_(p, std=0.02)
        self.encoder = _encoder(dim, layers, heads, ff_dim, dropout, norm_first=True)
        self.norm = nn.LayerNorm(dim)
        self.out_dim = dim

    def stages(self) -> list[nn.Module]:
        """Patch embedding with the positions, each encoder layer, the last with the final norm
        (`model.freeze=all_but_last_block`)."""
        layers = list(self.encoder.layers)
        first = _Parts(self.embed, None, None, self.cls, self.freq_positions, self.time_positions)
        return [first, *layers[:-1], nn.ModuleList([layers[-1], self.norm])]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] < self.patch:  # shorter than one patch: pad with the quietest value
            x = nn.functional.pad(x, (0, self.patch - x.shape[-1]), value=float(x.min()))
        patches = self.embed(x).permute(0, 2, 3, 1)  # (batch, rows, columns, dim)
        columns = patches.shape[2]
        if columns > self.max_positions:
            raise ValueError(f"the input makes {columns} patch columns, more than model.backbone.max_positions="
                             f"{self.max_positions}: shorten data.chunk_seconds or raise max_positions")
        patches = patches + self.freq_positions + self.time_positions[:, :, :columns]
        return self.norm(self.encoder(_with_cls(self.cls, patches.flatten(1, 2)))[:, 0])
