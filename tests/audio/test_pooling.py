"""Test-time choices of the track decision (`genre_lab.audio.windows`): each pooling is its
documented formula on a hand-made probability array; shifted windows add the hop/N grids."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genre_lab.audio.windows import chunk_starts, shifted_starts, track_probabilities

#: Two clips (ids 7 and 3), three windows and two windows, three classes.
PROBS = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.4, 0.4, 0.2],
                  [0.5, 0.5, 0.0], [0.9, 0.05, 0.05]])
CLIPS = [7, 7, 7, 3, 3]


def _pool(pooling: str, normalize: bool = True) -> np.ndarray:
    track, labels = track_probabilities(torch.tensor(PROBS, dtype=torch.float32), torch.tensor([1, 1, 1, 0, 0]),
                                        torch.tensor(CLIPS), pooling, normalize)
    assert labels.tolist() == [0, 1]  # clips in id order: 3 then 7
    return track.double().numpy()


def test_each_pooling_is_its_formula() -> None:
    clip3, clip7 = PROBS[3:], PROBS[:3]
    mean = np.stack([clip3.mean(0), clip7.mean(0)])
    assert _pool("mean") == pytest.approx(mean, abs=1e-6)
    peak = np.stack([clip3.max(0), clip7.max(0)])
    assert _pool("max", normalize=False) == pytest.approx(peak, abs=1e-6)
    assert _pool("max") == pytest.approx(peak / peak.sum(1, keepdims=True), abs=1e-6)
    # Geometric mean with the 1e-7 floor (clip 3's exact zero), renormalised for one genre a clip.
    geo = np.stack([np.exp(np.log(np.maximum(c, 1e-7)).mean(0)) for c in (clip3, clip7)])
    assert _pool("logmean", normalize=False) == pytest.approx(geo, rel=1e-5)
    assert _pool("logmean") == pytest.approx(geo / geo.sum(1, keepdims=True), rel=1e-5)
    with pytest.raises(ValueError, match="pooling must be one of mean, max, logmean"):
        _pool("median")


def test_shifted_windows_add_the_grid_shifted_by_hop_over_n() -> None:
    assert shifted_starts(100, 40, 20, 1) == chunk_starts(100, 40, 20) == [0, 20, 40, 60]
    assert shifted_starts(100, 40, 20, 2) == [0, 10, 20, 30, 40, 50, 60]
    assert shifted_starts(30, 40, 20, 3) == [0]  # a short clip: its one padded window
    with pytest.raises(ValueError, match="tta_shifts"):
        shifted_starts(100, 40, 20, 0)
