"""Audio decoding: any file soundfile can read -> mono float32 at the requested rate.

Decoding uses soundfile (libsndfile: wav, flac, ogg/vorbis, opus, mp3, au/snd, aiff) and
resampling uses torchaudio's band-limited sinc resampler. Every failure is raised as an
`AudioDecodeError` that names the file, so dataset scans and batch tagging can report the
file and carry on with the rest.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

#: File endings that the dataset scanners and the tagger pick up from folders.
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".au", ".snd", ".aif", ".aiff")


class AudioDecodeError(RuntimeError):
    """A file could not be turned into audio; `path` and `reason` say which and why."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"cannot decode {self.path}: {reason}")


def to_mono(audio: np.ndarray) -> np.ndarray:
    """Average channels; `audio` is (frames,) or (frames, channels) as soundfile returns it."""
    return audio if audio.ndim == 1 else audio.mean(axis=1)


def resample(wave: np.ndarray | torch.Tensor, orig_sr: int, new_sr: int) -> torch.Tensor:
    """Resample a 1-D waveform with torchaudio (no-op when the rates agree)."""
    x = torch.as_tensor(wave, dtype=torch.float32)
    if orig_sr == new_sr:
        return x
    if orig_sr <= 0 or new_sr <= 0:
        raise ValueError(f"sample rates must be positive, got {orig_sr} -> {new_sr}")
    return AF.resample(x, int(orig_sr), int(new_sr))


def load_audio(
    path: str | Path,
    sample_rate: int,
    offset_seconds: float = 0.0,
    duration_seconds: float | None = None,
) -> torch.Tensor:
    """Decode `path` to a mono float32 tensor at `sample_rate`.

    Raises `AudioDecodeError` naming the file for anything that is not decodable audio:
    a missing or empty file, an unknown container, a truncated stream, or no samples.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioDecodeError(path, "no such file")
    if path.stat().st_size == 0:
        raise AudioDecodeError(path, "file is empty (0 bytes)")
    try:
        with sf.SoundFile(str(path)) as f:
            sr = f.samplerate
            if offset_seconds > 0:
                f.seek(int(offset_seconds * sr))
            frames = -1 if duration_seconds is None else int(duration_seconds * sr)
            audio = f.read(frames=frames, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError) as err:
        raise AudioDecodeError(path, str(err).strip() or type(err).__name__) from err
    if audio.shape[0] == 0:
        raise AudioDecodeError(path, "no audio samples")
    if not np.isfinite(audio).all():
        raise AudioDecodeError(path, "audio contains NaN or infinite samples")
    return resample(to_mono(audio), sr, sample_rate)


def audio_info(path: str | Path) -> tuple[int, float]:
    """(sample_rate, duration_seconds) from the header, without decoding."""
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError) as err:
        raise AudioDecodeError(path, str(err).strip()) from err
    return info.samplerate, info.frames / info.samplerate
