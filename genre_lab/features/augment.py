"""Training-only augmentation: SpecAugment masks (torchaudio) and mixup."""

from __future__ import annotations

import torch
import torchaudio
from torch import nn


class SpecAugment(nn.Module):
    """`n_masks` frequency and time masks per example; identity in eval mode."""

    def __init__(self, freq_mask: int = 0, time_mask: int = 0, n_masks: int = 1) -> None:
        super().__init__()
        masks: list[nn.Module] = []
        for _ in range(n_masks):
            if freq_mask > 0:
                masks.append(torchaudio.transforms.FrequencyMasking(freq_mask, iid_masks=True))
            if time_mask > 0:
                masks.append(torchaudio.transforms.TimeMasking(time_mask, iid_masks=True))
        self.masks = nn.Sequential(*masks)

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        # Masks fill with 0, which after per-band normalisation is the band's mean.
        return self.masks(spec) if self.training else spec


def mixup(
    x: torch.Tensor, target: torch.Tensor, alpha: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Blend each example with a shuffled partner (Zhang et al. 2018); `target` is one-hot."""
    lam = torch.distributions.Beta(alpha, alpha).sample().to(x.device)
    perm = torch.randperm(x.shape[0], device=x.device)
    return lam * x + (1 - lam) * x[perm], lam * target + (1 - lam) * target[perm]
