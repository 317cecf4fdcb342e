"""The GPU pass (`pytest -m gpu`, skipped without CUDA): a model tags the same on CUDA as on the
CPU, and the front end stays float32 under CUDA autocast."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from genre_lab.bench.tag import default_model
from genre_lab.inference import Tagger
from genre_lab.models import model_file
from tests.conftest import write_tone

pytestmark = pytest.mark.gpu


def test_tags_on_cuda_match_the_cpu(tmp_path: Path) -> None:
    model = default_model()
    ckpt = tmp_path / "model.ckpt"
    model_file.write(ckpt, model.spec, model.state_dict())
    song = write_tone(tmp_path / "song.wav", seconds=6.0, sr=16000)
    on_cpu = Tagger.load(str(ckpt), device="cpu").tag(str(song), k=3)
    on_cuda = Tagger.load(str(ckpt), device="cuda").tag(str(song), k=3)
    assert on_cuda.ok and on_cpu.ok
    assert on_cuda.distribution == pytest.approx(on_cpu.distribution, abs=1e-3)


def test_front_end_stays_float32_under_cuda_autocast() -> None:
    net = default_model().net.to("cuda").eval()
    wave = torch.randn(2, 16000 * 3, device="cuda")
    with torch.autocast("cuda", dtype=torch.bfloat16), torch.no_grad():
        features = net.frontend(wave)
        out = net(wave)
    assert features.dtype == torch.float32
    assert torch.isfinite(out.float()).all()
