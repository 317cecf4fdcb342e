"""Does a waveform carry anything to classify? One rule for datasets, tagging and serving.

A model answers every input with a probability distribution, even silence or a test tone; a
confident-looking genre for such input is a lie. `SILENCE_DBFS` and `rms_dbfs` are the
silence rule the dataset scans and the tagger share.
"""

from __future__ import annotations

import math

import numpy as np
import torch

#: Below this RMS level (dB relative to full scale) a recording is treated as silence: no
#: music to classify, and a model would still answer with a confident-looking distribution.
SILENCE_DBFS = -80.0


def rms_dbfs(wave: torch.Tensor | np.ndarray) -> float:
    """RMS level of a waveform in dB relative to full scale (-inf for digital silence)."""
    x = torch.as_tensor(wave)
    rms = float(x.double().pow(2).mean().sqrt()) if x.numel() else 0.0
    return 20 * math.log10(rms) if rms > 0 else -math.inf
