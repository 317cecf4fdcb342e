"""Audio decoding: any file soundfile can read -> mono float32 at the requested rate.

Decoding uses soundfile (libsndfile: wav, flac, ogg/vorbis, opus, mp3, au/snd, aiff) and
resampling uses torchaudio's band-limited sinc resampler. Every failure is raised as an
`AudioDecodeError` that names the file, so dataset scans and batch tagging can report the
file and carry on with the rest.

A file is untrusted data: before anything is decoded or allocated, its header must declare a
sample rate within `MIN_SAMPLE_RATE`..`MAX_SAMPLE_RATE`, at most `max_seconds` of audio
(`DEFAULT_MAX_SECONDS`, 4 hours) and a container whose truncation can be checked
(`genre_lab.audio.truncation`).
"""

from __future__ import annotations

import math
import os
import re
import stat
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
import torch
import torchaudio.functional as AF

from genre_lab.audio.truncation import sniffed_truncation, truncation, unchecked_container

#: File endings that the dataset scanners and the tagger pick up from folders.
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".au", ".snd", ".aif", ".aiff")
#: Sample rates a file's header may declare, in Hz: below 1 kHz nothing of a song's spectrum
#: survives; 384 kHz is the highest rate audio interfaces record at. Outside them a header is
#: refused before anything is allocated: a WAV declaring 1 Hz asks the resampler for 16,000
#: output samples per stored one (a 128 KB file became 4 GB).
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 1_000, 384_000
#: The longest audio decoded by default (`max_seconds`), as the header declares it: 4 hours,
#: past any song or DJ set. The decode buffer is sized from the header (at most this long:
#: 0.9 GB of float32 at 16 kHz), so a tiny file declaring days is refused before allocation.
DEFAULT_MAX_SECONDS = 4 * 3600.0


class AudioDecodeError(RuntimeError):
    """A file could not be turned into audio; `path` and `reason` say which and why."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"cannot decode {self.path}: {reason}")


def to_mono(audio: np.ndarray) -> np.ndarray:
    """Average channels; `audio` is (frames,) or (frames, channels) as soundfile returns it."""
    if audio.ndim == 1:
        return audio
    # A matrix-vector product: ~10x faster than `mean(axis=1)`, whose reduction over a short
    # strided axis cost almost as much as decoding (`genre_lab.bench tag`).
    return audio @ np.full(audio.shape[1], 1.0 / audio.shape[1], dtype=audio.dtype)


#: Resamplers by name. `soxr` (libsoxr, high quality) is the default because it measured
#: ~8x faster than torchaudio's sinc resampler on CPU for song-length audio (48 -> 16 kHz;
#: `python -m genre_lab.bench tag`, contenders decode_resample vs decode_resample_torchaudio),
#: turning resampling from ~50% of decode time to ~7%. torchaudio's stays available, and is
#: what runs for tensors already on a GPU.
RESAMPLERS = ("soxr", "torchaudio")


def resample(wave: np.ndarray | torch.Tensor, orig_sr: int, new_sr: int, method: str = "soxr") -> torch.Tensor:
    """Resample a waveform to `new_sr` (no-op when the rates agree): the one resampler of the package.

    soxr takes a 1-D waveform on the CPU. `torchaudio` (chosen, or used for a tensor on a GPU)
    resamples along the last axis of a batch too, keeps a floating tensor's dtype, device and
    gradient: the choice inside a model's `forward` (an ensemble's members at their own rates,
    attributions through them)."""
    if method not in RESAMPLERS:
        raise ValueError(f"resampler must be one of {RESAMPLERS}, got '{method}'")
    if orig_sr <= 0 or new_sr <= 0:
        raise ValueError(f"sample rates must be positive, got {orig_sr} -> {new_sr}")
    on_gpu = isinstance(wave, torch.Tensor) and wave.device.type != "cpu"
    if orig_sr == new_sr:
        return torch.as_tensor(wave, dtype=torch.float32)
    if method == "torchaudio" or on_gpu:
        floating = isinstance(wave, torch.Tensor) and wave.is_floating_point()
        return AF.resample(wave if floating else torch.as_tensor(wave, dtype=torch.float32), int(orig_sr), int(new_sr))
    x = wave.numpy() if isinstance(wave, torch.Tensor) else wave
    return torch.from_numpy(soxr.resample(np.ascontiguousarray(x, dtype=np.float32), orig_sr, new_sr, quality="HQ"))


def load_audio(
    path: str | Path,
    sample_rate: int,
    offset_seconds: float = 0.0,
    duration_seconds: float | None = None,
    max_seconds: float | None = DEFAULT_MAX_SECONDS,
) -> torch.Tensor:
    """Decode `path` to a mono float32 tensor at `sample_rate`.

    Raises `AudioDecodeError` naming the file for anything that is not decodable audio:
    a missing, unreadable, empty or special file (a dangling link, a folder, a named pipe), an
    unknown container or one whose truncation cannot be checked, a header declaring a sample
    rate outside `MIN_SAMPLE_RATE`..`MAX_SAMPLE_RATE` or more than `max_seconds` of audio
    (None: no limit; checked from the header before anything is allocated, and again while
    reading), a stream cut short of the length its header declares (`genre_lab.audio.truncation`,
    whatever part was read), or no samples.
    """
    path = Path(path)
    if max_seconds is not None and math.isinf(max_seconds):
        max_seconds = None
    if not path.is_file():
        raise AudioDecodeError(path, not_a_file_reason(path))
    if path.stat().st_size == 0:
        raise AudioDecodeError(path, "file is empty (0 bytes)")
    whole = offset_seconds <= 0 and duration_seconds is None
    try:
        # Through a Python file object, not the path: given a path, libsndfile's MP3 reader
        # also opens a macOS `._name.mp3` sidecar beside the file and fails ("bad data
        # offset"). Same decode speed (measured on 10 songs).
        with open(path, "rb") as handle, sf.SoundFile(handle) as f:
            sr, container, declared, header_log = f.samplerate, f.format, f.frames, f.extra_info
            refused = header_problem(sr, declared, container, max_seconds)
            if refused:
                raise AudioDecodeError(path, refused)
            if offset_seconds > 0:
                f.seek(int(offset_seconds * sr))
            frames = -1 if duration_seconds is None else int(duration_seconds * sr)
            streamed: tuple[np.ndarray, int] | None = None
            try:
                if whole:
                    streamed = _read_streaming(f, path, sample_rate, max_seconds)
                    audio = np.empty((streamed[1], 0), dtype=np.float32)  # only its length is used
                else:
                    audio = f.read(frames=frames, dtype="float32", always_2d=True)
            except sf.LibsndfileError as err:
                # The header was fine, the stream is not: a FLAC cut inside a frame lands here.
                raise AudioDecodeError(path, f"truncated or damaged: decoding stopped after {f.tell()} of "
                                             f"{declared} frames ({_libsndfile_text(err)})") from err
    except AudioDecodeError:
        raise
    except OSError as err:  # e.g. permission denied
        raise AudioDecodeError(path, err.strerror or str(err)) from err
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError) as err:
        raise AudioDecodeError(path, _open_failure(path, err)) from err
    # Before the sample count: an Ogg cut early decodes to nothing, and that is truncation.
    cut = truncation(path, container, header_log, audio.shape[0] if whole else None, declared)
    if cut:
        raise AudioDecodeError(path, cut)
    if audio.shape[0] == 0:
        raise AudioDecodeError(path, "no audio samples")
    if streamed is not None:
        return torch.from_numpy(streamed[0])
    if not np.isfinite(audio).all():
        raise AudioDecodeError(path, "audio contains NaN or infinite samples")
    return resample(to_mono(audio), sr, sample_rate)


#: A whole file is decoded in blocks of this many frames, each mixed to mono and resampled as it
#: arrives, through buffers reused from block to block. Holding a song whole cost memory (a
#: 2-hour stereo 44.1 kHz file took 2.5 GB as float32) and time: every song's fresh arrays were
#: page-faulted in and streamed through memory. On 20 Debian songs (Ogg Vorbis, 44.1/48 kHz
#: stereo -> 16 kHz) decode + mono + resample ran at 872 audio s/s whole and 1,143 in blocks
#: of 64K frames with 2 threads (537 and 595 with one); blocks of 256K frames (2 MB of stereo
#: float32, past the per-core cache) fell back to 673-685 with 2 threads, 16K gave 1,062-1,072.
_BLOCK_FRAMES = 1 << 16


def header_problem(sample_rate: int, frames: int, container: str, max_seconds: float | None) -> str | None:
    """Why a file whose header declares `sample_rate` and `frames` in `container` is refused
    before decoding, or None."""
    if not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE:
        return (f"header declares a sample rate of {sample_rate} Hz, outside "
                f"{MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz")
    refused = unchecked_container(container)
    if refused:
        return refused
    if max_seconds is not None and frames > 0 and frames / sample_rate > max_seconds:
        return (f"header declares {frames / sample_rate:.0f} s of audio, longer than the limit of "
                f"{max_seconds:g} s (max_seconds)")
    return None


def not_a_file_reason(path: Path) -> str:
    """Why `path`, which is not a regular file, cannot be decoded: said as it is."""
    if path.is_symlink() and not path.exists():
        try:
            return f"dangling symbolic link to {os.readlink(path)}"
        except OSError:
            return "dangling symbolic link"
    try:
        mode = path.stat().st_mode
    except OSError as err:
        return "no such file" if isinstance(err, FileNotFoundError) else (err.strerror or str(err))
    if stat.S_ISDIR(mode):
        try:
            os.scandir(path).close()
        except OSError as err:
            return f"a folder that cannot be listed: {err.strerror or err}"
        return "not a regular file: a folder"
    kinds = ((stat.S_ISFIFO, "a named pipe"), (stat.S_ISSOCK, "a socket"),
             (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))
    what = next((name for test, name in kinds if test(mode)), "a special file")
    return f"not a regular file: {what}"


def _read_streaming(
    f: sf.SoundFile, path: Path, sample_rate: int, max_seconds: float | None = DEFAULT_MAX_SECONDS
) -> tuple[np.ndarray, int]:
    """(mono audio at `sample_rate`, frames read) from an open file, block by block. soxr's
    stream gives the same samples as its one-shot resampler (checked: max difference 0)."""
    sr, channels = f.samplerate, f.channels
    stream = soxr.ResampleStream(sr, sample_rate, 1, dtype="float32", quality="HQ") if sr != sample_rate else None
    # Sized from the header, which may lie (a streamed WAV's placeholder size): at most
    # `max_seconds` (4 hours without a limit) up front, grown past that while the limit allows.
    cap_seconds = DEFAULT_MAX_SECONDS if max_seconds is None else min(max_seconds, DEFAULT_MAX_SECONDS)
    limit = None if max_seconds is None else int(np.ceil(max_seconds * sr))
    out = np.empty(min(int(np.ceil(max(f.frames, 0) * sample_rate / sr)), int(cap_seconds * sample_rate)) + 64, dtype=np.float32)
    block = np.empty((_BLOCK_FRAMES, channels), dtype=np.float32)
    mono = np.empty(_BLOCK_FRAMES, dtype=np.float32)
    weights = np.full(channels, 1.0 / channels, dtype=np.float32)  # the channel mean, as `to_mono`
    # No further than the frames the header declares, as one whole read stops: past them
    # libsndfile's FLAC reader decodes a trailing ID3 tag and fails ("lost sync").
    declared = f.frames if f.frames > 0 else None
    filled = read = 0
    while True:
        want = _BLOCK_FRAMES if declared is None else max(0, min(_BLOCK_FRAMES, declared - read))
        frames = f.read(frames=want, dtype="float32", always_2d=True, out=block[:want])
        last = len(frames) < want or want == 0 or (declared is not None and read + len(frames) >= declared)
        if not np.isfinite(frames).all():
            raise AudioDecodeError(path, "audio contains NaN or infinite samples")
        read += len(frames)
        if limit is not None and read > limit:
            raise AudioDecodeError(path, f"more than {max_seconds:g} s of audio (max_seconds), past the "
                                         f"{f.frames / sr:.0f} s its header declares")
        mixed = np.matmul(frames, weights, out=mono[: len(frames)])
        part = stream.resample_chunk(mixed, last=last) if stream is not None else mixed
        if filled + len(part) > len(out):
            # More frames than declared (or none declared): grow geometrically.
            out = np.concatenate([out[:filled], np.empty(max(len(part) + _BLOCK_FRAMES, filled), dtype=np.float32)])
        out[filled : filled + len(part)] = part
        filled += len(part)
        if last:
            return out[:filled], read


#: Leading bytes of common containers libsndfile cannot open, so the error says what the file is.
_FOREIGN_MAGIC = (
    (4, b"ftyp", "an MP4/QuickTime container"),
    (0, b"\x1aE\xdf\xa3", "a Matroska/WebM container"),
    (8, b"AVI ", "an AVI container"),
    (0, b"FLV", "an FLV container"),
    (0, b"\x00\x00\x01\xba", "an MPEG program stream"),
)


def _open_failure(path: Path, err: Exception) -> str:
    """libsndfile answers 'File does not exist or is not a regular file' for any content it
    cannot recognise; say instead that the format is unknown, and name well-known video
    containers (a video saved as .mp3 is a common case)."""
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError:
        head = b""
    for offset, magic, what in _FOREIGN_MAGIC:
        if head[offset : offset + len(magic)] == magic:
            return f"not an audio file libsndfile can read: the content is {what}"
    # An Ogg file cut inside its first pages, or a CAF inside its data chunk, fails to open
    # ("file is malformed"); say why.
    cut = sniffed_truncation(path)
    if cut:
        return cut
    # libsndfile prefixes "Error opening '<path>': "; AudioDecodeError names the file already.
    text = re.sub(r"^Error opening (?:'.*?'|<.*?>):\s*", "", str(err).strip()) or type(err).__name__
    return "not a recognised audio format" if "does not exist" in text or "not recognised" in text else text


def _libsndfile_text(err: Exception) -> str:
    """libsndfile's message without its "Error : " prefix."""
    return re.sub(r"^Error\s*:\s*", "", str(err).strip()) or type(err).__name__
