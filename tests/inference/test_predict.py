"""Tagging songs and folders: the predict CLI on good and broken files, and the Tagger API
loading a real trained model from a checkpoint, a run id, a runs:/ and a models:/ URI."""

from __future__ import annotations

import csv
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pytest
import soundfile as sf
import torch

from genre_lab import Tagger
from genre_lab.audio.decode import AudioDecodeError
from genre_lab.config import PROJECT_ROOT
from genre_lab.data.synthetic import render_clip
from genre_lab.inference import TaggingError, resolve
from genre_lab.inference.tag_files import collect_audio_files
from genre_lab.training.lightning_module import CONFIG_KEY
from genre_lab.cli.predict import main as predict_main
from genre_lab.training.fit import TrainResult
from tests.training_procs import train_in_own_store

SR = 22050  # files are written at another rate than the model's 16 kHz: tagging resamples


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[TrainResult, str]:
    """A CNN trained for two epochs on tiny synthetic data, tracked in its own store."""
    result, uri = train_in_own_store(tmp_path_factory.mktemp("predict_model"),
                                     ["model=cnn", "trainer.max_epochs=2", "throughput_seconds=0"])
    assert result.best_checkpoint
    return result, uri


def _mp4_bytes() -> bytes:
    """An ISO-BMFF (MP4) file: ftyp, a movie header and a media data box, as video files start."""
    def box(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", 8 + len(payload)) + kind + payload

    mvhd = box(b"mvhd", bytes(12) + struct.pack(">II", 1000, 3000) + bytes(80))
    payload = np.random.default_rng(0).integers(0, 256, 20000, dtype=np.uint8).tobytes()
    return box(b"ftyp", b"isom" + struct.pack(">I", 512) + b"isomiso2avc1mp41") + box(b"moov", mvhd) + box(b"mdat", payload)


#: Bad file name -> a fragment its error must contain.
BAD = {
    "empty.wav": "empty",
    "cut.wav": "truncated",
    "notes.mp3": "not a recognised audio format",
    "movie.mp3": "MP4",
    "silence.flac": "silent audio",
}
#: Good file name -> duration in seconds.
GOOD = {"rock.wav": 3.0, "jazz.flac": 0.7, "deep/nested/metal.ogg": 7.0, "deep/pop.mp3": 3.0}


@pytest.fixture(scope="module")
def music(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("music")
    for name, seconds in GOOD.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        kw = {"format": "OGG", "subtype": "VORBIS"} if name.endswith(".ogg") else {}
        sf.write(str(path), render_clip(Path(name).stem, seed=7, seconds=seconds, sample_rate=SR), SR, **kw)
    (folder / "empty.wav").write_bytes(b"")
    whole = (folder / "rock.wav").read_bytes()
    (folder / "cut.wav").write_bytes(whole[: len(whole) // 2])
    (folder / "notes.mp3").write_text("shopping list: not audio\n" * 50)
    (folder / "movie.mp3").write_bytes(_mp4_bytes())
    sf.write(str(folder / "silence.flac"), np.zeros(2 * SR), SR)
    (folder / "README.txt").write_text("not picked up from a folder: no audio ending")
    # Hidden files and macOS resource forks (AppleDouble magic) are skipped in folders, as
    # datasets skip them. (Beside an .mp3, a fork also breaks libsndfile's reading of the mp3.)
    (folder / "deep" / "nested" / "._metal.ogg").write_bytes(b"\x00\x05\x16\x07" + bytes(200))
    (folder / ".trash").mkdir()
    sf.write(str(folder / ".trash" / "old.wav"), render_clip("rock", seed=1, seconds=1.0, sample_rate=SR), SR)
    return folder


def _check_genres(genres: list[dict], classes: list[str], k: int) -> None:
    assert len(genres) == k
    assert all(g["label"] in classes for g in genres)
    probs = [g["probability"] for g in genres]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6


@pytest.mark.slow
def test_cli_tags_folder_and_reports_each_bad_file(trained, music: Path, tmp_path: Path) -> None:
    result, _ = trained
    out = tmp_path / "tags.json"
    proc = subprocess.run(
        [sys.executable, "-m", "genre_lab.cli.predict", result.best_checkpoint, str(music),
         "--format", "json", "--output", str(out), "--top-k", "2", "--segments", "2"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300, env={**os.environ},
    )
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert f"{len(BAD)} of {len(BAD) + len(GOOD)} file(s) could not be tagged" in proc.stderr
    rows = {Path(r["path"]).relative_to(music).as_posix(): r for r in json.loads(out.read_text())}
    assert set(rows) == set(BAD) | set(GOOD)  # README.txt skipped, nested folders searched

    for name, fragment in BAD.items():
        assert fragment in rows[name]["error"], rows[name]
        assert rows[name]["genres"] == []
    tagger = Tagger.load(result.best_checkpoint)
    for name, seconds in GOOD.items():
        row = rows[name]
        assert row["error"] is None
        _check_genres(row["genres"], result.classes, 2)
        assert row["duration"] == pytest.approx(seconds, abs=0.06)
        # One timeline entry per started 2 s span, the last one ending with the song.
        assert len(row["segments"]) == int(np.ceil(row["duration"] / 2))
        assert row["segments"][-1]["end"] == pytest.approx(row["duration"])
        for seg in row["segments"]:
            _check_genres(seg["genres"], result.classes, 2)
        # The CLI and the Python API agree.
        api = tagger.tag(music / name, k=2)
        assert [g.label for g in api.genres] == [g["label"] for g in row["genres"]]
        assert api.genres[0].probability == pytest.approx(row["genres"][0]["probability"], abs=1e-5)


def test_output_is_never_overwritten_unless_asked(trained, music: Path, tmp_path: Path, capsys) -> None:
    result, _ = trained
    out = tmp_path / "tags.csv"
    out.write_text("keep me")
    good = [str(music / "rock.wav"), str(music / "deep")]
    assert predict_main([result.best_checkpoint, *good, "--format", "csv", "--output", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert out.read_text() == "keep me"

    assert predict_main([result.best_checkpoint, *good, "--format", "csv", "--output", str(out), "--overwrite"]) == 0
    rows = list(csv.DictReader(out.open()))
    assert [Path(r["path"]).name for r in rows] == ["rock.wav", "metal.ogg", "pop.mp3"]
    assert all(r["scope"] == "track" and r["label_1"] in result.classes and r["error"] == "" for r in rows)

    assert predict_main(["no/such/model.ckpt", str(music)]) == 2
    assert "not an existing checkpoint file" in capsys.readouterr().err

    # Bad options are refused up front, naming the option.
    assert predict_main([result.best_checkpoint, *good, "--batch-size", "0"]) == 2
    assert "--batch-size must be >= 1" in capsys.readouterr().err
    assert predict_main([result.best_checkpoint, *good, "--output", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--output" in err and "a folder" in err


def test_default_table_mixes_relative_and_absolute_paths(trained, music: Path, capsys, monkeypatch) -> None:
    """`predict ckpt song.wav /abs/folder` prints the table (relative and absolute paths mixed)."""
    monkeypatch.chdir(music)
    monkeypatch.setenv("COLUMNS", "200")
    assert predict_main([trained[0].best_checkpoint, "rock.wav", str(music / "deep"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "Genres of 3 file(s)" in out and f"under {music}" in out
    for name in ("rock.wav", "deep/nested/metal.ogg", "deep/pop.mp3"):
        assert name in out


def test_unusable_checkpoints_exit_2_naming_the_file(trained, music: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "1000")  # one line per message: rich would wrap long paths
    state = torch.load(trained[0].best_checkpoint, map_location="cpu", weights_only=True)
    config = state[CONFIG_KEY]

    def broken(name: str, **changes: object) -> Path:
        path = tmp_path / name
        torch.save({"state_dict": state["state_dict"], CONFIG_KEY: {**config, **changes}}, path)
        return path

    no_classes = broken("no_classes.ckpt")
    torch.save({"state_dict": {}, CONFIG_KEY: {k: v for k, v in config.items() if k != "classes"}}, no_classes)
    cases = {
        no_classes: "classes must be a non-empty list",
        broken("unknown.ckpt", features={**config["features"], "frontend": {"_target_": "genre_lab.features.NoSuchFrontEnd"}}):
            "is not allowed",
        broken("foreign.ckpt", model={**config["model"], "backbone": {"_target_": "os.system", "_args_": ["true"]}}):
            "is not allowed",
        broken("wrong_classes.ckpt", classes=[*config["classes"], "polka"]): "size mismatch",
    }
    for path, reason in cases.items():
        assert predict_main([str(path), str(music / "rock.wav")]) == 2, path
        err = capsys.readouterr().err
        assert f"cannot rebuild the model from checkpoint {path}" in err and reason in err, err

    no_rate = broken("no_rate.ckpt", data={})
    assert predict_main([str(no_rate), str(music / "rock.wav")]) == 2
    err = capsys.readouterr().err
    assert f"cannot rebuild the model from checkpoint {no_rate}: data.sample_rate=None must be a number" in err, err


def test_tagger_loads_from_run_and_registry_and_tags_waveforms(trained, music: Path, tmp_path: Path, monkeypatch) -> None:
    result, uri = trained
    # Downloads go to this user's private cache, $XDG_CACHE_HOME/genre_lab/models: here, this
    # test's own folder.
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    reference = Tagger.load(result.best_checkpoint)
    song = music / "rock.wav"
    expected = reference.tag(song).distribution

    mlflow.set_tracking_uri(uri)
    try:
        version = mlflow.register_model(f"runs:/{result.run_id}/model", "genre-tagger").version
    finally:
        mlflow.set_tracking_uri(None)
    for spec in (result.run_id, f"runs:/{result.run_id}/model", f"models:/genre-tagger/{version}"):
        tagger = Tagger.load(spec, tracking_uri=uri)
        assert tagger.run_id == result.run_id and tagger.classes == result.classes
        got = tagger.tag(song).distribution
        assert got == pytest.approx(expected, abs=1e-6), spec
    assert Tagger.load(result.run_id, tracking_uri=uri).tag(song).distribution == pytest.approx(expected, abs=1e-6)
    # Each model URI has one download folder, reused by every load instead of a new one each time.
    first, again = (resolve(f"runs:/{result.run_id}/model", uri).checkpoint for _ in range(2))
    assert first == again and first.is_file()
    cache = tmp_path / "genre_lab" / "models"
    assert first.is_relative_to(cache) and len(list(cache.iterdir())) == 3  # run id, runs:/ URI, registered version

    # A waveform at its own rate (stereo here) tags like the file it was read from.
    data, sr = sf.read(str(song), dtype="float32")
    stereo = torch.from_numpy(np.stack([data, data]))
    assert reference.tag(stereo, sample_rate=sr).distribution == pytest.approx(expected, abs=1e-4)
    # ... and so does the (frames, channels) layout soundfile reads stereo files in.
    frames_first = np.stack([data, data], axis=1)
    assert frames_first.shape == (len(data), 2)
    assert reference.tag(frames_first, sample_rate=sr).distribution == pytest.approx(expected, abs=1e-4)

    with pytest.raises(TaggingError, match="silent audio"):
        reference.tag(torch.zeros(16000), sample_rate=16000)
    with pytest.raises(AudioDecodeError, match="movie.mp3"):
        reference.tag(music / "movie.mp3")


def test_decoding_ahead_in_threads_changes_nothing(trained, music: Path) -> None:
    tagger = Tagger.load(trained[0].best_checkpoint)
    files = [*collect_audio_files([music]), music / "README.txt"]
    inline = [r.to_dict() for r in tagger.tag_files(files, workers=0)]
    threaded = [r.to_dict() for r in tagger.tag_files(files, workers=2)]
    assert [r["path"] for r in threaded] == [str(f) for f in files]
    assert threaded == inline
    assert sum(r["error"] is None for r in threaded) == len(GOOD)


def test_cli_warns_about_audio_without_music_or_fails_it_with_min_content(trained, tmp_path: Path, capsys, monkeypatch) -> None:
    """DC, a 10 ms blip padded to 3 s and a constant tone get a warning beside their genres
    (JSON, CSV, table), or an error row and exit 1 with --min-content; music gets neither."""
    monkeypatch.setenv("COLUMNS", "250")
    ckpt = trained[0].best_checkpoint
    folder = tmp_path / "clips"
    folder.mkdir()
    blip = np.zeros(3 * SR)
    blip[SR : SR + SR // 100] = 0.5
    sf.write(str(folder / "a_dc.wav"), np.full(3 * SR, 0.5), SR, subtype="FLOAT")
    sf.write(str(folder / "b_blip.flac"), blip, SR)
    sf.write(str(folder / "c_tone.wav"), 0.5 * np.sin(2 * np.pi * 440 * np.arange(3 * SR) / SR), SR)
    sf.write(str(folder / "d_song.wav"), render_clip("country", seed=2, seconds=3.0, sample_rate=SR), SR)
    fragments = ["constant DC offset of +0.500", "mostly silence or padding", "a constant tone", None]

    out = tmp_path / "tags.json"
    assert predict_main([ckpt, str(folder), "--format", "json", "--output", str(out), "--no-progress"]) == 0
    assert "3 of 4 file(s) carry no music to classify" in capsys.readouterr().err
    rows = json.loads(out.read_text())
    assert [r["error"] for r in rows] == [None] * 4 and all(len(r["genres"]) == 3 for r in rows)
    assert [f in r["warning"] if f else r["warning"] is None for f, r in zip(fragments, rows)] == [True] * 4

    assert predict_main([ckpt, str(folder), "--format", "csv", "--output", str(tmp_path / "tags.csv"), "--no-progress"]) == 0
    lines = list(csv.DictReader((tmp_path / "tags.csv").open()))
    assert [bool(r["warning"]) for r in lines] == [True, True, True, False] and all(r["error"] == "" for r in lines)
    capsys.readouterr()
    assert predict_main([ckpt, str(folder / "b_blip.flac"), "--no-progress"]) == 0
    table = capsys.readouterr().out
    assert "warning" in table and "mostly silence or padding" in table

    strict = tmp_path / "strict.json"
    assert predict_main([ckpt, str(folder), "--format", "json", "--output", str(strict), "--min-content", "--no-progress"]) == 1
    assert "3 of 4 file(s) could not be tagged" in capsys.readouterr().err
    rows = json.loads(strict.read_text())
    assert [f in r["error"] if f else r["error"] is None for f, r in zip(fragments, rows)] == [True] * 4
    assert [r["genres"] == [] for r in rows] == [True, True, True, False]


def test_cli_refuses_timelines_finer_than_half_a_second(trained, music: Path, capsys) -> None:
    for value in ("0.001", "1e-6", "0.49", "nan"):
        assert predict_main([trained[0].best_checkpoint, str(music / "rock.wav"), "--segments", value]) == 2
        assert "--segments must be at least 0.5 s" in capsys.readouterr().err
    assert predict_main([trained[0].best_checkpoint, str(music / "rock.wav"), "--segments", "0.5", "--format", "json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert len(row["segments"]) == 6 and row["segments"][1]["start"] == 0.5


def test_nan_weights_give_error_rows_and_valid_json(trained, music: Path, tmp_path: Path, capsys) -> None:
    state = torch.load(trained[0].best_checkpoint, map_location="cpu", weights_only=True)
    # Finite weights whose activations overflow to inf: NaN output (NaN weights are refused on load).
    weights = {k: torch.full_like(v, 3e38) if v.is_floating_point() else v for k, v in state["state_dict"].items()}
    damaged = tmp_path / "nan.ckpt"
    torch.save({"state_dict": weights, CONFIG_KEY: state[CONFIG_KEY]}, damaged)
    out = tmp_path / "tags.json"
    files = [str(music / "rock.wav"), str(music / "deep" / "pop.mp3")]
    assert predict_main([str(damaged), *files, "--format", "json", "--output", str(out), "--no-progress"]) == 1
    # Strict JSON: a bare NaN would be refused here.
    rows = json.loads(out.read_text(), parse_constant=lambda c: pytest.fail(f"invalid JSON constant {c}"))
    for row in rows:
        assert row["genres"] == [] and "NaN or infinite probabilities" in row["error"], row
    assert "2 of 2 file(s) could not be tagged" in capsys.readouterr().err


def test_model_is_positional_or_run_equals(trained, music: Path, tmp_path: Path, capsys) -> None:
    """`predict <model> PATH...` and `predict run=<model> PATH...` (anywhere among the paths)
    tag alike; two `run=` are a usage error."""
    result, uri = trained
    song = str(music / "rock.wav")
    outputs = []
    for i, argv in enumerate(([result.run_id, song], [f"run={result.run_id}", song], [song, f"run={result.run_id}"])):
        out = tmp_path / f"tags{i}.json"
        assert predict_main([*argv, "--tracking-uri", uri, "--format", "json", "--output", str(out), "--no-progress"]) == 0
        outputs.append(json.loads(out.read_text()))
    assert outputs[0] == outputs[1] == outputs[2] and outputs[0][0]["error"] is None
    with pytest.raises(SystemExit) as done:
        predict_main([f"run={result.run_id}", f"run={result.best_checkpoint}", song])
    assert done.value.code == 2 and "give the model once" in capsys.readouterr().err
