"""The model's first layer: raw audio -> normalised time-frequency features, on its device.

Kinds: `logmel`, `mfcc`, `stft` (log magnitude) and `cqt`. Each has an nnAudio
implementation (1-D convolutions, fastest on a GPU) and, except CQT, a torchaudio one
(FFT-based, several times faster on a CPU). `backend: auto` keeps both and picks per call by
the device the audio is on, so one checkpoint runs at its best on either.

`trainable=True` (logmel, mfcc) makes the front end a learned one: nnAudio's STFT and mel
kernels become parameters, initialised as the fixed log-mel, trained with the model at
`lr_scale` times the head's learning rate. Only the nnAudio implementation exists then (on
every device): torchaudio's FFT has no kernels to learn.
"""

from __future__ import annotations

import torch
import torchaudio
from torch import nn

KINDS = ("logmel", "mfcc", "stft", "cqt")
BACKENDS = ("auto", "nnaudio", "torchaudio")

#: What `auto` uses per device type. Measured with `python -m genre_lab.bench features`:
#: on a 2-core CPU torchaudio's FFT is several times faster than nnAudio's conv STFT, while on
#: CUDA nnAudio's convolutions are the fast path. CQT exists only in nnAudio.
AUTO_BACKEND = {"cpu": "torchaudio", "cuda": "nnaudio", "mps": "nnaudio"}


def settings_for_device(settings: dict, device: str) -> dict:
    """Front-end settings for a model that will only run on `device`: `backend=auto` keeps both
    implementations so one model moves between CPU and GPU; a model loaded for one device
    needs only the one `AUTO_BACKEND` picks there. Loading the CPU one without nnAudio's saves
    importing nnAudio and SciPy (~0.75 s, `python -X importtime`). nnAudio's kernels follow
    from the settings unless trained, so nothing a checkpoint holds is lost."""
    if settings.get("backend", "auto") != "auto" or settings.get("trainable") or settings.get("kind") == "cqt":
        return settings
    return {**settings, "backend": AUTO_BACKEND.get(device, "nnaudio")}


#: Kinds whose kernels can be trained (`features.frontend.trainable`).
TRAINABLE_KINDS = ("logmel", "mfcc")

#: Clips per front-end call on a CPU (see `FrontEnd.spectrogram`).
CPU_MICRO_BATCH = 8

_AMIN = 1e-10  # floor before the log: -100 dB, far below any audible level


class FrontEnd(nn.Module):
    def __init__(
        self,
        kind: str = "logmel",
        backend: str = "auto",
        sample_rate: int = 16000,
        n_fft: int = 1024,
        hop_length: int = 512,
        n_mels: int = 64,
        n_mfcc: int = 20,
        fmin: float = 0.0,
        fmax: float | None = None,
        cqt_bins: int = 84,
        bins_per_octave: int = 12,
        cqt_fmin: float = 32.7,
        normalize: bool = True,
        trainable: bool = False,
        lr_scale: float = 1.0,
    ) -> None:
        super().__init__()
        if trainable and kind not in TRAINABLE_KINDS:
            raise ValueError(f"features.frontend.trainable needs kind {' or '.join(TRAINABLE_KINDS)}, got '{kind}'")
        if trainable and backend == "torchaudio":
            raise ValueError("features.frontend.trainable needs backend nnaudio or auto (torchaudio's FFT has no kernels)")
        if not lr_scale > 0:
            raise ValueError(f"features.frontend.lr_scale must be positive, got {lr_scale}")
        self.trainable, self.lr_scale = bool(trainable), float(lr_scale)
        if kind not in KINDS:
            raise ValueError(f"features.frontend.kind must be one of {KINDS}, got '{kind}'")
        if backend not in BACKENDS:
            raise ValueError(f"features.frontend.backend must be one of {BACKENDS}, got '{backend}'")
        if kind == "cqt" and backend == "torchaudio":
            raise ValueError("features.frontend.backend=torchaudio has no CQT; use nnaudio or auto")
        if kind == "mfcc" and n_mfcc > n_mels:
            raise ValueError(f"features.frontend.n_mfcc ({n_mfcc}) cannot exceed features.frontend.n_mels ({n_mels})")
        self.kind, self.backend = kind, backend
        self.sample_rate, self.hop_length = sample_rate, hop_length
        fmax = fmax or sample_rate / 2
        names = ["nnaudio", "torchaudio"] if backend == "auto" else [backend]
        if kind == "cqt" or trainable:
            names = ["nnaudio"]
        self.impls = nn.ModuleDict(
            {
                name: _spectrogram(
                    name, kind, sample_rate, n_fft, hop_length, n_mels, fmin, fmax,
                    cqt_bins, bins_per_octave, cqt_fmin, trainable,
                )
                for name in names
            }
        )
        if kind == "mfcc":
            # DCT-II of the log-mel, shared by both backends so they differ only in the mel.
            self.register_buffer("dct", torchaudio.functional.create_dct(n_mfcc, n_mels, "ortho"), persistent=False)
        self.n_bins = {"logmel": n_mels, "mfcc": n_mfcc, "stft": n_fft // 2 + 1, "cqt": cqt_bins}[kind]
        # Per-band normalisation with running statistics: at inference it depends only on the
        # training data, never on how many clips share a batch.
        self.norm = nn.BatchNorm1d(self.n_bins) if normalize else nn.Identity()

    def kernel_parameters(self) -> list[nn.Parameter]:
        """The learned STFT and mel kernels (empty unless `trainable`); not the normalisation."""
        return list(self.impls.parameters()) if self.trainable else []

    def filterbank(self) -> torch.Tensor:
        """The (mels, frequency bins) mel filterbank in use (nnAudio's, else torchaudio's)."""
        impl = self.impls["nnaudio"] if "nnaudio" in self.impls else self.impls["torchaudio"]
        fb = getattr(impl, "mel_basis", None)
        if fb is None:
            fb = getattr(impl, "fb", None)
        if fb is None:
            raise ValueError(f"features.frontend.kind={self.kind} has no mel filterbank")
        return fb.detach()

    def backend_for(self, device: torch.device) -> str:
        if len(self.impls) == 1:
            return next(iter(self.impls))
        return AUTO_BACKEND.get(device.type, "nnaudio")

    def spectrogram(self, wave: torch.Tensor) -> torch.Tensor:
        """(batch, samples) -> log-scaled (batch, bins, frames), before normalisation."""
        with _float32(wave):
            return self._spectrogram(wave.float())

    def _spectrogram(self, wave: torch.Tensor) -> torch.Tensor:
        impl = self.impls[self.backend_for(wave.device)]
        if wave.device.type == "cpu" and len(wave) > CPU_MICRO_BATCH:
            # The STFT of a large batch outgrows the CPU caches: in slices of 8 clips the
            # torchaudio log-mel runs ~3x faster than in one batch of 32 (bench features).
            spec = torch.cat([impl(part) for part in wave.split(CPU_MICRO_BATCH)])
        else:
            spec = impl(wave)
        # Power spectrograms (mel, stft) -> dB; CQT/STFT magnitudes -> dB via 20*log10.
        scale = 20.0 if self.kind in ("stft", "cqt") else 10.0
        spec = scale * torch.log10(spec.clamp_min(_AMIN))
        if self.kind == "mfcc":
            spec = torch.einsum("bmt,mk->bkt", spec, self.dct)
        return spec

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """(batch, samples) -> (batch, 1, bins, frames)."""
        if wave.dim() != 2:
            raise ValueError(f"FrontEnd expects (batch, samples), got shape {tuple(wave.shape)}")
        with _float32(wave):
            return self.norm(self.spectrogram(wave)).unsqueeze(1)

    def frames(self, samples: int) -> int:
        """Frames produced for `samples` of audio (centred framing, as both backends use)."""
        return samples // self.hop_length + 1


def _float32(wave: torch.Tensor) -> torch.autocast:
    """Autocast off: the front end computes in float32 under bf16-mixed and 16-mixed (the
    backbone after it still autocasts). In float16 the power of quiet frames underflows and
    the 1e-10 floor itself rounds to 0, so silence became -inf dB, then NaN after the
    normalisation (tests/training/test_precision.py)."""
    return torch.autocast(device_type=wave.device.type, enabled=False)


def _spectrogram(
    backend: str, kind: str, sr: int, n_fft: int, hop: int, n_mels: int, fmin: float, fmax: float,
    cqt_bins: int, bins_per_octave: int, cqt_fmin: float, trainable: bool = False,
) -> nn.Module:
    """The raw (linear-amplitude) transform of `kind` in `backend`; both use Slaney mel filters."""
    if kind == "cqt" or backend == "nnaudio":
        # Imported here: nnAudio (and the SciPy it loads) adds ~1 s to every start-up that
        # only needs torchaudio's log-mel, the CPU default (`python -X importtime`).
        from nnAudio import features as nnf
    if kind == "cqt":
        # Zero padding: the lowest bins' kernels are longer than a short chunk, and reflect
        # padding needs the input to be longer than the pad.
        return nnf.CQT(
            sr=sr, hop_length=hop, fmin=cqt_fmin, n_bins=cqt_bins, bins_per_octave=bins_per_octave,
            output_format="Magnitude", pad_mode="constant", verbose=False,
        )
    mel = kind in ("logmel", "mfcc")
    if backend == "nnaudio":
        if mel:
            return nnf.MelSpectrogram(
                sr=sr, n_fft=n_fft, hop_length=hop, n_mels=n_mels, fmin=fmin, fmax=fmax,
                htk=False, norm=1, power=2.0, verbose=False, trainable_mel=trainable, trainable_STFT=trainable,
            )
        return nnf.STFT(n_fft=n_fft, hop_length=hop, sr=sr, output_format="Magnitude", verbose=False)
    if mel:
        return MelPower(sr, n_fft, hop, n_mels, fmin, fmax)
    return torchaudio.transforms.Spectrogram(n_fft=n_fft, hop_length=hop, power=1.0)


class MelPower(nn.Module):
    """Mel power spectrogram from `torch.stft` and torchaudio's Slaney mel filterbank.

    Same numbers as `torchaudio.transforms.MelSpectrogram(norm="slaney", mel_scale="slaney")`
    (to 1e-7 relative), but the power is summed from the real and imaginary parts instead of
    `abs()` (a square root) followed by `pow(2)`: 1.5-1.9x faster on this 2-core CPU
    (32 x 3 s clips at 22.05 kHz, batches of 8, measured against torchaudio's transform in one
    process), which is what lifts the CPU front end past 3x librosa.
    """

    def __init__(self, sr: int, n_fft: int, hop: int, n_mels: int, fmin: float, fmax: float) -> None:
        super().__init__()
        self.n_fft, self.hop = n_fft, hop
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        fb = torchaudio.functional.melscale_fbanks(n_fft // 2 + 1, fmin, fmax, n_mels, sr, norm="slaney", mel_scale="slaney")
        self.register_buffer("fb", fb.T.contiguous(), persistent=False)  # (mels, freqs)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        spec = torch.stft(wave, self.n_fft, self.hop, window=self.window, center=True, pad_mode="reflect", return_complex=True)
        parts = torch.view_as_real(spec)
        return torch.matmul(self.fb, parts[..., 0].square() + parts[..., 1].square())
