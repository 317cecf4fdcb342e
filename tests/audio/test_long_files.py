"""Files are decoded in blocks (mono and resampled as they arrive): the same samples as decoding,
mixing and resampling the whole file at once, and the same errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr

import genre_lab.audio.decode as audio
from genre_lab.audio.decode import AudioDecodeError, load_audio
from genre_lab.data.synthetic import render_clip


@pytest.mark.parametrize("fmt", ["wav", "ogg"])
def test_block_decoding_equals_whole_decoding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str) -> None:
    path = tmp_path / f"song.{fmt}"
    y = render_clip("rock", 1, 6.0, 44100)
    sf.write(str(path), np.stack([y, 0.5 * y], 1), 44100)
    decoded, sr = sf.read(str(path), dtype="float32", always_2d=True)
    whole = soxr.resample(audio.to_mono(decoded), sr, 16000, quality="HQ")
    for block in (30000, 1 << 16):  # several blocks, and one block longer than the file
        monkeypatch.setattr(audio, "_BLOCK_FRAMES", block)
        streamed = load_audio(path, 16000).numpy()
        assert len(streamed) == len(whole) == 96000
        assert float(np.abs(streamed - whole).max()) == 0.0
    same_rate = load_audio(path, 44100).numpy()
    assert len(same_rate) == len(y)
    assert float(np.abs(same_rate - audio.to_mono(decoded)).max()) == 0.0


def test_block_decoding_reports_nan_and_truncation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(audio, "_BLOCK_FRAMES", 30000)
    y = render_clip("jazz", 2, 4.0, 22050).astype(np.float32)
    y[70000] = np.nan  # in the third block
    bad = tmp_path / "nan.wav"
    sf.write(str(bad), y, 22050, subtype="FLOAT")
    with pytest.raises(AudioDecodeError, match="NaN or infinite"):
        load_audio(bad, 16000)
    good = tmp_path / "good.wav"
    sf.write(str(good), np.nan_to_num(y), 22050)
    cut = tmp_path / "cut.wav"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(AudioDecodeError, match="truncated"):
        load_audio(cut, 16000)
