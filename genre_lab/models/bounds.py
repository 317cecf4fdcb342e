"""Every size a model spec may set, with its range, checked before anything is built.

A checkpoint's spec is a few hundred bytes that someone else may have written, and each number
in it sizes something we allocate: `channels: [40000, 40000]` asks for a 14 GB convolution,
`n_fft: 2**26` for a 2**51-value nnAudio STFT kernel, a 1 Hz CQT floor for kernels longer
than the song. `check` refuses such a spec with one error naming the setting, using only
arithmetic on the numbers: no tensor, NumPy array or module exists yet.

The ranges are wide around what genre_lab ships and searches (`conf/model`, `conf/features`,
`conf/sweep`: CNN channels <= 64, hidden <= 128, layers <= 3, n_fft 512-1024, 64-96 mels,
16-22.05 kHz, 3 s windows) so any model one would train here fits, while each bound alone
keeps its buffer below ~1 GiB. Since several in-range sizes multiply (channels x bins x
hidden), three totals are bounded too: the values a model holds (`MAX_MODEL_VALUES`,
parameters and buffers, estimated from the same formulas the classes use), the samples of one
window (`MAX_WINDOW_SAMPLES`) and the cells of one window's spectrogram (`MAX_WINDOW_CELLS`).
A class registered by code (`registry.register`) has no entry here: code is trusted, and its
settings are checked by its own constructor.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from genre_lab.registry import BACKBONES, FRONTENDS, ConfigSecurityError


@dataclass(frozen=True)
class Size:
    """A setting's range: a whole number (or any number when `whole` is false) in
    [low, high]; with `max_items`, a list of 1 to `max_items` such numbers (one per block)."""

    low: float
    high: float
    whole: bool = True
    max_items: int = 0

    def describe(self) -> str:
        kind = "whole number" if self.whole else "number"
        one = f"a {kind} in [{self.low:g}, {self.high:g}]"
        return f"a list of 1 to {self.max_items} entries, each {one}" if self.max_items else one


#: The audio contract (`data` of a spec). 1 kHz to 384 kHz covers telephone audio to studio
#: masters; a window is at most 10 minutes (a whole movement); the evaluation hop at least 1 ms.
SAMPLE_RATE = Size(1000, 384_000)
CHUNK_SECONDS = Size(0.01, 600.0, whole=False)
EVAL_HOP_SECONDS = Size(0.001, 600.0, whole=False)
#: Classes (tags) one head may have: the head's size, and every report's row count.
MAX_CLASSES = 10_000

#: FFT sizes up to 2**13 (0.37 s at 22.05 kHz, ~4x the longest analysis window used in music
#: tagging); nnAudio's STFT holds n_fft x (n_fft/2 + 1) x 2 kernel values (67M at 2**13).
_FFT = Size(16, 8192)
#: Hop from 16 samples (sub-millisecond) to 2**14; what a window's frames cost is bounded by
#: `MAX_WINDOW_CELLS`.
_HOP = Size(16, 16384)
#: Mel bands: 8 (coarse) to 512 (beyond any published front end; musicnn uses 96).
_MELS = Size(8, 512)

#: Transformer sizes: width, depth, heads, feed-forward width and learned time positions
#: (the tokens one window may make are bounded by the classes themselves).
_ATTENTION = {"dim": Size(1, 2048), "layers": Size(1, 24), "heads": Size(1, 64), "ff_dim": Size(1, 8192),
              "max_positions": Size(1, 8192)}

#: Per registered class (its `_target_`): setting -> range. Settings not listed are not sizes
#: (names, flags, rates of dropout or learning) and are checked by the class itself.
SIZES: dict[str, dict[str, Size]] = {
    "genre_lab.features.FrontEnd": {
        "n_fft": _FFT, "hop_length": _HOP, "n_mels": _MELS, "n_mfcc": Size(1, 512),
        # CQT: up to 1024 bins at up to 96 bins per octave (10+ octaves at quarter tones);
        # the lowest bin's frequency sets the kernel length (sample_rate / cqt_fmin x Q), so
        # it starts at 1 Hz and the kernels' total is bounded by MAX_MODEL_VALUES.
        "cqt_bins": Size(1, 1024), "bins_per_octave": Size(1, 96), "cqt_fmin": Size(1.0, 20_000.0, whole=False),
        "fmin": Size(0.0, 192_000.0, whole=False),
    },
    "genre_lab.features.MusicnnFrontEnd": {"n_fft": _FFT, "hop_length": _HOP, "n_mels": _MELS},
    "genre_lab.features.Waveform": {},
    "genre_lab.features.HarmonicFilterbank": {"n_fft": _FFT, "hop_length": _HOP, "harmonics": Size(1, 16),
                                              "semitone_scale": Size(1, 12), "q": Size(0.01, 100.0, whole=False)},
    # Conv stacks: up to 8 blocks (each halves the time-frequency plane: 2**8 = 256x) of up to
    # 1024 channels (16x the widest shipped); recurrent layers up to 8 of up to 2048 units.
    "genre_lab.models.CNN": {"channels": Size(1, 1024, max_items=8)},
    "genre_lab.models.CRNN": {"channels": Size(1, 1024, max_items=8), "hidden": Size(1, 2048), "layers": Size(1, 8)},
    "genre_lab.models.RNN": {"hidden": Size(1, 2048), "layers": Size(1, 8)},
    # musicnn's shipped widths are 204 / 51 / 64 / 200 / 50 tags; 10x room for each.
    "genre_lab.models.MusiCNN": {
        "timbral_filters": Size(1, 2048), "temporal_filters": Size(1, 1024), "midend_filters": Size(1, 1024),
        "embed_dim": Size(1, 4096), "n_tags": Size(1, MAX_CLASSES),
    },
    # The field's architectures (genre_lab/models/): widths up to 8x the papers' (128 -> 1024
    # channels), transformers up to 2048 wide and 24 layers deep; what these hold together is
    # counted by building the class on the meta device (`_counted`) and bounded by MAX_MODEL_VALUES.
    "genre_lab.models.FCN": {"channels": Size(1, 1024, max_items=5)},
    "genre_lab.models.HarmonicCNN": {"harmonics": Size(1, 16), "width": Size(1, 1024)},
    "genre_lab.models.ShortChunkCNN": {"width": Size(1, 1024)},
    "genre_lab.models.ShortChunkResCNN": {"width": Size(1, 1024)},
    "genre_lab.models.SampleCNN": {"widths": Size(1, 2048, max_items=12)},
    "genre_lab.models.CNNSA": {"width": Size(1, 1024), **{k: v for k, v in _ATTENTION.items() if k != "max_positions"}},
    "genre_lab.models.SpectrogramTransformer": {"patch": Size(1, 128), "stride": Size(1, 128), **_ATTENTION},
}

#: Backbones whose values `_counted` measures on the meta device instead of a formula here.
_COUNTED = frozenset({"genre_lab.models.FCN", "genre_lab.models.HarmonicCNN", "genre_lab.models.ShortChunkCNN", "genre_lab.models.ShortChunkResCNN",
                      "genre_lab.models.SampleCNN", "genre_lab.models.CNNSA", "genre_lab.models.SpectrogramTransformer"})

#: Parameters and buffers of the whole model (front end, backbone, head): 2**27 values is
#: 512 MiB in float32, ~100x the largest shipped model (the CQT front end's kernels, 2.8M).
MAX_MODEL_VALUES = 2**27
#: Samples of one window: 2**25 (128 MiB in float32) holds 10 minutes at 48 kHz.
MAX_WINDOW_SAMPLES = 2**25
#: Cells (bins x frames) of one window's spectrogram, before any channel multiplies them:
#: 2**24 is 64 MiB in float32, ~2000x the default's (64 mels x 130 frames).
MAX_WINDOW_CELLS = 2**24


def check(features: Mapping[str, Any], model: Mapping[str, Any], sample_rate: int, chunk_seconds: float,
          n_classes: int) -> None:
    """Raise ConfigSecurityError naming the first setting out of its range, or the total that a
    combination of in-range settings would exceed. `features`/`model` are a spec's groups."""
    frontend, backbone = features.get("frontend") or {}, model.get("backbone") or {}
    front = _settings(frontend, FRONTENDS, "features.frontend")
    back = _settings(backbone, BACKBONES, "model.backbone")
    samples = sample_rate * chunk_seconds
    if samples > MAX_WINDOW_SAMPLES:
        raise ConfigSecurityError(f"data.sample_rate={sample_rate} x data.chunk_seconds={chunk_seconds:g} is "
                                  f"{samples:.0f} samples per window (at most {MAX_WINDOW_SAMPLES})")
    if front is None:
        return
    bins, front_values = _frontend(frontend.get("_target_"), front, sample_rate)
    hop = front.get("hop_length")
    if isinstance(hop, int) and bins:
        cells = bins * (int(samples) // hop + 1)
        if cells > MAX_WINDOW_CELLS:
            raise ConfigSecurityError(
                f"features.frontend: {bins} bins x {int(samples) // hop + 1} frames (hop_length={hop}, "
                f"{chunk_seconds:g} s windows) is {cells} spectrogram cells per window (at most {MAX_WINDOW_CELLS})")
    back_values, out_dim = _backbone(backbone.get("_target_"), back, bins) if back is not None else (0, 0)
    total = front_values + back_values + out_dim * n_classes + n_classes
    if total > MAX_MODEL_VALUES:
        raise ConfigSecurityError(
            f"features.frontend and model.backbone together would hold ~{total:.3g} values (front end {front_values:.3g}, "
            f"backbone and head {total - front_values:.3g}; at most {MAX_MODEL_VALUES:.3g}): reduce their sizes")


def _settings(node: Any, table: Mapping[str, Callable[..., Any]], where: str) -> dict[str, Any] | None:
    """The node's settings over its class's defaults, each size checked against `SIZES`; None
    for a class with no bounds (registered by code)."""
    if not isinstance(node, Mapping):
        return None
    target = node.get("_target_")
    sizes = SIZES.get(target) if isinstance(target, str) else None
    if sizes is None:
        return None
    settings = {name: p.default for name, p in inspect.signature(table[target]).parameters.items()
                if p.default is not inspect.Parameter.empty}
    settings.update({k: v for k, v in node.items() if k not in ("_target_", "_partial_")})
    for key, size in sizes.items():
        if key in node:
            _check_size(node[key], size, f"{where}.{key}")
    return settings


def _check_size(value: Any, size: Size, where: str) -> None:
    items = value if size.max_items else [value]
    if size.max_items and (not isinstance(value, (list, tuple)) or not 1 <= len(value) <= size.max_items):
        raise ConfigSecurityError(f"{where}={_short(value)} must be {size.describe()}")
    for item in items:
        number = isinstance(item, (int, float)) and not isinstance(item, bool) and math.isfinite(item)
        if not number or not size.low <= item <= size.high or (size.whole and not isinstance(item, int)):
            raise ConfigSecurityError(f"{where}={_short(value)} must be {size.describe()}")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _frontend(target: str, s: Mapping[str, Any], sample_rate: int) -> tuple[int, int]:
    """(bins the front end outputs, values it holds) for in-range settings; the counts follow
    the implementations (nnAudio's conv STFT kernels, CQT kernels padded to a power of two,
    torchaudio's window and mel filterbank, the BatchNorm over bins)."""
    if target == "genre_lab.features.Waveform":
        return 1, _bn(1)
    if target == "genre_lab.features.HarmonicFilterbank":
        from genre_lab.features.harmonic import MAX_BANDS, pitches

        bands = s["harmonics"] * pitches(sample_rate, s["harmonics"], s["semitone_scale"])
        if bands > MAX_BANDS:
            raise ConfigSecurityError(f"features.frontend: {bands} harmonic bands (at most {MAX_BANDS})")
        # The window, the pitches and Q, and the filterbank it computes each call (bins x bands).
        return bands, s["n_fft"] + bands + (s["n_fft"] // 2 + 1) * (bands + 1) + _bn(bands)
    n_fft, n_mels = s["n_fft"], s["n_mels"]
    freqs = n_fft // 2 + 1
    mel = n_fft + n_mels * freqs
    if target == "genre_lab.features.MusicnnFrontEnd":
        return n_mels, mel
    kind, backend, trainable = s.get("kind"), s.get("backend"), s.get("trainable")
    if kind == "cqt":
        q = 1.0 / (2.0 ** (1.0 / s["bins_per_octave"]) - 1.0)
        fft_len = 2 ** math.ceil(math.log2(math.ceil(q * sample_rate / s["cqt_fmin"])))
        bins, values = s["cqt_bins"], (2 * fft_len + 1) * s["cqt_bins"]  # real and imaginary kernels, lengths
    else:
        bins = {"logmel": n_mels, "mfcc": s["n_mfcc"], "stft": freqs}.get(kind, n_mels)
        own = mel if kind in ("logmel", "mfcc") else n_fft
        names = ("nnaudio",) if trainable else ("nnaudio", "torchaudio") if backend == "auto" else (backend,)
        values = sum(own + (2 * freqs * n_fft if name == "nnaudio" else 0) for name in names)
        if kind == "mfcc":
            values += s["n_mfcc"] * n_mels
    return bins, values + 4 * bins + 1


def _bn(n: int) -> int:
    return 4 * n + 1  # weight, bias, running mean and variance, batch count


def _recurrent(gates: int, first_in: int, hidden: int, layers: int) -> int:
    """Bidirectional GRU/LSTM: per layer and direction gates x (in x h + h x h + 2h)."""
    return sum(2 * gates * ((first_in if i == 0 else 2 * hidden) * hidden + hidden * hidden + 2 * hidden)
               for i in range(layers))


def _convs(channels: list[int]) -> int:
    chans = [1, *channels]
    return sum(9 * a * b + _bn(b) for a, b in zip(chans, chans[1:]))


def _backbone(target: str, s: Mapping[str, Any], n_bins: int) -> tuple[int, int]:
    """(values the backbone holds, its output width) for in-range settings, as its class builds it."""
    if target == "genre_lab.models.CNN":
        return _convs(list(s["channels"])), 2 * s["channels"][-1]
    if target == "genre_lab.models.CRNN":
        channels, bins = list(s["channels"]), n_bins
        for i in range(len(channels)):
            bins = -(-bins // (4 if i < 2 else 2))
        gru = _recurrent(3, channels[-1] * bins, s["hidden"], s["layers"])
        return _convs(channels) + gru, 2 * s["hidden"]
    if target == "genre_lab.models.RNN":
        h = s["hidden"]
        gates = 4 if s.get("cell") == "lstm" else 3
        return n_bins * h + h + _recurrent(gates, h, h, s["layers"]), 4 * h
    if target == "genre_lab.models.MusiCNN":
        f, t, m, e = s["timbral_filters"], s["temporal_filters"], s["midend_filters"], s["embed_dim"]
        front = 2 * f + 3 * t
        pooled = 2 * (front + 3 * m)
        values = (_bn(1) + sum(f * (int(share * n_bins) * 7 + 1) + _bn(f) for share in (0.4, 0.7))
                  + sum(t * (n + 1) + _bn(t) for n in (128, 64, 32))
                  + front * m * 7 + m + _bn(m) + 2 * (m * m * 7 + m + _bn(m))
                  + _bn(pooled) + pooled * e + e + _bn(e) + (e + 1) * s["n_tags"])
        return values, e
    if target in _COUNTED:
        return _counted(target, s, n_bins)
    return 0, 0


def _counted(target: str, s: Mapping[str, Any], n_bins: int) -> tuple[int, int]:
    """(values, output width) of a backbone built on the meta device: shapes without storage,
    so it costs microseconds whatever the sizes (each already checked against its range)."""
    import torch

    try:
        with torch.device("meta"):
            module = BACKBONES[target](**{**s, "n_bins": n_bins})
    except (TypeError, ValueError) as err:
        raise ConfigSecurityError(f"model.backbone ({target}): {err}") from None
    values = sum(t.numel() for t in (*module.parameters(), *module.buffers()))
    return values, int(module.out_dim)
