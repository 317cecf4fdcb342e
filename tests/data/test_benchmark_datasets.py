"""FMA, MagnaTagATune and MTG-Jamendo on fixture trees in their real on-disk formats.

Each tree is written here: the metadata files as the datasets ship them (FMA's two header
rows, MTAT's quoted tab-separated `annotations_final.csv`, Jamendo's tag-per-field TSVs) and
MP3s encoded by soundfile from synthetic clips, with a listed file absent from disk and extra
files nobody lists.
"""

from __future__ import annotations

import csv
import json
from functools import cache
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from mlflow import MlflowClient

from genre_lab.config import compose
from genre_lab.data import FMASource, JamendoSource, MTATSource
from genre_lab.data.clips import DataConfigError
from genre_lab.data.synthetic import render_clip
from genre_lab.training.fit import fit_and_test
from tests import training_procs

SR = 16000
SECONDS = 2.0


@cache
def _clip(genre: str, seed: int) -> np.ndarray:
    return render_clip(genre, seed=seed, seconds=SECONDS, sample_rate=SR)


def _mp3(path: Path, genre: str, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), _clip(genre, seed), SR, format="MP3")


def _common(tmp_path: Path) -> list[str]:
    return [f"data.cache_dir={tmp_path / 'cache'}", f"data.sample_rate={SR}", "data.chunk_seconds=1.0",
            "data.eval_hop_seconds=1.0", "data.train_chunks_per_clip=2", "model=cnn", "trainer.max_epochs=1",
            "callbacks.early_stopping=null", "callbacks.progress_bar=null", "throughput_seconds=0",
            "log_model=false", f"paths.root_dir={tmp_path}"]


# --------------------------------------------------------------------------------------- FMA

#: (FMA genre id, title, top_level) as in fma_metadata/genres.csv, and the synthetic genre
#: rendering its tracks.
FMA_GENRES = {12: ("Rock", 12, "rock"), 15: ("Electronic", 15, "disco"), 21: ("Hip-Hop", 21, "hiphop"),
              17: ("Folk", 17, "country"), 25: ("Punk", 12, None), 38: ("Experimental", 38, "classical")}


def _fma_tree(root: Path) -> dict[str, list[int]]:
    """fma_metadata/{tracks,genres}.csv and fma_small/ + fma_medium/ audio. Small: four genres,
    3 train / 1 validation / 1 test each; medium adds one training track per genre and one track
    without genre_top; large adds an Experimental track in training only. Rock tracks also carry
    Punk in genres_all. Returns the ids per subset."""
    meta = root / "fma_metadata"
    meta.mkdir(parents=True)
    with (meta / "genres.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["genre_id", "#tracks", "parent", "title", "top_level"])
        for gid, (title, top, _) in FMA_GENRES.items():
            writer.writerow([gid, 100, 0 if top == gid else top, title, top])
    rows, ids = [], {"small": [], "medium": [], "large": []}
    track = 2  # FMA's first track id

    def add(subset: str, split: str, top: int | None, genres: list[int], artist: int) -> None:
        nonlocal track
        title = FMA_GENRES[top][0] if top else ""
        rows.append([track, 1000 + track, artist, f"Artist {artist}", split, subset, title, str(genres), str(genres),
                     f"Track, {track}"])
        ids[subset].append(track)
        track += 997  # ids spread over several 3-digit folders

    for top in (12, 15, 21, 17):
        extra = [25] if top == 12 else []
        for split, n in (("training", 3), ("validation", 1), ("test", 1)):
            for _ in range(n):
                add("small", split, top, [top, *extra], artist=top * 10 + len(rows) % 2)
        add("medium", "training", top, [top, *extra], artist=top * 10)
    add("medium", "training", None, [], artist=99)
    add("large", "training", 38, [38], artist=98)
    with (meta / "tracks.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        # The real file's three header lines: column group, column name, index name.
        writer.writerow(["", "album", "artist", "artist", "set", "set", "track", "track", "track", "track"])
        writer.writerow(["", "id", "id", "name", "split", "subset", "genre_top", "genres", "genres_all", "title"])
        writer.writerow(["track_id", "", "", "", "", "", "", "", "", ""])
        writer.writerows(rows)
    by_id = {row[0]: row for row in rows}
    for subset, members in (("small", ids["small"]), ("medium", ids["small"] + ids["medium"])):
        for n, tid in enumerate(members):
            top = next(g for g, v in FMA_GENRES.items() if v[0] == by_id[tid][6]) if by_id[tid][6] else 12
            _mp3(root / f"fma_{subset}" / f"{tid:06d}"[:3] / f"{tid:06d}.mp3", FMA_GENRES[top][2], n)
    # One listed training track absent from disk; files nobody lists.
    (root / "fma_small" / f"{ids['small'][0]:06d}"[:3] / f"{ids['small'][0]:06d}.mp3").unlink()
    _mp3(root / "fma_small" / "999" / "999999.mp3", "rock", 99)
    (root / "fma_small" / "README.txt").write_text("extra")
    (root / "fma_small" / "checksums").write_text("extra")
    return ids


def test_fma_small_official_split_genre_top(tmp_path: Path) -> None:
    root = tmp_path / "fma"
    ids = _fma_tree(root)
    source = FMASource(root, subset="small", cache_dir=tmp_path / "cache")
    splits = source.load(SR)
    assert source.classes == ["Electronic", "Folk", "Hip-Hop", "Rock"]
    missing = f"{ids['small'][0]:06d}"
    assert {name: len(s) for name, s in splits.items()} == {"train": 11, "val": 4, "test": 4}
    assert [p for p, _ in splits["train"].skipped] == [f"{missing[:3]}/{missing}.mp3"]
    assert "not found under" in splits["train"].skipped[0][1] and not splits["test"].skipped
    assert missing not in {i for s in splits.values() for i in s.ids} and "999999" not in splits["train"].ids
    assert all(len(i) == 6 for s in splits.values() for i in s.ids)
    assert sorted(set(splits["val"].labels)) == [0, 1, 2, 3] and splits["train"].tags is None
    assert not source.unassigned


def test_fma_medium_and_large_nest_and_report_tracks_without_genre_top(tmp_path: Path) -> None:
    root = tmp_path / "fma"
    ids = _fma_tree(root)
    medium = FMASource(root, subset="medium", cache_dir=tmp_path / "cache")
    splits = medium.load(SR)
    assert len(splits["train"]) == 12 + 4  # small's tracks are in medium too
    no_top = f"{ids['medium'][-1]:06d}"
    assert medium.unassigned == [(f"{no_top[:3]}/{no_top}.mp3", "no genre_top in tracks.csv")]
    # Large: its Experimental track has no validation or test track: that class is left out.
    large = FMASource(root, subset="large", audio_dir=root / "fma_medium")
    assert large.classes == ["Electronic", "Folk", "Hip-Hop", "Rock"]
    assert len(large.listed()[0]) == 20 + 4


def test_fma_genres_all_is_multilabel(tmp_path: Path) -> None:
    root = tmp_path / "fma"
    _fma_tree(root)
    source = FMASource(root, subset="small", labels="genres_all", cache_dir=tmp_path / "cache")
    assert source.classes == ["Electronic", "Folk", "Hip-Hop", "Punk", "Rock"]
    splits = source.load(SR)
    pairs = {tags for s in splits.values() for tags in s.tag_sets() if len(tags) > 1}
    assert pairs == {(3, 4)}  # Rock tracks carry Punk
    (root / "fma_metadata" / "genres.csv").unlink()
    with pytest.raises(DataConfigError, match=r"data.labels=genres_all: fma_metadata/genres.csv not found"):
        FMASource(root, labels="genres_all").classes


@pytest.mark.parametrize("edit, match", [
    (lambda t: t.replace(",training,", ",train,", 1), r"tracks.csv, track '2': unknown split 'train'"),
    (lambda t: t.replace('"[12, 25]","[12, 25]"', '"[12, 25]","__import__(\'os\')"', 1), r"genres_all must be a list of genre ids"),
    (lambda t: t.replace("\n2,", "\n-2,", 1), r"a track id must be a whole number from 0 to 999999"),
    (lambda t: t + t.splitlines()[3] + "\n", r"fma_metadata/tracks.csv lists 000/000002.mp3 twice"),
])
def test_fma_malformed_metadata_names_the_file_and_track(tmp_path: Path, edit, match: str) -> None:
    root = tmp_path / "fma"
    _fma_tree(root)
    tracks = root / "fma_metadata" / "tracks.csv"
    tracks.write_text(edit(tracks.read_text()))
    with pytest.raises(DataConfigError, match=match):
        FMASource(root, labels="genres_all").classes


def test_fma_missing_metadata_and_audio_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(DataConfigError, match=r"data.root=.*: fma_metadata/tracks.csv not found under"):
        FMASource(tmp_path).classes
    root = tmp_path / "fma"
    _fma_tree(root)
    with pytest.raises(DataConfigError, match=r"no audio folder fma_large/ in it; point data.audio_dir"):
        FMASource(root, subset="large").load(SR)
    with pytest.raises(DataConfigError, match=r"data.audio_dir=.* holds none of the 20 files listed in fma_metadata/tracks.csv"):
        FMASource(root, audio_dir=tmp_path).load(SR)
    with pytest.raises(ValueError, match="data.subset must be one of small, medium, large, full"):
        FMASource(root, subset="tiny")


# -------------------------------------------------------------------------------------- MTAT

#: The 188 tag columns: a few of MTAT's own names (with spaces), then placeholders.
MTAT_TAGS = ["no voice", "singer", "duet", "plucking", "hard rock", *(f"tag{k:03d}" for k in range(5, 188))]
#: (mp3 folder, clips): train 0-b, validation c, test d-f.
MTAT_FOLDERS = {"0": 2, "5": 2, "b": 2, "c": 2, "d": 1, "f": 2}


def _mtat_tree(root: Path) -> dict[str, list[str]]:
    """annotations_final.csv (quoted, tab-separated) and the mp3 folders. Clip k carries the
    top-50 tags of its parity; tag 50 ties with tag 49 (column order keeps 49); one clip has
    only a rare tag, one no tag at all, one is absent from disk. Returns paths by role."""
    rows, made = [], {"clips": [], "rare": [], "none": [], "absent": []}
    genres = ("rock", "classical")
    clip_id = 2
    for folder, n in MTAT_FOLDERS.items():
        for k in range(n):
            parity = k % 2
            path = f"{folder}/artist_{clip_id}-album_{clip_id}-{k + 1:02d}-song_{clip_id}-{30 * k}-{30 * k + 29}.mp3"
            on = {j for j in range(50) if j % 2 == parity} | ({50} if parity else set())
            rows.append((clip_id, on, path))
            made["clips"].append(path)
            _mp3(root / path, genres[parity], clip_id)
            clip_id += 1
    for role, on, folder in (("rare", {150}, "3"), ("none", set(), "e"), ("absent", {0, 2}, "e")):
        path = f"{folder}/artist_{clip_id}-album-01-{role}-0-29.mp3"
        rows.append((clip_id, on, path))
        made[role].append(path)
        if role != "absent":
            _mp3(root / path, "rock", clip_id)
        clip_id += 1
    with (root / "annotations_final.csv").open("w", newline="") as f:
        writer = csv.writer(f, delimiter="\t", quoting=csv.QUOTE_ALL)
        writer.writerow(["clip_id", *MTAT_TAGS, "mp3_path"])
        for cid, on, path in rows:
            writer.writerow([cid, *("1" if j in on else "0" for j in range(188)), path])
    _mp3(root / "7" / "not_listed-0-29.mp3", "rock", 1)  # nobody lists it
    (root / "comments.csv").write_text("clip_id\tcomment\n")
    return made


def test_mtat_top50_and_the_classic_folder_split(tmp_path: Path) -> None:
    root = tmp_path / "mtat"
    made = _mtat_tree(root)
    source = MTATSource(root, cache_dir=tmp_path / "cache")
    assert source.classes == sorted(MTAT_TAGS[:50])  # tag050 ties with tag049: column order wins
    splits = source.load(SR)
    assert {name: len(s) for name, s in splits.items()} == {"train": 6, "val": 2, "test": 3}
    assert all(i[0] in "05b" for i in splits["train"].ids) and {i[0] for i in splits["val"].ids} == {"c"}
    assert [p for p, _ in splits["test"].skipped] == made["absent"]
    assert sorted(p for p, _ in source.unassigned) == sorted(made["rare"] + made["none"])
    index = {t: i for i, t in enumerate(source.classes)}
    even = tuple(sorted(index[MTAT_TAGS[j]] for j in range(0, 50, 2)))
    assert even in splits["val"].tag_sets() and all(len(t) == 25 for s in splits.values() for t in s.tag_sets())
    assert "7/not_listed-0-29.mp3" not in {i for s in splits.values() for i in s.ids}
    assert len(MTATSource(root, top_tags=3).classes) == 3


def test_mtat_malformed_annotations_name_the_file_and_line(tmp_path: Path) -> None:
    root = tmp_path / "mtat"
    root.mkdir()
    with pytest.raises(DataConfigError, match=r"data.root=.*: annotations_final.csv not found"):
        MTATSource(root).classes
    header = "\t".join(['"clip_id"', '"guitar"', '"mp3_path"'])
    (root / "annotations_final.csv").write_text(f'{header}\n"2"\t"1"\t"../../etc/passwd.mp3"\n')
    with pytest.raises(DataConfigError, match=r"annotations_final.csv, line 2: not a relative audio path"):
        MTATSource(root).classes
    (root / "annotations_final.csv").write_text(f'{header}\n"2"\t"yes"\t"f/a.mp3"\n')
    with pytest.raises(DataConfigError, match=r"line 2: tag 'guitar' must be 0 or 1"):
        MTATSource(root).classes
    (root / "annotations_final.csv").write_text(f'{header}\n"2"\t"0"\t"f/a.mp3"\n')
    with pytest.raises(DataConfigError, match=r"annotations_final.csv lists no clip with a label"):
        MTATSource(root).classes
    (root / "annotations_final.csv").write_text("clip_id,guitar,mp3_path\n2,1,f/a.mp3\n")  # commas: not MTAT's
    with pytest.raises(DataConfigError, match=r"expected a tab-separated header clip_id, <tags>, mp3_path"):
        MTATSource(root).classes
    twice = "\t".join(['"clip_id"', '"guitar"', '"guitar"', '"mp3_path"'])
    (root / "annotations_final.csv").write_text(f'{twice}\n"2"\t"1"\t"1"\t"f/a.mp3"\n')
    with pytest.raises(DataConfigError, match=r"tag column\(s\) guitar appear more than once"):
        MTATSource(root).classes


# ------------------------------------------------------------------------------ MTG-Jamendo

JAMENDO = {  # split -> (artist, tags) per track
    "train": [(14, ["genre---rock"]), (14, ["genre---rock", "genre---metal"]), (15, ["genre---classical"]),
              (16, ["genre---electronic"]), (16, ["genre---metal"]), (17, ["genre---classical"])],
    "validation": [(20, ["genre---rock", "genre---metal"]), (21, ["genre---classical"]),
                   (22, ["genre---electronic"])],
    "test": [(30, ["genre---rock"]), (31, ["genre---classical", "genre---electronic"]),
             (32, ["genre---metal"]), (33, ["genre---electronic"]), (34, ["genre---rock"])],
}
_SOUND = {"genre---rock": "rock", "genre---metal": "metal", "genre---classical": "classical",
          "genre---electronic": "disco"}


def _jamendo_tree(root: Path, audio: Path) -> dict[str, list[str]]:
    """The repository's data/autotagging_genre.tsv and split-0 files, the audio under `audio`
    (one track as the low-quality copy's .low.mp3, the last test track absent). Returns the
    track ids per split."""
    header = "TRACK_ID\tARTIST_ID\tALBUM_ID\tPATH\tDURATION\tTAGS"
    lines: dict[str, list[str]] = {}
    tracks: dict[str, list[str]] = {}
    number = 214
    for split, rows in JAMENDO.items():
        for artist, tags in rows:
            track, path = f"track_{number:07d}", f"{number % 100:02d}/{number}.mp3"
            lines.setdefault(split, []).append("\t".join([track, f"artist_{artist:06d}", f"album_{artist:06d}",
                                                          path, "30.0", *tags]))
            tracks.setdefault(split, []).append(track)
            name = path.replace(".mp3", ".low.mp3") if number == 215 else path
            if not (split == "test" and artist == 34):
                _mp3(audio / name, _SOUND[tags[0]], number)
            number += 1
    folder = root / "data" / "splits" / "split-0"
    folder.mkdir(parents=True)
    for split, rows in lines.items():
        (folder / f"autotagging_genre-{split}.tsv").write_text("\n".join([header, *rows]) + "\n")
    (root / "data" / "autotagging_genre.tsv").write_text("\n".join([header, *(r for v in lines.values() for r in v)]) + "\n")
    _mp3(audio / "99" / "99999.mp3", "rock", 1)  # not in this category
    (audio / "README.md").write_text("extra")
    return tracks


def test_jamendo_shipped_split_is_artist_disjoint(tmp_path: Path) -> None:
    root, audio = tmp_path / "mtg-jamendo-dataset", tmp_path / "audio"
    tracks = _jamendo_tree(root, audio)
    source = JamendoSource(root, audio_dir=audio, cache_dir=tmp_path / "cache")
    assert source.classes == ["genre---classical", "genre---electronic", "genre---metal", "genre---rock"]
    splits = source.load(SR)
    assert {name: len(s) for name, s in splits.items()} == {"train": 6, "val": 3, "test": 4}
    assert splits["train"].ids == tracks["train"]  # track_0000215 found as its .low.mp3
    assert [p for p, _ in splits["test"].skipped] == [f"{(214 + 13) % 100:02d}/{214 + 13}.mp3"]
    artists = {split: {a for a, _ in JAMENDO[split]} for split in JAMENDO}
    assert not artists["train"] & artists["test"] and not artists["train"] & artists["validation"]
    groups = {f.group for f in source.listed()[0] if f.split == "train"}
    assert groups.isdisjoint({f.group for f in source.listed()[0] if f.split == "test"})
    assert {(2, 3)} <= set(splits["train"].tag_sets())  # metal + rock


def test_jamendo_settings_and_missing_files_are_one_line_errors(tmp_path: Path) -> None:
    root, audio = tmp_path / "mtg-jamendo-dataset", tmp_path / "audio"
    _jamendo_tree(root, audio)
    with pytest.raises(DataConfigError, match=r"data.split_index=1: data/splits/split-1/autotagging_genre-train.tsv not found"):
        JamendoSource(root, split_index=1, audio_dir=audio).classes
    with pytest.raises(DataConfigError, match=r"data.category=mood .*autotagging_moodtheme-train.tsv not found"):
        JamendoSource(root, category="mood", audio_dir=audio).classes
    with pytest.raises(DataConfigError, match="data.audio_dir is not set"):
        JamendoSource(root).load(SR)
    with pytest.raises(ValueError, match="data.split_index must be 0 to 4"):
        JamendoSource(root, split_index=5)
    train = root / "data" / "splits" / "split-0" / "autotagging_genre-train.tsv"
    train.write_text(train.read_text().replace("14/214.mp3", "/etc/passwd"))
    with pytest.raises(DataConfigError, match=r"autotagging_genre-train.tsv, line 2: not a relative audio path"):
        JamendoSource(root, audio_dir=audio).classes


def test_configs_compose_with_their_settings() -> None:
    fma = compose(["data=fma", "data.root=/fma", "data.subset=medium"])
    assert fma.data.source._target_ == "genre_lab.data.FMASource" and fma.data.source.subset == "medium"
    mtat = compose(["data=mtat", "data.root=/mtat"])
    assert mtat.data.source.top_tags == 50 and mtat.data.task == "multilabel"
    jamendo = compose(["data=jamendo", "data.root=/j", "data.audio_dir=/a", "data.category=top50"])
    assert jamendo.data.source.category == "top50" and jamendo.data.source.audio_dir == "/a"


@pytest.mark.parametrize("overrides, task", [
    (["data=mtat", "data.root=/m"], "multilabel"),
    (["data=jamendo", "data.root=/j", "data.audio_dir=/a"], "multilabel"),
    (["data=fma", "data.root=/f", "data.labels=genres_all"], "multilabel"),
    (["data=fma", "data.root=/f"], "multiclass"),
    (["data=gtzan", "data.root=/g"], "multiclass"),
    ([], "multiclass"),
    # An explicit task wins where it fits (tags for single-label genres are still a valid model)...
    (["data=fma", "data.root=/f", "task=multilabel"], "multilabel"),
    (["data=mtat", "data.root=/m", "task=multilabel"], "multilabel"),
    # ...and composes as given where it does not: setup refuses it (the train command test below).
    (["data=mtat", "data.root=/m", "task=multiclass"], "multiclass"),
])
def test_the_dataset_implies_its_task(overrides: list[str], task: str) -> None:
    cfg = compose(overrides)
    assert cfg.task == task and cfg.data.task == task


# ------------------------------------------------------------------------- tiny training runs


@pytest.mark.slow
def test_train_command_on_fma_small(tmp_path: Path, mlflow_uri: str) -> None:
    root = tmp_path / "fma"
    _fma_tree(root)
    proc = training_procs.run(["data=fma", f"data.root={root}", *_common(tmp_path)], tmp_path / "run", mlflow_uri, 600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    client = MlflowClient(mlflow_uri)
    run = client.get_run(training_procs.only_run(client))
    assert run.info.status == "FINISHED" and run.data.tags["dataset"] == "fma"
    report = json.loads(Path(client.download_artifacts(run.info.run_id, "data/scan_report.json", str(tmp_path))).read_text())
    assert {name: report[name]["clips"] for name in ("train", "val", "test")} == {"train": 11, "val": 4, "test": 4}
    assert len(report["train"]["skipped"]) == 1 and np.isfinite(run.data.metrics["test/track_acc"])


@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["mtat", "jamendo"])
def test_multilabel_run_logs_roc_auc_and_pr_auc(tmp_path: Path, mlflow_uri: str, dataset: str) -> None:
    root = tmp_path / dataset
    if dataset == "mtat":
        _mtat_tree(root)
        data = ["data=mtat", f"data.root={root}"]
    else:
        _jamendo_tree(root, tmp_path / "audio")
        data = ["data=jamendo", f"data.root={root}", f"data.audio_dir={tmp_path / 'audio'}"]
    # No task=multilabel: the dataset implies it.
    result = fit_and_test(compose([*data, *_common(tmp_path)], output_dir=tmp_path / "out"))
    run = MlflowClient(mlflow_uri).get_run(result.run_id)
    assert run.data.tags["dataset"] == dataset
    for name in ("test/track_auroc", "test/track_pr_auc", "val/track_auroc"):
        assert 0.0 <= run.data.metrics[name] <= 1.0, name


@pytest.mark.slow
def test_train_command_takes_the_task_of_a_multilabel_dataset(tmp_path: Path, mlflow_uri: str) -> None:
    """Before: data=mtat (and data=fma data.labels=genres_all) without task=multilabel stopped
    asking for it; now the dataset sets the task, and a contradicting task=multiclass is refused
    in one line naming both settings, before any run exists."""
    _mtat_tree(tmp_path / "mtat")
    _fma_tree(tmp_path / "fma")
    client = MlflowClient(mlflow_uri)
    refused = training_procs.run(["data=mtat", f"data.root={tmp_path / 'mtat'}", "task=multiclass", *_common(tmp_path)],
                                 tmp_path / "refused", mlflow_uri, 600)
    assert refused.returncode != 0
    lines = [line for line in refused.stderr.strip().splitlines() if line.strip()]
    assert "task=multiclass does not fit dataset 'mtat'" in lines[-1] and "data.dataset_task=multilabel" in lines[-1]
    assert "Traceback" not in refused.stderr
    experiment = client.get_experiment_by_name("genre_lab")
    assert experiment is None or not client.search_runs([experiment.experiment_id])

    for name, data in (("mtat", ["data=mtat", f"data.root={tmp_path / 'mtat'}"]),
                       ("fma", ["data=fma", f"data.root={tmp_path / 'fma'}", "data.labels=genres_all"])):
        proc = training_procs.run([*data, *_common(tmp_path)], tmp_path / name, mlflow_uri, 600)
        assert proc.returncode == 0, proc.stderr[-3000:]
    runs = client.search_runs([client.get_experiment_by_name("genre_lab").experiment_id])
    assert sorted(r.data.tags["dataset"] for r in runs) == ["fma", "mtat"]
    for run in runs:
        assert run.info.status == "FINISHED" and run.data.params["task"] == "multilabel"
        assert 0.0 <= run.data.metrics["test/track_auroc"] <= 1.0 and 0.0 <= run.data.metrics["test/track_pr_auc"] <= 1.0
