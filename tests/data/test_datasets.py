"""GTZAN, folder and CSV datasets on real audio files written into tmp_path."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.errors import ConfigCompositionException
from mlflow import MlflowClient
from omegaconf.errors import MissingMandatoryValue

from genre_lab.config import CONF_DIR, PROJECT_ROOT, compose
from genre_lab.audio.content import SILENCE_DBFS, rms_dbfs
from genre_lab.data import FolderSource, GenreDataModule, GTZANSource, ManifestSource, SyntheticSource
from genre_lab.data.datamodule import RandomChunks, TrackChunks
from genre_lab.data.files import LabelledFile
from genre_lab.data.gtzan import GTZAN_GENRES, filtered_split
from genre_lab.data.stratify import stratified_split
from genre_lab.data.synthetic import GENRES
from genre_lab.training.fit import _log_scan_report, build
from tests.conftest import write_tone

SR = 8000


def _corrupt(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"this is not audio " * 20)
    return path


def _tone(path: Path, seconds: float = 1.0, sr: int = SR, freq: float = 330.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_tone(path, seconds=seconds, sr=sr, freq=freq)


# ------------------------------------------------------------------------------------- GTZAN


def _gtzan_subset(root: Path, per_list: int = 3) -> tuple[set[str], str]:
    """Write the first `per_list` ids of every partition for three genres, alternating .wav
    and .au, plus the well-known corrupt jazz.00054.wav. Returns (readable ids, corrupt id)."""
    listed = filtered_split()
    ids = [i for split in ("train", "val", "test") for g in ("blues", "jazz", "rock")
           for i in [x for x in listed[split] if x.startswith(g + ".")][:per_list]]
    for n, clip_id in enumerate(ids):
        genre = clip_id.split(".")[0]
        _tone(root / genre / f"{clip_id}.{'wav' if n % 2 else 'au'}", freq=200.0 + 10 * n)
    corrupt = "jazz.00054"
    assert corrupt in listed["train"] and corrupt not in ids
    _corrupt(root / "jazz" / f"{corrupt}.wav")
    return set(ids), corrupt


def test_gtzan_filtered_split_is_applied_exactly(tmp_path: Path) -> None:
    root = tmp_path / "gtzan"
    present, corrupt = _gtzan_subset(root)
    # A clip the filtered split leaves out (not in any list) and a stray file: both unused.
    listed = filtered_split()
    excluded = next(f"jazz.{n:05d}" for n in range(100) if f"jazz.{n:05d}" not in {i for v in listed.values() for i in v})
    _tone(root / "jazz" / f"{excluded}.wav")
    (root / "rock" / "notes.txt").write_text("not audio")

    source = GTZANSource(root, cache_dir=tmp_path / "cache")
    splits = source.load(SR)
    assert source.classes == list(GENRES) == list(GTZAN_GENRES)

    corrupt_path = str(root.resolve() / "jazz" / f"{corrupt}.wav")
    reported = [name for s in splits.values() for name, _ in s.skipped]
    assert reported.count(corrupt_path) == 1
    for split, audio in splits.items():
        expected = [i for i in listed[split] if i in present]
        assert audio.ids == expected, split
        assert len(audio) == len(expected) == 9  # 3 genres x 3 ids
        assert audio.labels == [GTZAN_GENRES.index(i.split(".")[0]) for i in expected]
        assert all(len(w) == SR for w in audio.waves)
        missing = {name for name, _ in audio.skipped} - {corrupt_path}
        # Every listed id that is absent is reported, by name, in its own partition.
        assert missing == {f"{i.split('.')[0]}/{i}.wav" for i in listed[split] if i not in present and i != corrupt}
    reason = dict(splits["train"].skipped)[corrupt_path]  # reported where the list puts it
    assert reason and "listed in the filtered" not in reason
    assert excluded not in {i for s in splits.values() for i in s.ids}

    # Three of the ten genres are present: the others could be neither learnt nor measured.
    dm = GenreDataModule(source, sample_rate=SR, chunk_seconds=0.5)
    with pytest.raises(ValueError, match=r"class\(es\) 'classical', 'country', .*'reggae' have no usable clip in any split"):
        dm.setup()


def test_gtzan_random_split_original_au_layout(tmp_path: Path) -> None:
    # The original tarball unpacks to genres/<genre>/<genre>.NNNNN.au
    root = tmp_path / "download"
    for g, genre in enumerate(("classical", "metal", "pop")):
        for n in range(5):
            _tone(root / "genres" / genre / f"{genre}.{n:05d}.au", freq=150.0 + 40 * g + 5 * n)
    # Both formats of one id: used once.
    _tone(root / "genres" / "pop" / "pop.00000.wav")

    def assignment(seed: int) -> dict[str, list[str]]:
        splits = GTZANSource(root, split="random", seed=seed, val_fraction=0.2, test_fraction=0.2).load(SR)
        assert all(not s.skipped for s in splits.values())
        return {name: s.ids for name, s in splits.items()}

    first = assignment(seed=0)
    for ids in first.values():
        assert len(ids) == len(set(ids))
    assert sorted(i for ids in first.values() for i in ids) == sorted(f"{g}.{n:05d}" for g in ("classical", "metal", "pop") for n in range(5))
    # Stratified: every genre has 3 train, 1 val and 1 test clip.
    for genre in ("classical", "metal", "pop"):
        assert [sum(i.startswith(genre) for i in first[s]) for s in ("train", "val", "test")] == [3, 1, 1]
    assert assignment(seed=0) == first
    assert assignment(seed=1) != first


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"root": None}, "data.root is not set"),
        ({"root": "/no/such/gtzan"}, r"data.root=/no/such/gtzan does not exist"),
        ({"root": "EMPTY"}, r"data.root=.* holds no GTZAN files"),
        ({"root": "EMPTY", "split": "artist"}, "data.split must be one of filtered, random"),
        ({"root": "EMPTY", "split": "random", "test_fraction": 1.5}, "data.test_fraction"),
    ],
)
def test_gtzan_bad_settings_name_the_setting(tmp_path: Path, kwargs: dict, match: str) -> None:
    empty = tmp_path / "empty"
    _tone(empty / "misc" / "song.wav")
    if kwargs["root"] == "EMPTY":
        kwargs = {**kwargs, "root": empty}
    with pytest.raises(ValueError, match=match):
        GTZANSource(**kwargs).load(SR)


# ------------------------------------------------------------------------------------ folder


def _folder_tree(root: Path) -> tuple[list[str], Path]:
    """Three genres of six clips in mixed formats and rates, nested folders, junk, one corrupt
    file and an empty genre folder. Returns (ids of the good clips, corrupt file)."""
    good = []
    formats = ["wav", "flac", "ogg", "au", "wav", "flac"]
    for g, genre in enumerate(("ambient", "drone", "noise")):
        for n, ext in enumerate(formats):
            rel = f"{genre}/{'live/' if n == 5 else ''}clip{n}.{ext}"
            _tone(root / rel, sr=22050 if n % 2 else SR, freq=100.0 + 50 * g + 7 * n)
            good.append(rel)
    _tone(root / "ambient" / ".hidden.wav")
    (root / "drone" / "cover.jpg").write_bytes(b"\xff\xd8\xff")
    (root / "empty").mkdir()
    return good, _corrupt(root / "noise" / "broken.mp3")


def test_folder_dataset_mixed_formats(tmp_path: Path) -> None:
    root = tmp_path / "music"
    good, corrupt = _folder_tree(root)
    source = FolderSource(root, val_fraction=0.2, test_fraction=0.2, cache_dir=tmp_path / "cache")
    assert source.classes == ["ambient", "drone", "noise"]
    splits = source.load(16000)

    ids = [i for s in splits.values() for i in s.ids]
    assert sorted(ids) == sorted(good)
    # noise has a 7th (broken) file: screened out before the split, reported with its reason.
    assert all(not s.skipped for s in splits.values())
    assert [p for p, _ in source.unassigned] == [str(corrupt.resolve())]
    assert "broken.mp3" in source.unassigned[0][0] and source.unassigned[0][1]
    for s in splits.values():
        assert all(len(w) == 16000 for w in s.waves)  # 1 s resampled from 8 and 22.05 kHz
        assert all(i.split("/")[0] == source.classes[label] for i, label in zip(s.ids, s.labels))
    for genre in ("ambient", "drone", "noise"):
        assert [sum(i.startswith(genre) for i in splits[s].ids) for s in ("train", "val", "test")] == [4, 1, 1]


def test_folder_without_genre_subfolders_is_an_error(tmp_path: Path) -> None:
    _tone(tmp_path / "flat" / "song.wav")
    with pytest.raises(ValueError, match=r"data.root=.*flat holds no audio in genre subfolders"):
        FolderSource(tmp_path / "flat").classes


# --------------------------------------------------------------------------------------- CSV


def test_csv_manifest_with_and_without_split_column(tmp_path: Path) -> None:
    audio = tmp_path / "audio"
    rows = []
    for n in range(9):
        _tone(audio / f"t{n}.wav", freq=200.0 + 20 * n)
        rows.append((f"../audio/t{n}.wav", ("fast", "slow", "mid")[n % 3], ("train", "valid", "test")[n // 3]))
    elsewhere = _tone(tmp_path / "other" / "abs.flac")  # an absolute path works too
    rows.append((str(elsewhere), "fast", "train"))
    rows.append(("../audio/gone.wav", "slow", "train"))  # listed, missing: skipped, not fatal
    manifest = tmp_path / "lists" / "split.csv"
    manifest.parent.mkdir()
    manifest.write_text("path,label,split\n" + "".join(f"{p},{label},{s}\n" for p, label, s in rows))
    source = ManifestSource(manifest)
    assert source.classes == ["fast", "mid", "slow"]
    splits = source.load(SR)
    assert splits["train"].ids == ["../audio/t0.wav", "../audio/t1.wav", "../audio/t2.wav", str(elsewhere)]
    assert splits["val"].ids == ["../audio/t3.wav", "../audio/t4.wav", "../audio/t5.wav"]
    assert splits["train"].labels == [0, 2, 1, 0]
    assert splits["train"].skipped == [(str((tmp_path / "audio" / "gone.wav").resolve()), "no such file")]

    plain = tmp_path / "plain.csv"
    plain.write_text("".join(f"audio/t{n}.wav,{label}\n" for n, (_, label, _) in enumerate(rows[:9])))
    splits = ManifestSource(plain, val_fraction=0.34, test_fraction=0.34).load(SR)
    for split in splits.values():
        assert sorted(split.labels) == [0, 1, 2]  # stratified: one of each label per split


@pytest.mark.parametrize(
    "text, match",
    [
        ("a.wav\n", "line 1: expected path,label"),
        ("a.wav,x,train\nb.wav,y\n", "line 2: every row needs a split column"),
        ("a.wav,x,holdout\n", "line 1: unknown split 'holdout'"),
        ("a.wav,x\nb.wav,y\n./a.wav,z\n", "line 3: ./a.wav is already listed on line 1"),
        ("path,label\n\n", "lists no files"),
    ],
)
def test_csv_manifest_errors_name_the_line(tmp_path: Path, text: str, match: str) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text(text)
    with pytest.raises(ValueError, match=rf"data.manifest=.*m.csv.*{match}"):
        ManifestSource(manifest).load(SR)


# ------------------------------------------------------------------------ configs end to end


def test_data_configs_build_and_fail_early(tmp_path: Path) -> None:
    root = tmp_path / "music"
    _folder_tree(root)
    cache = f"data.cache_dir={tmp_path / 'cache'}"
    cfg = compose(["data=folder", f"data.root={root}", "data.chunk_seconds=0.5", cache], output_dir=tmp_path / "out")
    datamodule, model = build(cfg)
    assert datamodule.classes == model.classes == ["ambient", "drone", "noise"]
    assert datamodule.source.root == str(root)

    with pytest.raises(ValueError, match="data.root=/no/such/dir does not exist"):
        build(compose(["data=folder", "data.root=/no/such/dir"], output_dir=tmp_path / "out"))
    with pytest.raises(ValueError, match=r"data.chunk_seconds=5 is longer than clip"):
        build(compose(["data=folder", f"data.root={root}", "data.chunk_seconds=5", "data.short_clips=error", cache],
                      output_dir=tmp_path / "out"))
    with pytest.raises(ValueError, match=r"dataset 'folder' has no usable clips in split 'train' \(19 file\(s\) skipped, 18 of them shorter than "
                       r"data.chunk_seconds=5"):
        build(compose(["data=folder", f"data.root={root}", "data.chunk_seconds=5", cache], output_dir=tmp_path / "out"))
    with pytest.raises(MissingMandatoryValue, match="data.root"):
        build(compose(["data=gtzan"], output_dir=tmp_path / "out"))
    with pytest.raises(MissingMandatoryValue, match="data.manifest"):
        build(compose(["data=csv"], output_dir=tmp_path / "out"))
    with pytest.raises(ConfigCompositionException, match="rooot"):
        compose(["data=folder", "data.rooot=/x"])


def test_gtzan_experiment_config_composes() -> None:
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = hydra_compose(config_name="train", overrides=["experiment=gtzan_filtered", "data.root=/data/gtzan"],
                            return_hydra_config=True)
    assert cfg.hydra.sweeper.params.model == "cnn,rnn,crnn"
    assert str(cfg.hydra.mode) == "RunMode.MULTIRUN"
    assert cfg.data.source._target_ == "genre_lab.data.GTZANSource"
    assert cfg.data.source.root == "/data/gtzan" and cfg.data.source.split == "filtered"
    assert cfg.logger.mlflow.experiment_name == "gtzan_filtered"


@pytest.mark.slow
def test_train_cli_on_a_folder_logs_the_scan_report(tmp_path: Path, mlflow_uri: str) -> None:
    root = tmp_path / "music"
    _, corrupt = _folder_tree(root)
    args = [
        "data=folder", f"data.root={root}", f"data.cache_dir={tmp_path / 'cache'}", "data.sample_rate=8000",
        "data.chunk_seconds=0.5", "data.eval_hop_seconds=0.5", "data.val_fraction=0.2", "data.test_fraction=0.2",
        "model=cnn", "trainer.max_epochs=1", "callbacks.progress_bar=null", "throughput_seconds=0",
        f"paths.root_dir={tmp_path}", f"hydra.run.dir={tmp_path / 'run'}",
    ]
    proc = subprocess.run(
        [sys.executable, "-m", "genre_lab.cli.train", *args], cwd=PROJECT_ROOT,
        env={**os.environ, "MLFLOW_TRACKING_URI": mlflow_uri}, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    client = MlflowClient(mlflow_uri)
    (run,) = client.search_runs([client.get_experiment_by_name("genre_lab").experiment_id])
    assert run.info.status == "FINISHED" and run.data.tags["dataset"] == "folder"
    assert run.data.metrics["data/skipped_files"] == 1
    report = json.loads(Path(client.download_artifacts(run.info.run_id, "data/scan_report.json", str(tmp_path))).read_text())
    skipped = [entry for split in report.values() for entry in split["skipped"]]
    assert [e["path"] for e in skipped] == [str(corrupt.resolve())] and skipped[0]["reason"]
    assert sum(split["clips"] for split in report.values()) == 18
    assert np.isfinite(run.data.metrics["test/track_acc"])


# ----------------------------------------- every candidate is screened before the split (#8)


def _level(path: Path, dbfs: float, seconds: float = 1.0, sr: int = SR) -> Path:
    """A real audio file whose RMS level is `dbfs` (a 330 Hz sine; -inf: digital silence)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * sr)) / sr
    amplitude = 0.0 if dbfs == -np.inf else np.sqrt(2) * 10 ** (dbfs / 20)
    subtype = "FLOAT" if path.suffix == ".wav" else None  # exact low levels; FLAC has no float
    sf.write(str(path), amplitude * np.sin(2 * np.pi * 330.0 * t), sr, subtype=subtype)
    return path


def _genres(root: Path, per_genre: int = 4) -> list[LabelledFile]:
    """`per_genre` one-second tones in each of three genre folders, as the folder source labels them."""
    files = []
    for g, genre in enumerate(("ambient", "drone", "noise")):
        for n in range(per_genre):
            path = _tone(root / genre / f"c{n}.wav", freq=150.0 + 60 * g + 9 * n)
            files.append(LabelledFile(path.resolve(), g, f"{genre}/c{n}.wav"))
    return files


def _labels_per_split(splits: dict) -> dict[str, list[int]]:
    return {name: sorted(set(s.labels)) for name, s in splits.items()}


def test_folder_split_is_made_from_usable_files_only(tmp_path: Path) -> None:
    root = tmp_path / "music"
    files = _genres(root)
    # The drone file a split of every candidate would send to validation does not decode.
    old_val = stratified_split(files, 0.2, 0.2, seed=0)["val"]
    broken = next(f for f in old_val if f.clip_id.startswith("drone/"))
    _corrupt(broken.path)
    source = FolderSource(root, val_fraction=0.2, test_fraction=0.2)
    splits = source.load(SR)
    # drone keeps a clip in every split: the split was made from its three usable files.
    assert _labels_per_split(splits) == {"train": [0, 1, 2], "val": [0, 1, 2], "test": [0, 1, 2]}
    assert [p for p, _ in source.unassigned] == [str(broken.path)]
    dm = GenreDataModule(source, sample_rate=SR, chunk_seconds=0.5)
    dm.setup()
    assert dm.scan_report()["unassigned"]["skipped"][0]["path"] == str(broken.path)


def test_csv_split_is_made_from_usable_files_only(tmp_path: Path) -> None:
    files = _genres(tmp_path / "audio")
    old_val = stratified_split(files, 0.2, 0.2, seed=0)["val"]
    silent = next(f for f in old_val if f.clip_id.startswith("noise/"))
    _level(silent.path, -np.inf)
    manifest = tmp_path / "m.csv"
    manifest.write_text("".join(f"audio/{f.clip_id},{f.clip_id.split('/')[0]}\n" for f in files))
    source = ManifestSource(manifest, val_fraction=0.2, test_fraction=0.2)
    splits = source.load(SR)
    assert _labels_per_split(splits) == {"train": [0, 1, 2], "val": [0, 1, 2], "test": [0, 1, 2]}
    ((path, reason),) = source.unassigned
    assert path == str(silent.path) and reason.startswith("silent")


def test_class_left_without_validation_clip_is_an_error_naming_it(tmp_path: Path) -> None:
    root = tmp_path / "music"
    _genres(root, per_genre=3)
    _corrupt(root / "drone" / "c1.wav")  # two usable drone clips: both go to training
    dm = GenreDataModule(FolderSource(root), sample_rate=SR, chunk_seconds=0.5)
    with pytest.raises(ValueError, match=r"class 'drone' has no usable clip in split\(s\) val, test \(usable clips: train 2"):
        dm.setup()
    # A fixed split (a manifest's split column) that leaves a class out of test: the same error.
    rows = [("music/ambient/c0.wav", "ambient", "train"), ("music/ambient/c1.wav", "ambient", "val"),
            ("music/ambient/c2.wav", "ambient", "test"), ("music/noise/c0.wav", "noise", "train"),
            ("music/noise/c1.wav", "noise", "val"), ("music/noise/c2.wav", "noise", "train")]
    manifest = tmp_path / "m.csv"
    manifest.write_text("".join(",".join(row) + "\n" for row in rows))
    dm = GenreDataModule(ManifestSource(manifest), sample_rate=SR, chunk_seconds=0.5)
    with pytest.raises(ValueError, match=r"class 'noise' has no usable clip in split\(s\) test"):
        dm.setup()


def test_silent_files_are_left_out_like_tagging_refuses_them(tmp_path: Path) -> None:
    root = tmp_path / "music"
    _genres(root)
    silent = _level(root / "ambient" / "zeros.wav", -np.inf)
    below = _level(root / "drone" / "hum.wav", SILENCE_DBFS - 5)
    quiet = _level(root / "noise" / "quiet.wav", SILENCE_DBFS + 15)  # quiet, not silent: kept
    source = FolderSource(root)
    splits = source.load(SR)
    reasons = dict(source.unassigned)
    assert set(reasons) == {str(silent.resolve()), str(below.resolve())}
    assert "silent: RMS -inf dBFS" in reasons[str(silent.resolve())]
    assert f"silent: RMS {SILENCE_DBFS - 5:.0f} dBFS" in reasons[str(below.resolve())]
    assert "noise/quiet.wav" in {i for s in splits.values() for i in s.ids}
    assert rms_dbfs(sf.read(str(quiet))[0]) > SILENCE_DBFS


def test_dangling_symlinks_are_reported(tmp_path: Path) -> None:
    root = tmp_path / "music"
    _genres(root)
    link = root / "drone" / "gone.wav"
    link.symlink_to(tmp_path / "moved" / "gone.wav")
    source = FolderSource(root)
    source.load(SR)
    assert dict(source.unassigned) == {str(link): f"dangling symbolic link to {tmp_path / 'moved' / 'gone.wav'}"}
    # A manifest row naming a dangling link, and a GTZAN clip that is one.
    manifest = tmp_path / "m.csv"
    manifest.write_text("music/drone/gone.wav,drone,train\n" + "".join(
        f"music/{g}/c{n}.wav,{g},{s}\n" for g in ("ambient", "drone") for n, s in enumerate(("train", "val", "test"))))
    splits = ManifestSource(manifest).load(SR)
    assert splits["train"].skipped == [(str(link), f"dangling symbolic link to {tmp_path / 'moved' / 'gone.wav'}")]
    gtzan = tmp_path / "gtzan"
    for n in range(3):
        _tone(gtzan / "blues" / f"blues.{n:05d}.wav")
    (gtzan / "blues" / "blues.00003.wav").symlink_to(tmp_path / "nowhere.wav")
    source = GTZANSource(gtzan, split="random")
    source.load(SR)
    assert [reason for _, reason in source.unassigned] == [f"dangling symbolic link to {tmp_path / 'nowhere.wav'}"]


def test_short_clip_is_skipped_padded_or_an_error_as_configured(tmp_path: Path) -> None:
    root = tmp_path / "music"
    _genres(root)
    short = _tone(root / "noise" / "blip.wav", seconds=0.3)
    dm = GenreDataModule(FolderSource(root), sample_rate=SR, chunk_seconds=0.5)
    dm.setup()  # default skip: the run goes on without it
    (entry,) = dm.scan_report()["unassigned"]["skipped"]
    assert entry["path"] == str(short.resolve()) and entry["reason"].startswith("shorter than one chunk: 0.30 s")

    dm = GenreDataModule(FolderSource(root), sample_rate=SR, chunk_seconds=0.5, short_clips="pad")
    dm.setup()
    where, split = next((name, s) for name, s in dm.splits.items() if "noise/blip.wav" in s.ids)
    i = split.ids.index("noise/blip.wav")
    if where == "train":
        x = RandomChunks(split, dm.chunk)[i][0]
    else:
        windows = TrackChunks(split, dm.chunk, dm.hop)
        x = windows[next(n for n, (clip, _) in enumerate(windows.index) if clip == i)][0]
    # 0.3 s of tone, then zeros up to the 0.5 s window (as the tagger pads a short song).
    assert x.shape == (4000,) and torch.count_nonzero(x[:2400]) > 2000 and torch.all(x[2400:] == 0)

    dm = GenreDataModule(FolderSource(root), sample_rate=SR, chunk_seconds=0.5, short_clips="error")
    with pytest.raises(ValueError, match=r"data.chunk_seconds=0.5 is longer than clip 'noise/blip.wav' \(0.30 s\)"):
        dm.setup()


def test_scan_report_lists_every_unused_file_with_its_reason(tmp_path: Path, mlflow_uri: str) -> None:
    root = tmp_path / "music"
    _genres(root)
    unused = {
        _corrupt(root / "ambient" / "broken.mp3"): "",
        _level(root / "drone" / "silence.flac", -np.inf): "silent",
        _tone(root / "noise" / "blip.wav", seconds=0.2): "shorter than one chunk",
        _tone(root / "loose.wav"): "outside the genre subfolders",
    }
    link = root / "noise" / "gone.ogg"
    link.symlink_to(tmp_path / "gone.ogg")
    dm = GenreDataModule(FolderSource(root, cache_dir=tmp_path / "cache"), sample_rate=SR, chunk_seconds=0.5)
    dm.setup()
    client = MlflowClient(mlflow_uri)
    run_id = client.create_run(client.create_experiment("scan")).info.run_id
    _log_scan_report(client, run_id, dm)
    report = json.loads(Path(client.download_artifacts(run_id, "data/scan_report.json", str(tmp_path))).read_text())
    reasons = {e["path"]: e["reason"] for part in report.values() for e in part["skipped"]}
    expected = {str(p.resolve()): why for p, why in unused.items()} | {str(link): "dangling symbolic link"}
    assert set(reasons) == set(expected)
    assert all(reasons[p].startswith(why) and reasons[p] for p, why in expected.items())
    assert client.get_run(run_id).data.metrics["data/skipped_files"] == 5
    assert sum(part["clips"] for part in report.values()) == 12


@pytest.mark.parametrize("dataset", ["folder", "csv", "gtzan", "synthetic"])
def test_data_config_keys_are_exactly_the_declared_settings(dataset: str) -> None:
    """Every top-level data.* key is a DataModule parameter or a setting its source declares,
    and every declared setting is in the config (so each can be overridden by name)."""
    cfg = compose([f"data={dataset}"])
    module_params = set(inspect.signature(GenreDataModule).parameters) - {"source", "dataset_settings"}
    source_cls = {"folder": FolderSource, "csv": ManifestSource, "gtzan": GTZANSource, "synthetic": SyntheticSource}[dataset]
    assert cfg.data.source._target_ == f"genre_lab.data.{source_cls.__name__}"
    keys = set(cfg.data) - {"_target_", "source"}
    assert keys == module_params | set(source_cls.settings)
