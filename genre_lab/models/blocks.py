"""Layers shared by the backbones."""

from __future__ import annotations

import torch
from torch import nn


class ConvBlock(nn.Sequential):
    """3x3 conv -> batch norm -> ReLU -> max-pool, the unit of VGG-style audio CNNs."""

    def __init__(self, c_in: int, c_out: int, pool: tuple[int, int]) -> None:
        super().__init__(
            nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(pool, ceil_mode=True),
        )


def mean_max_pool(x: torch.Tensor, dim: int) -> torch.Tensor:
    """Concatenate mean and max over `dim`: mean keeps the texture, max keeps salient events."""
    return torch.cat([x.mean(dim), x.amax(dim)], dim=-1)
