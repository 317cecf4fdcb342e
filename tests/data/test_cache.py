"""The decode cache: reuse across calls, per-file invalidation, failures, damaged entries."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from genre_lab.audio.decode import load_audio
from genre_lab.config import PROJECT_ROOT
from genre_lab.data.cache import AudioCache, CachedWave, decode_files
from tests.conftest import write_tone


def _files(folder: Path, n: int = 4) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return [write_tone(folder / f"f{i}.{'wav' if i % 2 else 'flac'}", seconds=1.0, sr=22050, freq=200.0 + 50 * i) for i in range(n)]


def _entries(cache: Path) -> list[Path]:
    return sorted(cache.rglob("*.npy")) if cache.exists() else []


def _entry_of(cache: Path, source: Path, sample_rate: int = 16000) -> Path:
    store = AudioCache(cache, sample_rate)
    path = source.absolute()
    return store.entry(store.key(path, path.stat()))


def _nan_into(entry: Path) -> None:
    """Overwrite samples in place, keeping the file's size and header: only the checksum can tell."""
    wave = np.load(entry, mmap_mode="r+")
    wave[100:200] = np.nan
    wave.flush()
    del wave


def _truncate(entry: Path) -> None:
    entry.write_bytes(entry.read_bytes()[: entry.stat().st_size // 2])


def _wrong_checksum(entry: Path) -> None:
    record = entry.with_suffix(".json")
    record.write_text(record.read_text().replace('"crc32": ', '"crc32": 1'))


def test_second_call_reads_the_cache_by_reference(tmp_path: Path) -> None:
    files, cache = _files(tmp_path / "audio"), tmp_path / "cache"
    first = decode_files(files, 16000, cache, workers=2)
    assert first.decoded and sorted(first.decoded) == sorted(map(str, files)) and not first.cached
    assert len(_entries(cache)) == len(files)

    second = decode_files(files, 16000, cache, workers=2)
    assert second.cached == [str(f) for f in files] and not second.decoded and not second.failed
    for f in files:
        wave = second.waves[str(f)]
        assert isinstance(wave, CachedWave) and wave.dtype == np.float32 and len(wave) == 16000
        truth = load_audio(f, 16000).numpy()
        np.testing.assert_array_equal(np.asarray(wave), np.asarray(first.waves[str(f)]))
        np.testing.assert_array_equal(np.asarray(wave), truth)
        # A slice reads those samples only, as a writable array of their own.
        piece = wave[1000:1500]
        assert piece.flags.writeable and piece.dtype == np.float32
        np.testing.assert_array_equal(piece, truth[1000:1500])
        np.testing.assert_array_equal(wave[15900:17000], truth[15900:])
        assert wave[-1] == truth[-1] and len(wave[20000:30000]) == 0


def test_changed_and_added_files_invalidate_only_themselves(tmp_path: Path) -> None:
    files, cache = _files(tmp_path / "audio"), tmp_path / "cache"
    decode_files(files, 16000, cache)
    # Rewrite one file with other audio (new size and mtime) and add a new one.
    write_tone(files[1], seconds=1.5, sr=22050, freq=900.0)
    added = write_tone(tmp_path / "audio" / "new.wav", seconds=1.0, sr=8000)
    result = decode_files([*files, added], 16000, cache)
    assert sorted(result.decoded) == sorted([str(files[1]), str(added)])
    assert result.cached == [str(files[0]), str(files[2]), str(files[3])]
    assert len(result.waves[str(files[1])]) == 24000  # the new 1.5 s content, not the stale entry

    # Same mtime and size but touched to a new time: a new key too.
    stat = files[2].stat()
    os.utime(files[2], ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert decode_files(files, 16000, cache).decoded == [str(files[2])]
    # Another sample rate is another entry; the 16 kHz ones stay valid.
    assert len(decode_files(files, 8000, cache).decoded) == len(files)
    assert not decode_files(files, 16000, cache).decoded


def test_failures_are_reported_not_raised_and_retried(tmp_path: Path) -> None:
    files, cache = _files(tmp_path / "audio", n=2), tmp_path / "cache"
    broken = tmp_path / "audio" / "broken.wav"
    broken.write_bytes(b"RIFF not really")
    missing = tmp_path / "audio" / "missing.ogg"
    paths = [files[0], broken, missing, files[1]]
    result = decode_files(paths, 16000, cache)
    assert [p for p, _ in result.failed] == [str(broken), str(missing)]
    assert dict(result.failed)[str(missing)] == "no such file"
    assert dict(result.failed)[str(broken)]
    assert set(result.waves) == {str(files[0]), str(files[1])}
    assert len(_entries(cache)) == 2  # failures are not cached...

    write_tone(broken, seconds=1.0, sr=16000)  # ...so a repaired file just works next time
    again = decode_files(paths, 16000, cache)
    assert again.decoded == [str(broken)] and [p for p, _ in again.failed] == [str(missing)]


def test_truncated_files_fail_and_are_not_cached(tmp_path: Path) -> None:
    """Before: truncated AU, AIFF and Ogg files were decoded, cached and trained on as shorter songs."""
    folder = tmp_path / "audio"
    folder.mkdir()
    good = write_tone(folder / "good.wav", seconds=2.0, sr=22050)
    cut = []
    for name, kw in [("a.au", {"format": "AU", "subtype": "PCM_16"}), ("b.aiff", {}), ("c.ogg", {"format": "OGG"})]:
        path = write_tone(folder / name, seconds=2.0, sr=22050, **kw)
        path.write_bytes(path.read_bytes()[: int(path.stat().st_size * 0.6)])
        cut.append(path)
    result = decode_files([good, *cut], 16000, tmp_path / "cache")
    assert list(result.waves) == [str(good)]
    assert [p for p, _ in result.failed] == [str(p) for p in cut]
    assert all(reason.startswith("truncated") for _, reason in result.failed), result.failed
    assert len(_entries(tmp_path / "cache")) == 1


def test_damaged_entry_is_decoded_again(tmp_path: Path) -> None:
    files, cache = _files(tmp_path / "audio", n=2), tmp_path / "cache"
    decode_files(files, 16000, cache)
    entry = _entries(cache)[0]
    entry.write_bytes(entry.read_bytes()[:40])  # e.g. a disk filled up mid-write elsewhere
    result = decode_files(files, 16000, cache)
    assert len(result.decoded) == 1 and len(result.cached) == 1
    assert all(len(w) == 16000 for w in result.waves.values())


@pytest.mark.parametrize(
    "damage",
    [_nan_into, _truncate, _wrong_checksum, lambda e: e.with_suffix(".json").unlink(),
     lambda e: e.with_suffix(".json").write_text("{not json")],
    ids=["nan-samples", "truncated-npy", "wrong-checksum", "no-record", "garbled-record"],
)
@pytest.mark.parametrize("lazy", [True, False])
def test_damaged_entries_are_never_used(tmp_path: Path, damage, lazy: bool) -> None:
    """Before: NaN samples written into an entry were served as audio (and trained on)."""
    files, cache = _files(tmp_path / "audio", n=2), tmp_path / "cache"
    decode_files(files, 16000, cache)
    entry = _entry_of(cache, files[0])
    damage(entry)
    store = AudioCache(cache, 16000)
    key = store.key(files[0].absolute(), files[0].stat())
    assert store.read(key, lazy=lazy) is None

    result = decode_files(files, 16000, cache)
    assert result.decoded == [str(files[0])] and result.cached == [str(files[1])]
    truth = load_audio(files[0], 16000).numpy()
    np.testing.assert_array_equal(np.asarray(result.waves[str(files[0])]), truth)
    # The entry was replaced by a good one: the next run reads it from the cache.
    again = decode_files(files, 16000, cache)
    assert again.cached == [str(f) for f in files]
    np.testing.assert_array_equal(np.asarray(again.waves[str(files[0])]), truth)


def test_a_dataset_gets_the_true_audio_past_a_nan_entry(tmp_path: Path) -> None:
    """Before: a run on a folder whose cache entry held NaN trained on NaN and finished."""
    from genre_lab.data import FolderSource

    root, cache = tmp_path / "music", tmp_path / "cache"
    for genre, freq in (("a", 300.0), ("b", 900.0)):
        (root / genre).mkdir(parents=True)
        for i in range(4):
            write_tone(root / genre / f"{genre}{i}.wav", seconds=1.0, sr=8000, freq=freq + 10 * i)
    FolderSource(root, val_fraction=0.25, test_fraction=0.25, cache_dir=cache).load(8000)
    for entry in _entries(cache):
        _nan_into(entry)
    splits = FolderSource(root, val_fraction=0.25, test_fraction=0.25, cache_dir=cache).load(8000)
    waves = [w for split in splits.values() for w in split.waves]
    assert len(waves) == 8 and all(np.isfinite(w).all() for w in waves)
    truth = sorted(load_audio(p, 8000).numpy().tobytes() for p in root.rglob("*.wav"))
    assert sorted(np.asarray(w).tobytes() for w in waves) == truth


def test_non_finite_audio_is_never_cached(tmp_path: Path) -> None:
    store = AudioCache(tmp_path / "cache", 16000)
    with pytest.raises(ValueError, match="not finite"):
        store.write("ab" * 20, np.array([0.0, np.nan, 0.1], dtype=np.float32))
    assert not _entries(tmp_path / "cache")


def test_no_cache_dir_writes_nothing(tmp_path: Path) -> None:
    files = _files(tmp_path / "audio", n=2)
    result = decode_files(files, 16000, None)
    assert len(result.decoded) == 2 and all(type(w) is np.ndarray for w in result.waves.values())
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == sorted(f.name for f in files)


def test_an_entry_changed_after_its_check_is_never_read_as_audio(tmp_path: Path) -> None:
    """Samples overwritten in place after the scan verified them fail the read (before: a memory
    map served the new bytes); an entry replaced by the same samples (a concurrent run writing
    its copy) is verified again and served; one cut short or deleted fails naming the entry."""
    from genre_lab.audio.decode import AudioDecodeError

    files, cache = _files(tmp_path / "audio", n=4), tmp_path / "cache"
    decode_files(files, 16000, cache)
    waves = [decode_files(files, 16000, cache).waves[str(f)] for f in files]
    truth = [load_audio(f, 16000).numpy() for f in files]

    _nan_into(Path(waves[0].path))
    with pytest.raises(AudioDecodeError, match="changed on disk during the run"):
        waves[0][0:100]
    with pytest.raises(AudioDecodeError, match="changed on disk during the run"):
        np.asarray(waves[0])

    entry = Path(waves[1].path)
    replica = entry.with_name("replica.npy")
    replica.write_bytes(entry.read_bytes())
    os.replace(replica, entry)  # a new inode, the same samples
    np.testing.assert_array_equal(waves[1][200:300], truth[1][200:300])
    np.testing.assert_array_equal(waves[1][300:400], truth[1][300:400])  # verified once, then sliced

    os.truncate(waves[2].path, 100)
    with pytest.raises(AudioDecodeError, match="cache entry cut to 100 bytes during the run"):
        waves[2][0:10]
    os.unlink(waves[3].path)
    with pytest.raises(AudioDecodeError, match="cache entry cannot be read") as err:
        waves[3][0:10]
    assert err.value.path == waves[3].path
