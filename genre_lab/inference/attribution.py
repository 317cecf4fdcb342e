"""Why a model hears a genre: Captum attributions on the model's own time-frequency input.

Attributions are computed for the front end's output (the normalised log-mel, MFCC, ... that
the backbone sees), so they read as "which bands at which moments raised this genre's score".
Methods (all Captum): `integrated_gradients` (path integral from the baseline: the training
set's mean spectrum, see `Explainer._baseline`), `occlusion` (score drop when a patch is
replaced by the baseline) and
`gradcam` (Grad-CAM on the backbone's last convolutional block, upsampled to the input grid;
backbones without one, such as the RNN, have no Grad-CAM). Songs of any length go through the
windows the tagger uses; a window's map is placed at its frame offset and overlaps averaged.
For an ensemble each member is attributed on its own input and the maps are resized to the
first member's grid and averaged with the ensemble weights.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
import torchaudio
from captum.attr import IntegratedGradients, LayerAttribution, LayerGradCam, Occlusion
from torch import nn

from genre_lab.audio.decode import resample
from genre_lab.models.network import GenreNet
from genre_lab.audio.windows import windows as clip_windows
from genre_lab.models.ensemble import EnsembleClassifier

METHODS = ("integrated_gradients", "occlusion", "gradcam")


def last_conv_block(backbone: nn.Module) -> nn.Module | None:
    """The module whose output Grad-CAM uses: the last conv block (`blocks[-1]`), else the last Conv2d."""
    blocks = getattr(backbone, "blocks", None)
    if isinstance(blocks, nn.Sequential) and len(blocks):
        return blocks[-1]
    convs = [m for m in backbone.modules() if isinstance(m, nn.Conv2d)]
    return convs[-1] if convs else None


class _Scores(nn.Module):
    """Front-end features -> logits: the part of the model attributions are taken through."""

    def __init__(self, model: GenreNet) -> None:
        super().__init__()
        self.backbone, self.head = model.backbone, model.head

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(features))


@dataclass
class Explainer:
    """Attributions of one model (or ensemble) for batches of windows at its sample rate."""

    model: GenreNet | EnsembleClassifier
    method: str = "integrated_gradients"
    steps: int = 16

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got '{self.method}'")
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        for member in self.members:
            if self.method == "gradcam" and last_conv_block(member.backbone) is None:
                raise ValueError(f"--method gradcam needs a convolutional block; model "
                                 f"'{member.spec.name}' has none (use integrated_gradients or occlusion)")
        self.model.eval()

    @property
    def members(self) -> list[GenreNet]:
        return list(self.model.members) if isinstance(self.model, EnsembleClassifier) else [self.model]

    @property
    def reference(self) -> GenreNet:
        """The model whose feature grid maps are drawn on (the first member of an ensemble)."""
        return self.members[0]

    def features(self, windows: torch.Tensor) -> torch.Tensor:
        """(n, samples) at the model's rate -> the reference model's (n, bins, frames) input."""
        with torch.no_grad():
            return self.reference.frontend(self._at(0, windows)).squeeze(1)

    def attribute(self, windows: torch.Tensor, target: int) -> torch.Tensor:
        """(n, samples) windows -> (n, bins, frames) attributions for class index `target`
        (in the model's class order), on the reference model's grid."""
        maps = []
        for i, member in enumerate(self.members):
            order = self.model.orders[i] if isinstance(self.model, EnsembleClassifier) else list(range(len(member.classes)))
            maps.append(self._member(member, self._at(i, windows), order[target]))
        if len(maps) == 1:
            return maps[0]
        grid = maps[0].shape[-2:]
        resized = [m if m.shape[-2:] == grid else F.interpolate(m[:, None], size=grid, mode="bilinear")[:, 0] for m in maps]
        weights = self.model.weights.to(resized[0].dtype)
        return torch.einsum("m,mnbf->nbf", weights, torch.stack(resized))

    def _at(self, i: int, windows: torch.Tensor) -> torch.Tensor:
        if not isinstance(self.model, EnsembleClassifier) or self.model.rates[i] == self.model.spec.sample_rate:
            return windows
        return resample(windows, self.model.spec.sample_rate, self.model.rates[i], method="torchaudio")

    @staticmethod
    def _baseline(member: GenreNet, windows: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """What "no evidence" looks like. With per-band normalisation (the default front end)
        zero is the training set's mean spectrum: attributions then explain how this sound
        differs from the average one. Measured on a model trained to tell band-limited noise
        from its background (tests/inference/test_explain.py): with digital silence as the baseline,
        integrated gradients put 12% of the positive mass on the band (every band rises from
        silence); with the mean spectrum 57%, on 23% of the bins. Without normalisation: silence."""
        if isinstance(getattr(member.frontend, "norm", None), nn.BatchNorm1d):
            return torch.zeros_like(x)
        return member.frontend(torch.zeros_like(windows[:1])).expand_as(x).contiguous()

    def _member(self, member: GenreNet, windows: torch.Tensor, target: int) -> torch.Tensor:
        with torch.no_grad():
            x = member.frontend(windows)  # (n, 1, bins, frames)
            silence = self._baseline(member, windows, x)
        scores = _Scores(member).eval()
        if self.method == "integrated_gradients":
            attr = IntegratedGradients(scores).attribute(x, baselines=silence, target=target, n_steps=self.steps,
                                                         internal_batch_size=max(len(x), 16))
        elif self.method == "occlusion":
            bins, frames = x.shape[-2:]
            window = (1, max(1, bins // 8), max(1, frames // 8))
            attr = Occlusion(scores).attribute(x, sliding_window_shapes=window, strides=(1, *(max(1, w // 2) for w in window[1:])),
                                               baselines=silence, target=target)
        else:
            layer = last_conv_block(member.backbone)
            cam = LayerGradCam(scores, layer).attribute(x, target=target, relu_attributions=True)
            attr = LayerAttribution.interpolate(cam, tuple(x.shape[-2:]), interpolate_mode="bilinear")
        return attr.detach().squeeze(1).float()


def band_hz(model: GenreNet) -> np.ndarray | None:
    """Centre frequency (Hz) of each input band of `model`'s front end, for reading attribution
    profiles; None for MFCCs (cepstral coefficients, not bands)."""
    front = model.spec.features["frontend"]
    kind, rate = front.get("kind", "logmel"), model.spec.sample_rate
    n_fft = int(front.get("n_fft", 1024))
    if kind == "logmel":
        fmax = front.get("fmax") or rate / 2
        fb = torchaudio.functional.melscale_fbanks(n_fft // 2 + 1, float(front.get("fmin", 0.0)), float(fmax),
                                                   int(front.get("n_mels", 64)), rate, norm="slaney", mel_scale="slaney")
        return (fb.argmax(0).numpy() * rate / n_fft).astype(float)
    if kind == "stft":
        return np.arange(n_fft // 2 + 1) * rate / n_fft
    if kind == "cqt":
        return float(front.get("cqt_fmin", 32.7)) * 2 ** (np.arange(int(front.get("cqt_bins", 84)))
                                                          / int(front.get("bins_per_octave", 12)))
    return None


def stitch(maps: torch.Tensor, starts: list[int], hop_length: int, total_frames: int) -> torch.Tensor:
    """Place (windows, bins, frames) maps at their frame offsets in a (bins, total_frames) song
    map, averaging where windows overlap."""
    bins, frames = maps.shape[1:]
    out = torch.zeros(bins, total_frames)
    count = torch.zeros(total_frames)
    for m, start in zip(maps, starts):
        a = min(start // hop_length, total_frames)
        b = min(a + frames, total_frames)
        out[:, a:b] += m[:, : b - a]
        count[a:b] += 1
    return out / count.clamp_min(1)


@dataclass
class ClassExplanation:
    """A genre's evidence over a split: mean attribution map of its correctly classified tracks
    (band x frame within a window), and its most confident and most confused tracks."""

    label: str
    tracks: int
    mean_map: np.ndarray | None
    peak_band_hz: float | None
    most_confident: list[dict]
    most_confused: list[dict]

    def summary(self) -> dict:
        return {"tracks": self.tracks, "peak_band_hz": self.peak_band_hz,
                "most_confident": self.most_confident, "most_confused": self.most_confused,
                "profile": None if self.mean_map is None else self.mean_map.mean(axis=1).round(6).tolist()}


@torch.no_grad()
def _track_probs(model: nn.Module, windows: torch.Tensor) -> torch.Tensor:
    return model(windows).float().softmax(1).mean(0)


def class_explanations(explainer: Explainer, ids: list[str], labels: list[int], waves: list[np.ndarray],
                       chunk: int, hop: int, classes: list[str], max_tracks: int = 5, examples: int = 3,
                       advance: Callable[[], object] | None = None) -> list[ClassExplanation]:
    """Per class: attributions of up to `max_tracks` correctly classified tracks (the most
    confident first), averaged; plus the `examples` most confident and most confused tracks.
    `advance` (a progress bar) is called after each track is scored and each class explained:
    `len(waves) + len(classes)` calls."""
    def windows_of(wave: np.ndarray) -> torch.Tensor:
        return clip_windows(wave, chunk, hop)[0]

    def step() -> None:
        if advance is not None:
            advance()

    scored = []
    for wave in waves:
        scored.append(_track_probs(explainer.model, windows_of(wave)))
        step()
    probs = torch.stack(scored)
    hz = band_hz(explainer.reference)
    out = []
    for c, label in enumerate(classes):
        mine = [i for i, y in enumerate(labels) if y == c]
        by_confidence = sorted(mine, key=lambda i: -float(probs[i, c]))
        correct = [i for i in by_confidence if int(probs[i].argmax()) == c][:max_tracks]
        maps = [explainer.attribute(windows_of(waves[i]), c).mean(0) for i in correct]
        mean_map = torch.stack(maps).mean(0).numpy() if maps else None
        peak = float(hz[int(mean_map.mean(axis=1).argmax())]) if mean_map is not None and hz is not None else None
        confused = sorted((i for i in mine if int(probs[i].argmax()) != c), key=lambda i: -float(probs[i].max()))
        out.append(ClassExplanation(
            label, len(correct), mean_map, peak,
            [{"track": ids[i], "probability": round(float(probs[i, c]), 6)} for i in by_confidence[:examples]],
            [{"track": ids[i], "predicted": classes[int(probs[i].argmax())], "probability": round(float(probs[i].max()), 6)}
             for i in confused[:examples]],
        ))
        step()
    return out
