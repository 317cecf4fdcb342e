"""Sample-level CNNs on the raw waveform (`features=waveform`).

`SampleCNN`: Lee, Park, Kim and Nam (2017), "Sample-level deep convolutional neural networks for
music auto-tagging using raw waveforms" (SMC): a strided conv of 3 samples, nine blocks of
size-3 convs each max-pooling by 3, and a size-1 conv, so 59049 = 3^10 samples (3.69 s at 16 kHz)
end as one step of 512 channels (the paper's 3^9 model: 3^9 frames after the stride-3 stem).
`se=True` gives Kim, Lee, Park and Nam (2018), "Sample-level CNN architectures for music
auto-tagging using raw waveforms" (ICASSP): every layer becomes a residual block with a
squeeze-and-excitation gate (ReSE-2), and a dense layer with batch norm follows.
"""

from __future__ import annotations

import torch
from torch import nn

#: The reference's widths: the stem, the nine pooling blocks, the last size-1 layer.
WIDTHS = (128, 128, 128, 256, 256, 256, 256, 256, 256, 512, 512)


class _Layer(nn.Module):
    """conv -> BN -> ReLU -> max-pool; with `se`, conv-BN-ReLU-conv-BN scaled by an SE gate
    (average over time -> dense -> ReLU -> dense -> sigmoid), plus a residual path (a conv and
    BN when the shape changes), then ReLU and the pool."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, pool: int, se: bool) -> None:
        super().__init__()
        self.se = se
        self.conv = nn.Sequential(nn.Conv1d(c_in, c_out, kernel, stride=stride, padding=kernel // 2),
                                  nn.BatchNorm1d(c_out))
        if se:
            self.conv2 = nn.Sequential(nn.ReLU(), nn.Conv1d(c_out, c_out, kernel, padding=kernel // 2),
                                       nn.BatchNorm1d(c_out))
            self.gate = nn.Sequential(nn.Linear(c_out, c_out), nn.ReLU(), nn.Linear(c_out, c_out), nn.Sigmoid())
            same = stride == 1 and c_in == c_out
            self.shortcut = nn.Identity() if same else nn.Sequential(
                nn.Conv1d(c_in, c_out, kernel, stride=stride, padding=kernel // 2), nn.BatchNorm1d(c_out))
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool1d(pool, ceil_mode=True) if pool > 1 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x)
        if self.se:
            h = self.conv2(h)
            h = h * self.gate(h.mean(-1)).unsqueeze(-1) + self.shortcut(x)
        return self.pool(self.relu(h))


class SampleCNN(nn.Module):
    """(batch, 1, 1, samples) -> (batch, widths[-1]): the raw waveform through the stem, the
    pooling layers and the last layer; what is left of time (one step for 3^10 samples) is
    max-pooled, so longer windows work too."""

    def __init__(self, n_bins: int, widths: tuple[int, ...] = WIDTHS, se: bool = False,
                 dropout: float = 0.5) -> None:
        super().__init__()
        if n_bins != 1:
            raise ValueError(f"model.backbone SampleCNN reads the raw waveform: use features=waveform "
                             f"(the front end gives {n_bins} bins)")
        if len(widths) < 3:
            raise ValueError(f"model.backbone.widths needs a stem, at least one block and a last layer, got {list(widths)}")
        chans = [1, *widths]
        shapes = [(3, 3, 1)] + [(3, 1, 3)] * (len(widths) - 2) + [(1, 1, 1)]  # (kernel, stride, pool)
        self.layers = nn.Sequential(*(_Layer(a, b, *shape, se) for a, b, shape in zip(chans, chans[1:], shapes)))
        last = widths[-1]
        self.dense = nn.Sequential(nn.Linear(last, last), nn.BatchNorm1d(last), nn.ReLU()) if se else nn.Identity()
        self.dropout = nn.Dropout(dropout)
        self.out_dim = last

    def stages(self) -> list[nn.Module]:
        """The layers, the last with the dense layer after it (`model.freeze=all_but_last_block`)."""
        return [*self.layers[:-1], nn.ModuleList([self.layers[-1], self.dense])]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.layers(x.flatten(1, 2))  # (batch, 1, 1, n) -> (batch, 1, n) -> (batch, channels, steps)
        return self.dropout(self.dense(h.amax(-1)))
