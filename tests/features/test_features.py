import pytest
import torch

from genre_lab.features import FrontEnd, SpecAugment, mixup


def _music_like(batch: int = 4, seconds: float = 2.0, sr: int = 16000) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    t = torch.arange(int(seconds * sr)) / sr
    freqs = 100 + 2000 * torch.rand(batch, 5, 1, generator=g)
    tones = torch.sin(2 * torch.pi * freqs * t).sum(1)
    return 0.1 * tones + 0.01 * torch.randn(batch, len(t), generator=g)


@pytest.mark.parametrize("kind", ["logmel", "mfcc", "stft"])
def test_backends_agree(kind: str) -> None:
    """nnAudio and torchaudio compute the same features: within 0.01 dB where the signal is
    above -60 dB (below that, float32 round-off of tiny powers dominates)."""
    wave = _music_like()
    a = FrontEnd(kind=kind, backend="nnaudio").spectrogram(wave)
    b = FrontEnd(kind=kind, backend="torchaudio").spectrogram(wave)
    assert a.shape == b.shape
    audible = (a > -60) & (b > -60) if kind != "mfcc" else torch.ones_like(a, dtype=torch.bool)
    assert audible.float().mean() > 0.3
    tol = 0.01 if kind != "mfcc" else 0.05
    assert (a - b)[audible].abs().max() < tol


@pytest.mark.parametrize("kind, bins", [("logmel", 64), ("mfcc", 20), ("stft", 513), ("cqt", 84)])
def test_shapes(kind: str, bins: int) -> None:
    fe = FrontEnd(kind=kind)
    for n in (8000, 16000, 33333):
        out = fe(torch.randn(3, n))
        assert out.shape == (3, 1, bins, fe.frames(n))
        assert torch.isfinite(out).all()


def test_auto_picks_by_device() -> None:
    fe = FrontEnd(backend="auto")
    assert set(fe.impls) == {"nnaudio", "torchaudio"}
    assert fe.backend_for(torch.device("cpu")) == "torchaudio"
    assert fe.backend_for(torch.device("cuda")) == "nnaudio"


def test_normalization_independent_of_batch_size() -> None:
    fe = FrontEnd()
    fe.train()
    fe(torch.randn(16, 16000))  # update running statistics
    fe.eval()
    x = torch.randn(5, 16000)
    together = fe(x)
    alone = torch.cat([fe(x[i : i + 1]) for i in range(5)])
    assert torch.allclose(together, alone, atol=1e-4)


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"kind": "chroma"}, "features.frontend.kind"),
        ({"backend": "librosa"}, "features.frontend.backend"),
        ({"kind": "cqt", "backend": "torchaudio"}, "no CQT"),
        ({"kind": "mfcc", "n_mfcc": 80, "n_mels": 64}, "n_mfcc"),
    ],
)
def test_bad_settings(kw: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        FrontEnd(**kw)


def test_specaugment_only_in_training() -> None:
    aug = SpecAugment(freq_mask=10, time_mask=10)
    x = torch.ones(4, 1, 64, 50)
    aug.eval()
    assert torch.equal(aug(x), x)
    aug.train()
    torch.manual_seed(0)
    assert (aug(x) == 0).any()


def test_mixup_blends_inputs_and_targets() -> None:
    torch.manual_seed(0)
    x = torch.randn(8, 1, 4, 4)
    y = torch.eye(8)
    mx, my = mixup(x, y, alpha=0.4)
    assert torch.allclose(my.sum(1), torch.ones(8))
    # Each row is lam * itself + (1 - lam) * a partner: targets and inputs mixed the same way.
    assert not torch.equal(mx, x) and (my > 0).sum(1).max() == 2
    partner = my.clone()
    partner[torch.arange(8), torch.arange(8)] = 0
    j = partner.argmax(1)
    w = torch.diagonal(my)
    assert torch.allclose(mx, w.view(-1, 1, 1, 1) * x + (1 - w).view(-1, 1, 1, 1) * x[j], atol=1e-6)


def test_mel_power_equals_torchaudio_transform() -> None:
    """The faster CPU mel path computes what torchaudio's MelSpectrogram computes."""
    import torchaudio

    from genre_lab.features.frontend import MelPower

    wave = _music_like(seconds=1.5, sr=22050)
    ours = MelPower(22050, 1024, 512, 64, 0.0, 11025.0)(wave)
    ref = torchaudio.transforms.MelSpectrogram(
        22050, n_fft=1024, hop_length=512, n_mels=64, norm="slaney", mel_scale="slaney"
    )(wave)
    assert torch.allclose(ours, ref, rtol=1e-4, atol=1e-7 * float(ref.max()))
