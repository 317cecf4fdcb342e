"""Hostile audio files and dataset trees (issue 18, items 3 and 5): headers that declare absurd
rates or lengths, truncated files of every container libsndfile reads, file names that are not
UTF-8, the same recording on two sides of a split, and folder entries that are not files. Each
goes through the real entry points (`genre_lab.cli.predict.main`, the DataModule's scan) and must
give one clear line naming the file while everything else goes on."""

from __future__ import annotations

import json
import os
import shutil
import struct
import tracemalloc
from pathlib import Path

import pytest
import soundfile as sf
from mlflow import MlflowClient

from genre_lab.models import model_file as checkpoint
from genre_lab.audio.decode import AudioDecodeError, load_audio
from genre_lab.bench.tag import default_model
from genre_lab.data import FolderSource, GenreDataModule, ManifestSource
from genre_lab.data.synthetic import render_clip
from genre_lab.cli.predict import main as predict_main
from tests import training_procs

SR = 8000


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> str:
    """An untrained default model (what tagging costs and refuses does not depend on weights)."""
    path = tmp_path_factory.mktemp("model") / "model.ckpt"
    model = default_model()
    checkpoint.write(path, model.spec, model.state_dict())
    return str(path)


def _song(path: Path, seconds: float = 3.0, sr: int = 16000, genre: str = "rock", seed: int = 1, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), render_clip(genre, seed=seed, seconds=seconds, sample_rate=sr), sr, **kw)
    return path


def _rate_bomb(path: Path, rate: int = 1, seconds: int = 3 * 10**6) -> Path:
    """A 60-byte PCM WAV whose header declares `rate` Hz and `seconds` of audio (written by hand:
    no writer produces it). Decoded at 16 kHz, every stored 1 Hz frame asks for 16,000 samples."""
    data_bytes = rate * seconds * 2
    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate * 2, 2, 16)
    body = b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", data_bytes) + b"\x01\x00" * 8
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body) + data_bytes - 16) + body)
    return path


def _flac_declaring(path: Path, total_frames: int) -> Path:
    """A short real FLAC whose STREAMINFO claims `total_frames` (36 bits at byte 18)."""
    _song(path, seconds=1.0)
    raw = bytearray(path.read_bytes())
    assert raw[:4] == b"fLaC"
    word = int.from_bytes(raw[18:26], "big")
    raw[18:26] = ((word & ~((1 << 36) - 1)) | total_frames).to_bytes(8, "big")
    path.write_bytes(bytes(raw))
    return path


def _predict(model: str, paths: list[Path | str], out: Path, *extra: str) -> tuple[int, dict[str, dict]]:
    status = predict_main([model, *map(str, paths), "--format", "json", "--output", str(out), "--no-progress", *extra])
    rows = json.loads(out.read_text())
    return status, {r["path"]: r for r in rows}


# --------------------------------------------------------------- declared rate and duration


def test_a_header_declaring_1_hz_and_3e6_seconds_allocates_nothing(tmp_path: Path) -> None:
    bomb = _rate_bomb(tmp_path / "bomb.wav")
    assert bomb.stat().st_size == 60 and sf.info(str(bomb)).samplerate == 1
    tracemalloc.start()
    try:
        with pytest.raises(AudioDecodeError) as caught:
            load_audio(bomb, 16000)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2**20, f"{peak} bytes allocated for a refused header"
    assert str(bomb) in str(caught.value) and "1 Hz" in caught.value.reason and "\n" not in str(caught.value)
    # A rate above what audio interfaces record at is refused the same way.
    with pytest.raises(AudioDecodeError, match="sample rate of 5000000 Hz"):
        load_audio(_rate_bomb(tmp_path / "fast.wav", rate=5_000_000, seconds=1), 16000)


def test_predict_gives_header_bombs_one_error_row_and_tags_the_rest(model_file: str, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    bomb = _rate_bomb(folder / "bomb.wav")
    days = _flac_declaring(folder / "days.flac", 16000 * 3600 * 30)  # 30 hours declared, 1 s held
    song = _song(folder / "song.wav")
    status, rows = _predict(model_file, [folder], tmp_path / "tags.json")
    assert status == 1 and set(rows) == {str(bomb), str(days), str(song)}
    assert "header declares a sample rate of 1 Hz" in rows[str(bomb)]["error"]
    assert "header declares 108000 s of audio, longer than the limit of 14400 s" in rows[str(days)]["error"]
    assert rows[str(song)]["error"] is None and rows[str(song)]["genres"]

    # --max-seconds lowers the limit: the 3 s song is refused before decoding, then allowed.
    status, rows = _predict(model_file, [song], tmp_path / "short.json", "--max-seconds", "2")
    assert status == 1 and "longer than the limit of 2 s" in rows[str(song)]["error"]
    status, rows = _predict(model_file, [song], tmp_path / "long.json", "--max-seconds", "3.5")
    assert status == 0 and rows[str(song)]["duration"] == pytest.approx(3.0)
    status, rows = _predict(model_file, [song], tmp_path / "any.json", "--max-seconds", "inf")  # no limit
    assert status == 0 and rows[str(song)]["error"] is None
    assert predict_main([model_file, str(song), "--max-seconds", "0", "--no-progress"]) == 2


def test_dataset_scan_reports_header_bombs_and_goes_on(tmp_path: Path) -> None:
    root = tmp_path / "music"
    for g, genre in enumerate(("ambient", "drone")):
        for n in range(3):
            _song(root / genre / f"c{n}.wav", seconds=1.0, sr=SR, genre=("rock", "jazz")[g], seed=n)
    bomb = _rate_bomb(root / "ambient" / "bomb.wav")
    days = _flac_declaring(root / "drone" / "days.flac", 16000 * 3600 * 30)
    long = _song(root / "drone" / "long.wav", seconds=3.0, sr=SR, genre="jazz", seed=9)
    pipe = root / "ambient" / "pipe.wav"
    os.mkfifo(pipe)  # reported, never opened (a read would block the scan forever)
    dm = GenreDataModule(FolderSource(root, cache_dir=tmp_path / "cache", max_seconds=2.5),
                         sample_rate=SR, chunk_seconds=0.5)
    dm.setup()
    reasons = {e["path"]: e["reason"] for e in dm.scan_report()["unassigned"]["skipped"]}
    assert set(reasons) == {str(bomb), str(days), str(long), str(pipe)}
    assert reasons[str(pipe)] == "not a regular file: a named pipe"
    assert reasons[str(bomb)].startswith("header declares a sample rate of 1 Hz")
    assert "longer than the limit of 2.5 s (max_seconds)" in reasons[str(days)]
    assert "longer than the limit of 2.5 s" in reasons[str(long)]
    assert sum(len(s) for s in dm.splits.values()) == 6
    # Cached under a higher limit, then scanned under a lower one: refused from the cache too.
    FolderSource(root, cache_dir=tmp_path / "cache", max_seconds=10).load(SR)
    source = FolderSource(root, cache_dir=tmp_path / "cache", max_seconds=2.5)
    source.load(SR)
    assert "longer than the limit of 2.5 s" in dict(source.unassigned)[str(long)]
    with pytest.raises(ValueError, match="data.max_seconds must be a positive number"):
        FolderSource(root, max_seconds=0)


# ------------------------------------------------------------------------------- truncation

#: Containers whose truncation is checked from their own header, and the one refused outright.
CHECKED = ("W64", "RF64", "NIST", "VOC", "CAF", "AVR")
REFUSED = ("IRCAM", "PAF", "MAT5")


def test_truncated_files_of_every_container_are_one_error_row(model_file: str, tmp_path: Path) -> None:
    """Cut W64, RF64, NIST, VOC, CAF and AVR files (also named `.wav`: the container is read from
    the content) give an error naming the file; IRCAM, PAF and MATLAB files are refused even
    whole, as a cut copy of them cannot be told from a short one."""
    files, expected = [], {}
    for fmt in (*CHECKED, *REFUSED):
        whole = _song(tmp_path / f"{fmt}.whole.{fmt.lower()}", format=fmt, subtype="PCM_16" if fmt != "MAT5" else None)
        raw = whole.read_bytes()
        for name, data in ((f"{fmt}.cut.{fmt.lower()}", raw[:-100]), (f"{fmt}.cut.wav", raw[: len(raw) * 2 // 3])):
            (tmp_path / name).write_bytes(data)
            files.append(tmp_path / name)
            expected[str(tmp_path / name)] = "truncated" if fmt in CHECKED else f"the {fmt} container is not supported"
        files.append(whole)
        expected[str(whole)] = None if fmt in CHECKED else f"the {fmt} container is not supported"
    status, rows = _predict(model_file, files, tmp_path / "tags.json")
    assert status == 1 and set(rows) == set(expected)
    for path, fragment in expected.items():
        error = rows[path]["error"]
        if fragment is None:
            assert error is None and rows[path]["duration"] == pytest.approx(3.0), path
        else:
            assert error and fragment in error and "\n" not in error, (path, error)


# ------------------------------------------------------------------ names that are not UTF-8


def _tree_with_latin1_name(root: Path) -> Path:
    """Three clips in each of two genres, one of them named with Latin-1 bytes (`caf\\xe9.wav`):
    the OS gives Python a str with a surrogate escape for it."""
    for g, genre in enumerate(("ambient", "drone")):
        for n in range(3):
            _song(root / genre / f"c{n}.wav", seconds=1.0, sr=SR, genre=("rock", "jazz")[g], seed=n)
    # soundfile cannot open such a name for writing: write, then rename.
    plain = _song(root / "drone" / "plain.wav", seconds=1.0, sr=SR, genre="jazz", seed=7)
    odd = plain.rename(root / "drone" / os.fsdecode(b"caf\xe9.wav"))
    assert os.fsencode(odd).endswith(b"caf\xe9.wav")
    return odd


def test_a_file_name_that_is_not_utf8_is_scanned_cached_and_tagged(model_file: str, tmp_path: Path) -> None:
    root = tmp_path / "music"
    odd = _tree_with_latin1_name(root)
    for _ in range(2):  # decoded and cached, then read back from the cache
        dm = GenreDataModule(FolderSource(root, cache_dir=tmp_path / "cache"), sample_rate=SR, chunk_seconds=0.5)
        dm.setup()
        ids = {i for s in dm.splits.values() for i in s.ids}
        # Included, under an id any report can hold (its bytes spelt out).
        assert "drone/caf\\xe9.wav" in ids and len(ids) == 7
        assert not dm.unassigned
    assert len(list((tmp_path / "cache").rglob("*.npy"))) == 7
    # predict writes the name back as the bytes the OS gave.
    out = tmp_path / "tags.csv"
    assert predict_main([model_file, str(odd), "--format", "csv", "--output", str(out), "--no-progress"]) == 0
    assert b"caf\xe9.wav," in out.read_bytes()


@pytest.mark.slow
def test_train_cli_on_a_folder_with_a_name_that_is_not_utf8(tmp_path: Path, mlflow_uri: str) -> None:
    root = tmp_path / "music"
    _tree_with_latin1_name(root)
    args = [
        "data=folder", f"data.root={root}", f"data.cache_dir={tmp_path / 'cache'}", "data.sample_rate=8000",
        "data.chunk_seconds=0.5", "data.eval_hop_seconds=0.5", "data.val_fraction=0.2", "data.test_fraction=0.2",
        "model=cnn", "trainer.max_epochs=1", "callbacks.progress_bar=null", "throughput_seconds=0",
        f"paths.root_dir={tmp_path}",
    ]
    proc = training_procs.run(args, tmp_path / "run", mlflow_uri, 600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    client = MlflowClient(mlflow_uri)
    run = client.get_run(training_procs.only_run(client))
    assert run.info.status == "FINISHED" and "data/skipped_files" not in run.data.metrics  # logged when non-zero
    report = json.loads(Path(client.download_artifacts(run.info.run_id, "data/scan_report.json", str(tmp_path))).read_text())
    assert sum(split["clips"] for split in report.values()) == 7


# ------------------------------------------------------------------------ leakage checks


def _manifest_tree(tmp_path: Path) -> Path:
    """Two labels with one clip per split each, under `audio/`."""
    for label in ("fast", "slow"):
        for split in ("train", "val", "test"):
            _song(tmp_path / "audio" / f"{label}_{split}.wav", seconds=1.0, sr=SR,
                  genre="rock" if label == "fast" else "jazz", seed=len(split))
    return tmp_path / "audio"


def _manifest(tmp_path: Path, extra: list[tuple[str, str, str]]) -> Path:
    rows = [(f"audio/{label}_{split}.wav", label, split) for label in ("fast", "slow") for split in ("train", "val", "test")]
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,label,split\n" + "".join(f"{p},{label},{s}\n" for p, label, s in [*rows, *extra]))
    return manifest


@pytest.mark.parametrize("link", ["symlink", "hardlink"])
def test_the_same_file_in_two_splits_is_an_error_naming_both(tmp_path: Path, link: str) -> None:
    audio = _manifest_tree(tmp_path)
    twin = audio / "again.wav"
    (twin.symlink_to if link == "symlink" else twin.hardlink_to)(audio / "fast_train.wav")
    dm = GenreDataModule(ManifestSource(_manifest(tmp_path, [("audio/again.wav", "fast", "test")])),
                         sample_rate=SR, chunk_seconds=0.5)
    with pytest.raises(ValueError) as caught:
        dm.setup()
    message = str(caught.value)
    assert "'audio/fast_train.wav'" in message and "'audio/again.wav'" in message
    assert "train)" in message and "test)" in message and "same file" in message and "\n" not in message
    # The seeded split of a folder tree: a link into another genre is the same clip twice.
    root = tmp_path / "tree"
    for genre in ("fast", "slow"):
        for split in ("train", "val", "test"):
            (root / genre).mkdir(parents=True, exist_ok=True)
            shutil.copy(audio / f"{genre}_{split}.wav", root / genre / f"{split}.wav")
    other = root / "slow" / "borrowed.wav"
    (other.symlink_to if link == "symlink" else other.hardlink_to)(root / "fast" / "train.wav")
    with pytest.raises(ValueError, match=r"'fast/train.wav' .* and 'slow/borrowed.wav' .* are the same file"):
        GenreDataModule(FolderSource(root), sample_rate=SR, chunk_seconds=0.5).setup()


@pytest.mark.parametrize("cache", [True, False])
def test_identical_audio_under_two_names_is_a_warning_in_the_scan_report(
    tmp_path: Path, cache: bool, caplog: pytest.LogCaptureFixture
) -> None:
    audio = _manifest_tree(tmp_path)
    shutil.copy(audio / "slow_val.wav", audio / "copy.wav")  # a byte-for-byte copy
    data, rate = sf.read(str(audio / "fast_train.wav"), dtype="int16")
    sf.write(str(audio / "recoded.flac"), data, rate)  # same samples, another container
    manifest = _manifest(tmp_path, [("audio/copy.wav", "slow", "test"), ("audio/recoded.flac", "fast", "val")])
    source = ManifestSource(manifest, cache_dir=tmp_path / "cache" if cache else None)
    dm = GenreDataModule(source, sample_rate=SR, chunk_seconds=0.5)
    with caplog.at_level("WARNING"):
        dm.setup()  # a warning, not an error: the run goes on
    pairs = dm.scan_report()["identical_audio"]["pairs"]
    seen = {(p["first"]["clip"], p["first"]["split"], p["second"]["clip"], p["second"]["split"]) for p in pairs}
    assert seen == {("audio/fast_train.wav", "train", "audio/recoded.flac", "val"),
                    ("audio/slow_val.wav", "val", "audio/copy.wav", "test")}
    assert all(p["first"]["path"] != p["second"]["path"] for p in pairs)
    (line,) = [r.getMessage() for r in caplog.records if "identical audio" in r.getMessage()]
    assert "2 pair(s)" in line and str(audio / "copy.wav") in line
    # Ordinary datasets get no such entry: the report keeps its shape.
    clean = GenreDataModule(ManifestSource(_manifest(tmp_path, [])), sample_rate=SR, chunk_seconds=0.5)
    clean.setup()
    assert "identical_audio" not in clean.scan_report()


# ------------------------------------------------------------------- every entry gets a row


def test_predict_gives_every_entry_named_like_audio_a_row(model_file: str, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    song = _song(folder / "song.wav")
    nested = _song(folder / "album.flac" / "track.wav")  # a folder named like audio is searched
    dangling = folder / "gone.wav"
    dangling.symlink_to(tmp_path / "moved.wav")
    pipe = folder / "sub" / "pipe.ogg"
    pipe.parent.mkdir()
    os.mkfifo(pipe)  # opening it to read would block forever
    (folder / "notes.txt").write_text("not audio")
    status, rows = _predict(model_file, [folder], tmp_path / "tags.json")
    assert status == 1 and set(rows) == {str(song), str(nested), str(dangling), str(pipe)}
    assert rows[str(dangling)]["error"] == f"dangling symbolic link to {tmp_path / 'moved.wav'}"
    assert rows[str(pipe)]["error"] == "not a regular file: a named pipe"
    assert rows[str(song)]["error"] is None and rows[str(nested)]["error"] is None
