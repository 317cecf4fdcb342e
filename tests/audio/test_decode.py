import os
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from genre_lab.audio.decode import AudioDecodeError, load_audio, resample
from tests.conftest import write_tone


@pytest.mark.parametrize(
    "name, kw",
    [
        ("a.wav", {}),
        ("a.flac", {}),
        ("a.ogg", {"format": "OGG", "subtype": "VORBIS"}),
        ("a.opus", {"format": "OGG", "subtype": "OPUS"}),
        ("a.mp3", {"format": "MP3"}),
        ("a.au", {"format": "AU", "subtype": "PCM_16"}),
    ],
)
@pytest.mark.parametrize("channels", [1, 2, 6])
def test_decodes_formats_and_channel_counts(tmp_path: Path, name: str, kw: dict, channels: int) -> None:
    if name.endswith(".mp3") and channels > 2:
        pytest.skip("MP3 holds at most two channels")
    sr = 48000 if "opus" in name else 22050
    path = write_tone(tmp_path / name, seconds=1.0, sr=sr, channels=channels, **kw)
    wave = load_audio(path, 16000)
    assert wave.dtype == torch.float32 and wave.dim() == 1
    # Lossy codecs add priming/padding samples; the length stays within ~0.1 s.
    assert abs(len(wave) - 16000) < 1600
    # The tone survives decoding, mono mix-down and resampling: its peak bin is at 440 Hz.
    spectrum = np.abs(np.fft.rfft(wave.numpy()))
    assert abs(np.argmax(spectrum) * 16000 / len(wave) - 440) < 5


@pytest.mark.parametrize("method", ["soxr", "torchaudio"])
def test_resample_preserves_tone_and_length(method: str) -> None:
    sr_in, sr_out = 44100, 16000
    t = torch.arange(sr_in) / sr_in
    y = resample(torch.sin(2 * torch.pi * 1000 * t), sr_in, sr_out, method)
    assert len(y) == sr_out
    spectrum = torch.fft.rfft(y).abs()
    assert int(spectrum.argmax()) == 1000
    # A tone above the new Nyquist frequency is filtered out, not aliased.
    high = resample(torch.sin(2 * torch.pi * 12000 * t), sr_in, sr_out, method)
    assert high[1000:-1000].abs().max() < 0.02
    assert torch.equal(resample(y, sr_out, sr_out), y)


def test_resamplers_agree() -> None:
    t = torch.arange(48000) / 48000
    x = torch.sin(2 * torch.pi * 440 * t) + 0.5 * torch.sin(2 * torch.pi * 3000 * t)
    a, b = resample(x, 48000, 16000, "soxr"), resample(x, 48000, 16000, "torchaudio")
    assert a.shape == b.shape
    assert (a - b)[200:-200].abs().max() < 0.01


@pytest.mark.parametrize(
    "content, reason",
    [(b"", "empty"), (b"this is not audio at all" * 40, "cannot decode")],
)
def test_bad_files_name_the_file(tmp_path: Path, content: bytes, reason: str) -> None:
    path = tmp_path / "broken.wav"
    path.write_bytes(content)
    with pytest.raises(AudioDecodeError, match="broken.wav") as err:
        load_audio(path, 16000)
    assert reason in str(err.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(AudioDecodeError, match="nothere.flac"):
        load_audio(tmp_path / "nothere.flac", 16000)


def test_mp3_beside_a_macos_sidecar(tmp_path: Path) -> None:
    """libsndfile opened `._song.mp3` (macOS metadata) along with `song.mp3` when given a path."""
    path = write_tone(tmp_path / "song.mp3", seconds=1.0, format="MP3")
    (tmp_path / "._song.mp3").write_bytes(b"\x00\x05\x16\x07" + b"\x00" * 4000)
    wave = load_audio(path, 16000)
    assert abs(len(wave) - 16000) < 1600


#: Every container libsndfile reads that the scanners pick up, written by soundfile itself.
CONTAINERS = {
    "wav": {},
    "aiff": {},
    "au": {"format": "AU", "subtype": "PCM_16"},
    "flac": {},
    "ogg": {"format": "OGG", "subtype": "VORBIS"},
    "opus": {"format": "OGG", "subtype": "OPUS"},
    "mp3": {"format": "MP3"},
}


@pytest.fixture(scope="module")
def intact(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One 4 s stereo file per container: a tone plus noise, so lossy codecs need many pages/frames."""
    folder = tmp_path_factory.mktemp("intact")
    rng = np.random.default_rng(0)
    files = {}
    for ext, kw in CONTAINERS.items():
        sr = 48000 if ext == "opus" else 22050
        t = np.arange(4 * sr) / sr
        tone = 0.3 * np.sin(2 * np.pi * 440 * t)
        data = np.stack([tone + 0.05 * rng.standard_normal(len(t)), tone], axis=1).astype(np.float32)
        sf.write(str(folder / f"song.{ext}"), data, sr, **kw)
        files[ext] = folder / f"song.{ext}"
    return files


@pytest.mark.parametrize("ext", CONTAINERS)
def test_intact_files_of_every_container_decode(intact: dict[str, Path], ext: str) -> None:
    wave = load_audio(intact[ext], 16000)
    assert abs(len(wave) - 4 * 16000) < 1600


# Also 0.1% off the end, except for MP3: an MP3 may decode up to one MPEG frame (26 ms) short
# of its header, and 0.1% of 4 s is inside that.
@pytest.mark.parametrize(
    "ext, fraction",
    [(ext, f) for ext in CONTAINERS for f in (0.3, 0.6, 0.95, 0.999) if not (ext == "mp3" and f > 0.99)],
)
def test_truncated_files_of_every_container_are_refused(
    intact: dict[str, Path], tmp_path: Path, ext: str, fraction: float
) -> None:
    """Before: AU, AIFF and OGG/Opus files cut short decoded as shorter songs."""
    data = intact[ext].read_bytes()
    cut = tmp_path / f"cut.{ext}"
    cut.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(AudioDecodeError, match=f"cut.{ext}") as err:
        load_audio(cut, 16000)
    assert "truncated" in err.value.reason


def test_ogg_cut_at_a_page_boundary_is_refused(intact: dict[str, Path], tmp_path: Path) -> None:
    """Every page complete, but the end-of-stream page is missing."""
    data = intact["ogg"].read_bytes()
    last_page = data.rindex(b"OggS")
    cut = tmp_path / "cut.ogg"
    cut.write_bytes(data[:last_page])
    with pytest.raises(AudioDecodeError, match="end-of-stream page"):
        load_audio(cut, 16000)


@pytest.mark.parametrize("ext", ["ogg", "opus", "wav", "flac"])
def test_bytes_after_an_intact_stream_are_not_truncation(intact: dict[str, Path], tmp_path: Path, ext: str) -> None:
    """A trailing ID3v1 tag (128 bytes) or chunk after the audio is common and harmless."""
    path = tmp_path / f"tagged.{ext}"
    trailer = b"LIST" + struct.pack("<I", 4) + b"INFO" if ext == "wav" else b"TAG" + b"\0" * 125
    path.write_bytes(intact[ext].read_bytes() + trailer)
    assert abs(len(load_audio(path, 16000)) - 4 * 16000) < 1600


@pytest.mark.parametrize("size", [0xFFFFFFFF, 0x7FFFFFFF])
def test_streaming_placeholder_sizes_are_not_truncation(intact: dict[str, Path], tmp_path: Path, size: int) -> None:
    """Writers that cannot seek back (pipes) leave a placeholder data size in the header."""
    data = bytearray(intact["wav"].read_bytes())
    at = data.index(b"data")
    data[at + 4 : at + 8] = struct.pack("<I", size)
    path = tmp_path / "streamed.wav"
    path.write_bytes(bytes(data))
    assert len(load_audio(path, 16000)) == 4 * 16000


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads files without read permission")
def test_unreadable_file_is_a_decode_error(intact: dict[str, Path], tmp_path: Path) -> None:
    path = tmp_path / "locked.wav"
    path.write_bytes(intact["wav"].read_bytes())
    path.chmod(0)
    with pytest.raises(AudioDecodeError, match="locked.wav") as err:
        load_audio(path, 16000)
    assert "ermission" in err.value.reason
