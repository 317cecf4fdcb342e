from pathlib import Path

import numpy as np
import pytest
import torch

from genre_lab.audio import AudioDecodeError, load_audio, resample
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
