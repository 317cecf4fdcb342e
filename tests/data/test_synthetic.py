"""The procedural genre generator: determinism, shapes, splits, errors, and that the classes
differ in rhythm and timbre rather than in any single loudness or pitch statistic."""

from __future__ import annotations

import numpy as np
import pytest

from genre_lab.data.synthetic import GENRES, clip_seed, render_clip, synthetic_split

SR = 16000
SECONDS = 4.0


# ---------------------------------------------------------------- basic contract


def test_genres_are_gtzan_names():
    assert GENRES == (
        "blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock",
    )


@pytest.mark.parametrize("genre", GENRES)
def test_deterministic_and_seed_dependent(genre):
    a = render_clip(genre, 11, 2.0, 8000)
    b = render_clip(genre, 11, 2.0, 8000)
    c = render_clip(genre, 12, 2.0, 8000)
    assert np.array_equal(a, b)
    assert not np.allclose(a, c)


def test_genre_is_mixed_into_the_seed():
    clips = [render_clip(g, 5, 1.0, 8000) for g in GENRES]
    for i in range(len(clips)):
        for j in range(i + 1, len(clips)):
            assert not np.allclose(clips[i], clips[j])


@pytest.mark.parametrize("seconds,sample_rate", [(6.0, 16000), (2.5, 22050), (1.0, 4000), (0.01, 8000)])
@pytest.mark.parametrize("genre", GENRES)
def test_shape_dtype_range(genre, seconds, sample_rate):
    x = render_clip(genre, 3, seconds, sample_rate)
    assert x.dtype == np.float32
    assert x.shape == (round(seconds * sample_rate),)
    assert np.isfinite(x).all()
    assert 0.0 < np.abs(x).max() <= 1.0


def test_errors():
    with pytest.raises(ValueError, match="polka") as err:
        render_clip("polka", 0)
    assert all(g in str(err.value) for g in GENRES)
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="seconds"):
            render_clip("rock", 0, seconds=bad)
    with pytest.raises(ValueError, match="sample_rate"):
        render_clip("rock", 0, sample_rate=3999)
    with pytest.raises(ValueError, match="split"):
        synthetic_split("dev", 1, 1.0, 8000)
    with pytest.raises(ValueError, match="seconds"):
        synthetic_split("train", 1, 0.0, 8000)


# ---------------------------------------------------------------- splits


def test_split_balance_order_and_ids():
    waves, labels, ids = synthetic_split("val", 3, 1.0, 8000, seed=7)
    assert len(waves) == len(labels) == len(ids) == 3 * len(GENRES)
    assert labels == [gi for gi in range(len(GENRES)) for _ in range(3)]
    assert ids[:4] == ["val/blues/0000", "val/blues/0001", "val/blues/0002", "val/classical/0000"]
    for wave, label, clip_id in zip(waves, labels, ids):
        split, genre, index = clip_id.split("/")
        assert split == "val" and GENRES.index(genre) == label and len(index) == 4
        assert wave.shape == (8000,) and wave.dtype == np.float32
    again = synthetic_split("val", 3, 1.0, 8000, seed=7)[0]
    assert all(np.array_equal(a, b) for a, b in zip(waves, again))
    other = synthetic_split("val", 3, 1.0, 8000, seed=8)[0]
    assert not any(np.array_equal(a, b) for a, b in zip(waves, other))


def test_splits_never_share_a_clip():
    seeds = {}
    for split in ("train", "val", "test"):
        seeds[split] = {clip_seed(split, gi, i, 0) for gi in range(len(GENRES)) for i in range(200)}
        assert len(seeds[split]) == 200 * len(GENRES)
    assert not seeds["train"] & seeds["val"]
    assert not seeds["train"] & seeds["test"]
    assert not seeds["val"] & seeds["test"]
    # disjoint ranges: every train seed is below every val seed, every val seed below every test seed
    assert max(seeds["train"]) < min(seeds["val"]) and max(seeds["val"]) < min(seeds["test"])
    clips = {s: synthetic_split(s, 2, 0.5, 8000)[0] for s in ("train", "val", "test")}
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        assert not any(np.array_equal(x, y) for x in clips[a] for y in clips[b])


# ---------------------------------------------------------------- separability


def _mel_filterbank(n_fft, sr, n_mels=64, fmin=30.0):
    def mel(f):
        return 2595.0 * np.log10(1.0 + f / 700.0)

    def hz(m):
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)

    edges = hz(np.linspace(mel(fmin), mel(sr / 2), n_mels + 2))
    f = np.fft.rfftfreq(n_fft, 1.0 / sr)
    fb = np.zeros((n_mels, f.size))
    for i in range(n_mels):
        lo, mid, hi = edges[i:i + 3]
        fb[i] = np.clip(np.minimum((f - lo) / (mid - lo), (hi - f) / (hi - mid)), 0.0, None)
    return fb


_FB = _mel_filterbank(1024, SR)


def _logmel(x, hop):
    n_fft = 1024
    frames = 1 + (len(x) - n_fft) // hop
    idx = np.arange(n_fft)[None, :] + hop * np.arange(frames)[:, None]
    power = np.abs(np.fft.rfft(x[idx] * np.hanning(n_fft), axis=1)) ** 2
    return np.log(power @ _FB.T + 1e-10)  # (frames, 64)


def _rich_features(x):
    """64-band log-mel mean (gain removed) and std over time, plus onset autocorrelation."""
    m = _logmel(x, hop=512)
    onset = np.maximum(np.diff(_logmel(x, hop=256), axis=0), 0.0).mean(axis=1)
    onset = onset - onset.mean()
    ac = np.correlate(onset, onset, "full")[onset.size - 1:]
    ac = ac[1:125] / (ac[0] + 1e-9)  # lags 16 ms .. 2 s: tempo and rhythm pattern
    return np.concatenate([(m - m.mean()).mean(axis=0), m.std(axis=0), ac])


def _centroid(x):
    power = np.abs(np.fft.rfft(x)) ** 2
    return float((power * np.fft.rfftfreq(x.size, 1.0 / SR)).sum() / power.sum())


def _logistic_regression(x_train, y_train, x_test, steps=400, lr=0.5, l2=1e-2):
    mu, sd = x_train.mean(axis=0), x_train.std(axis=0) + 1e-9
    a, b = (x_train - mu) / sd, (x_test - mu) / sd
    k = int(y_train.max()) + 1
    w, bias, onehot = np.zeros((a.shape[1], k)), np.zeros(k), np.eye(k)[y_train]
    for _ in range(steps):
        z = a @ w + bias
        p = np.exp(z - z.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        g = (p - onehot) / len(a)
        w -= lr * (a.T @ g + l2 * w)
        bias -= lr * g.sum(axis=0)
    return np.argmax(b @ w + bias, axis=1)


@pytest.fixture(scope="module")
def clips():
    """20 training and 10 held-out clips per class (seeds 1000+ and 5000+)."""
    def make(first, n):
        waves = [render_clip(g, first + i, SECONDS, SR) for g in GENRES for i in range(n)]
        return waves, np.repeat(np.arange(len(GENRES)), n)

    return make(1000, 20), make(5000, 10)


def _one_stat_accuracy(stat, clips):
    (w_tr, y_tr), (w_te, y_te) = clips
    s_tr = np.log([stat(x) for x in w_tr])
    s_te = np.log([stat(x) for x in w_te])
    means = np.array([s_tr[y_tr == k].mean() for k in range(len(GENRES))])
    nearest_mean = np.argmin(np.abs(s_te[:, None] - means[None, :]), axis=1)
    nearest_clip = y_tr[np.argmin(np.abs(s_te[:, None] - s_tr[None, :]), axis=1)]
    return max((nearest_mean == y_te).mean(), (nearest_clip == y_te).mean())


@pytest.mark.parametrize(
    "stat", [lambda x: np.sqrt(np.mean(x * x)), _centroid], ids=["rms", "spectral_centroid"]
)
def test_no_single_loudness_or_pitch_statistic_separates_classes(stat, clips):
    assert _one_stat_accuracy(stat, clips) < 0.5


def test_classes_are_separable_by_spectral_and_rhythm_features(clips):
    (w_tr, y_tr), (w_te, y_te) = clips
    f_tr = np.array([_rich_features(x) for x in w_tr])
    f_te = np.array([_rich_features(x) for x in w_te])
    accuracy = (_logistic_regression(f_tr, y_tr, f_te) == y_te).mean()
    assert accuracy >= 0.6


# ---------------------------------------------------------------- difficulty levels


@pytest.mark.parametrize("difficulty", ["medium", "hard"])
@pytest.mark.parametrize("genre", GENRES)
def test_harder_levels_are_deterministic_valid_and_differ_from_easy(genre, difficulty):
    a = render_clip(genre, 21, 3.0, 16000, difficulty)
    assert np.array_equal(a, render_clip(genre, 21, 3.0, 16000, difficulty))
    assert not np.allclose(a, render_clip(genre, 22, 3.0, 16000, difficulty))
    assert not np.allclose(a, render_clip(genre, 21, 3.0, 16000, "easy"))
    assert a.dtype == np.float32 and a.shape == (48000,)
    assert np.isfinite(a).all() and 0.0 < np.abs(a).max() <= 1.0


def test_difficulty_errors_name_the_setting():
    with pytest.raises(ValueError, match="difficulty must be one of easy, medium, hard, got 'brutal'"):
        render_clip("rock", 0, 1.0, 8000, "brutal")
    with pytest.raises(ValueError, match="difficulty"):
        synthetic_split("train", 1, 1.0, 8000, difficulty="brutal")


def test_source_passes_its_difficulty_and_names_its_setting():
    from genre_lab.data import SyntheticSource

    counts = {"train": 1, "val": 1, "test": 1}
    medium = SyntheticSource(counts, clip_seconds=1.0, difficulty="medium").load(8000)["test"]
    again = synthetic_split("test", 1, 1.0, 8000, 0, "medium")[0]
    assert all(np.array_equal(a, b) for a, b in zip(medium.waves, again))
    easy = SyntheticSource(counts, clip_seconds=1.0).load(8000)["test"]  # Python default: easy
    assert all(np.array_equal(a, b) for a, b in zip(easy.waves, synthetic_split("test", 1, 1.0, 8000)[0]))
    with pytest.raises(ValueError, match="data.source.difficulty"):
        SyntheticSource(counts, difficulty="brutal")


@pytest.mark.slow
def test_medium_is_harder_than_easy_for_spectral_and_rhythm_features(clips):
    """The same classifier as above loses accuracy at `medium` (measured with 30 training and
    15 test clips per class: easy 0.94, medium 0.53), while staying far above chance (0.10)."""
    def make(first, n):
        waves = [render_clip(g, first + i, SECONDS, SR, "medium") for g in GENRES for i in range(n)]
        return np.array([_rich_features(x) for x in waves]), np.repeat(np.arange(len(GENRES)), n)

    (f_tr, y_tr), (f_te, y_te) = make(1000, 20), make(5000, 10)
    medium = (_logistic_regression(f_tr, y_tr, f_te) == y_te).mean()
    (w_tr, y_tr), (w_te, y_te) = clips
    easy = (_logistic_regression(np.array([_rich_features(x) for x in w_tr]), y_tr,
                                 np.array([_rich_features(x) for x in w_te])) == y_te).mean()
    assert 0.3 <= medium <= easy - 0.1
