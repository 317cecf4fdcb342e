"""Short-chunk CNNs of Won, Ferraro, Bogdanov and Serra (2020), "Evaluation of CNN-based
automatic music tagging models" (SMC): seven 3x3 conv layers over a 128-band mel spectrogram of
3.69 s (59049 samples at 16 kHz), each halving both axes, then a dense layer. `ShortChunkCNN`
pools after plain conv blocks; `ShortChunkResCNN` uses residual blocks with stride 2 instead,
the best model of that comparison."""

from __future__ import annotations

import torch
from torch import nn

from genre_lab.models.blocks import ConvBlock


def _widths(width: int) -> list[int]:
    """The reference's seven widths for base width n: n, n, 2n, 2n, 2n, 2n, 4n."""
    return [width, width, 2 * width, 2 * width, 2 * width, 2 * width, 4 * width]


class ResBlock2d(nn.Module):
    """Two 3x3 convs with batch norm and a (projected when the shape changes) shortcut:
    relu(bn(conv(relu(bn(conv(x))))) + shortcut(x))."""

    def __init__(self, c_in: int, c_out: int, stride: int | tuple[int, int] = 2) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
        )
        same = c_in == c_out and stride in (1, (1, 1))
        self.shortcut = nn.Identity() if same else nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(c_out))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.body(x) + self.shortcut(x))


class _ShortChunk(nn.Module):
    """The shared tail: max over what is left of frequency and time, then dense -> BN -> ReLU ->
    dropout (the reference's `dense1`; its `dense2` is genre_lab's head)."""

    def __init__(self, stack: nn.Module, width: int, dropout: float) -> None:
        super().__init__()
        self.stack = stack
        channels = 4 * width
        self.dense = nn.Sequential(nn.Linear(channels, channels, bias=False), nn.BatchNorm1d(channels),
                                   nn.ReLU(inplace=True), nn.Dropout(dropout))
        self.out_dim = channels

    def stages(self) -> list[nn.Module]:
        """The conv blocks, then the dense layer (`model.freeze=all_but_last_block`)."""
        return [*self.stack, self.dense]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dense(self.stack(x).amax(dim=(2, 3)))


class ShortChunkCNN(_ShortChunk):
    """(batch, 1, bins, frames) -> (batch, 4 x width): seven conv blocks, each max-pooling 2x2."""

    def __init__(self, n_bins: int, width: int = 128, dropout: float = 0.5) -> None:
        chans = [1, *_widths(width)]
        super().__init__(nn.Sequential(*(ConvBlock(a, b, (2, 2)) for a, b in zip(chans, chans[1:]))), width, dropout)


class ShortChunkResCNN(_ShortChunk):
    """(batch, 1, bins, frames) -> (batch, 4 x width): seven residual blocks of stride 2."""

    def __init__(self, n_bins: int, width: int = 128, dropout: float = 0.5) -> None:
        chans = [1, *_widths(width)]
        super().__init__(nn.Sequential(*(ResBlock2d(a, b) for a, b in zip(chans, chans[1:]))), width, dropout)
