"""Front-end throughput: every kind x backend x device x batch size against librosa.

Throughput is seconds of audio turned into features per wall-second, on the same clips for
every contender. librosa (a dev/bench extra, never imported by genre_lab's core) processes
the clips one by one, as a typical feature-extraction script does, and is each kind's
baseline. A numerical check compares our features with librosa's on the same clips.
"""

from __future__ import annotations

import numpy as np
import torch

from genre_lab.data.synthetic import GENRES, render_clip
from genre_lab.features import KINDS, FrontEnd
from genre_lab.features.throughput import median_seconds
from genre_lab.bench.common import Result

#: Front-end settings shared by every contender (the defaults of conf/features/logmel.yaml).
N_FFT, HOP, N_MELS, N_MFCC = 1024, 512, 64, 20
CQT_FMIN, CQT_BINS, CQT_BPO = 32.7, 84, 12


def make_clips(n: int, seconds: float, sample_rate: int) -> np.ndarray:
    """(n, samples) float32 synthetic music, cycling through the genres."""
    return np.stack([render_clip(GENRES[i % len(GENRES)], i, seconds, sample_rate) for i in range(n)])


def _librosa_fn(kind: str, sr: int):
    import librosa

    def logmel(y: np.ndarray) -> np.ndarray:
        mel = librosa.feature.melspectrogram(y=y, sr=sr, n_fft=N_FFT, hop_length=HOP, n_mels=N_MELS, pad_mode="reflect")
        return librosa.power_to_db(mel, top_db=None)

    def mfcc(y: np.ndarray) -> np.ndarray:
        return librosa.feature.mfcc(S=logmel(y), n_mfcc=N_MFCC)

    def stft(y: np.ndarray) -> np.ndarray:
        return librosa.amplitude_to_db(np.abs(librosa.stft(y, n_fft=N_FFT, hop_length=HOP, pad_mode="reflect")), top_db=None)

    def cqt(y: np.ndarray) -> np.ndarray:
        c = librosa.cqt(y, sr=sr, hop_length=HOP, fmin=CQT_FMIN, n_bins=CQT_BINS, bins_per_octave=CQT_BPO)
        return librosa.amplitude_to_db(np.abs(c), top_db=None)

    return {"logmel": logmel, "mfcc": mfcc, "stft": stft, "cqt": cqt}[kind]


def frontend(kind: str, backend: str, sample_rate: int) -> FrontEnd:
    return FrontEnd(
        kind=kind, backend=backend, sample_rate=sample_rate, n_fft=N_FFT, hop_length=HOP, n_mels=N_MELS,
        n_mfcc=N_MFCC, cqt_bins=CQT_BINS, bins_per_octave=CQT_BPO, cqt_fmin=CQT_FMIN,
    ).eval()


def backends_for(kind: str) -> list[str]:
    return ["nnaudio"] if kind == "cqt" else ["nnaudio", "torchaudio"]


def agreement(ours: np.ndarray, ref: np.ndarray, floor_db: float = 60.0) -> dict[str, float]:
    """Max |difference| in dB where the reference is within `floor_db` of its peak, and the
    correlation over those cells (scale-free, for transforms normalised differently)."""
    frames = min(ours.shape[-1], ref.shape[-1])
    a, b = ours[..., :frames], ref[..., :frames]
    mask = b > b.max() - floor_db
    return {"max_abs_db": float(np.abs(a - b)[mask].max()), "corr": float(np.corrcoef(a[mask], b[mask])[0, 1])}


def run(
    sample_rate: int = 22050,
    clip_seconds: float = 3.0,
    n_clips: int = 32,
    batch_sizes: tuple[int, ...] = (1, 8, 32),
    repeats: int = 5,
    kinds: tuple[str, ...] = KINDS,
    devices: tuple[str, ...] | None = None,
    with_librosa: bool = True,
) -> list[Result]:
    devices = devices or (("cpu", "cuda") if torch.cuda.is_available() else ("cpu",))
    clips = make_clips(n_clips, clip_seconds, sample_rate)
    audio_seconds = n_clips * clip_seconds
    results: list[Result] = []
    for kind in kinds:
        baseline = None
        if with_librosa:
            fn = _librosa_fn(kind, sample_rate)
            seconds = median_seconds(lambda: [fn(y) for y in clips], repeats)
            baseline = f"librosa_{kind}"
            results.append(Result(baseline, audio_seconds / seconds, "audio s/s"))
        for backend in backends_for(kind):
            fe_cpu = frontend(kind, backend, sample_rate)
            check = {}
            if with_librosa:
                with torch.inference_mode():
                    ours = fe_cpu.spectrogram(torch.from_numpy(clips[:2])).numpy()
                ref = np.stack([_librosa_fn(kind, sample_rate)(y) for y in clips[:2]])
                check = agreement(ours, ref)
            for device in devices:
                fe = fe_cpu.to(device)
                x = torch.from_numpy(clips).to(device)
                for bs in batch_sizes:
                    def work() -> None:
                        with torch.inference_mode():
                            for i in range(0, n_clips, bs):
                                fe(x[i : i + bs])
                    seconds = median_seconds(work, repeats, device=device)
                    results.append(Result(f"{backend}_{kind}_{device}_b{bs}", audio_seconds / seconds, "audio s/s", baseline, dict(check)))
    return results
