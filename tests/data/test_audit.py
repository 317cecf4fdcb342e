"""`genre-lab audit` on a GTZAN-layout tree with planted duplicates, near-duplicates and bad
files; artists across splits from a CSV manifest; `data.on_leak=error` refusing training."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from mlflow import MlflowClient

from genre_lab.cli import main as genre_lab
from genre_lab.config import PROJECT_ROOT
from genre_lab.data.dataset_audit import near_pairs, standardize
from genre_lab.data.gtzan import GTZANSource, filtered_split, gtzan_artists
from genre_lab.data.synthetic import render_clip
from genre_lab.reporting.collect import finished_runs
from genre_lab.tracking.run_kinds import TRAINING, run_kind

SR = 8000
SECONDS = 2.0
GENRES = ("blues", "jazz", "rock")
PER_SPLIT = {"train": 3, "val": 2, "test": 2}


def _write(path: Path, wave: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), wave, SR, subtype="PCM_16")
    return path


def _quantised(wave: np.ndarray) -> np.ndarray:
    """The samples a 16-bit file holds: a .wav and an .au of them decode to the same floats."""
    return (np.round(np.clip(wave, -1, 1) * 32767) / 32767).astype(np.float32)


def _gtzan_tree(root: Path, tmp: Path) -> dict:
    """Distinct synthetic clips under listed GTZAN ids, then planted findings (returned by name)."""
    listed = filtered_split()
    ids = {s: {g: [i for i in listed[s] if i.startswith(g + ".")][:n] for g in GENRES} for s, n in PER_SPLIT.items()}
    waves = {}
    for s in PER_SPLIT:
        for g in GENRES:
            for n, clip in enumerate(ids[s][g]):
                waves[clip] = _quantised(render_clip(g, 100 * list(PER_SPLIT).index(s) + n, SECONDS, SR))
    # An exact duplicate across splits: a test clip holds a training clip's samples, as .au.
    original, copy = ids["train"]["jazz"][0], ids["test"]["jazz"][0]
    waves[copy] = waves[original]
    # Near-duplicates: a validation clip is a training clip at -2 dB with light noise; a test
    # clip is a training clip re-encoded through Ogg Vorbis.
    rng = np.random.default_rng(0)
    base, noisy = ids["train"]["blues"][1], ids["val"]["blues"][0]
    peak = np.abs(waves[base]).max()  # noise 40 dB below the peak
    waves[noisy] = _quantised(0.8 * waves[base] + 0.01 * peak * rng.standard_normal(len(waves[base])))
    ogg_of, ogg = ids["train"]["rock"][2], ids["test"]["rock"][1]
    sf.write(str(tmp / "reencoded.ogg"), waves[ogg_of], SR, format="OGG", subtype="VORBIS")
    waves[ogg] = _quantised(sf.read(str(tmp / "reencoded.ogg"), dtype="float32")[0])
    # A silent clip, an unreadable file (GTZAN's well-known jazz.00054.wav is listed in train).
    silent = ids["val"]["rock"][1]
    waves[silent] = np.zeros(int(SECONDS * SR), np.float32)
    unreadable = "jazz.00054"
    assert unreadable in listed["train"] and unreadable not in waves
    (root / "jazz").mkdir(parents=True, exist_ok=True)
    (root / "jazz" / f"{unreadable}.wav").write_bytes(b"not audio " * 50)
    for clip, wave in waves.items():
        _write(root / clip.split(".")[0] / f"{clip}.{'au' if clip == copy else 'wav'}", wave)
    return {"ids": ids, "exact": (original, copy), "near": {frozenset((base, noisy)), frozenset((ogg_of, ogg))},
            "silent": silent, "unreadable": unreadable, "written": len(waves) + 1,
            "listed": sum(len(v) for v in listed.values())}


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    tmp = tmp_path_factory.mktemp("audit")
    return tmp, _gtzan_tree(tmp / "gtzan", tmp)


def _data_args(tmp: Path) -> list[str]:
    return ["data=gtzan", f"data.root={tmp / 'gtzan'}", f"data.cache_dir={tmp / 'cache'}", f"data.sample_rate={SR}",
            "data.chunk_seconds=1.0", "data.eval_hop_seconds=1.0", f"paths.root_dir={tmp}"]


def test_audit_finds_every_planted_duplicate_and_leak(tree, tmp_path: Path, mlflow_uri: str, capsys) -> None:
    tmp, planted = tree
    out = tmp_path / "report"
    assert genre_lab(["audit", *_data_args(tmp), "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    report = json.loads((out / "audit.json").read_text())

    original, copy = planted["exact"]
    assert report["embedding"] == "fingerprint" and report["near_threshold"] == 0.98
    assert [sorted((c["clip"], c["split"]) for c in g["clips"]) for g in report["exact_duplicates"]] == [
        sorted([(original, "train"), (copy, "test")])]
    assert report["exact_duplicates"][0]["across_splits"] is True
    found = {frozenset((p["first"]["clip"], p["second"]["clip"])) for p in report["near_duplicates"]}
    assert found == planted["near"], "every planted near-duplicate, and no pair of distinct clips"
    assert all(p["similarity"] >= 0.98 and p["across_splits"] for p in report["near_duplicates"])

    unused = {(u["path"], u["kind"]) for u in report["unused_files"]}
    kinds = [u["kind"] for u in report["unused_files"]]
    assert (str(tmp / "gtzan" / "jazz" / f"{planted['unreadable']}.wav"), "unreadable") in unused
    assert any(path.endswith(f"{planted['silent']}.wav") and kind == "silent" for path, kind in unused)
    assert kinds.count("missing") == planted["listed"] - planted["written"]
    ids = planted["ids"]
    assert report["clips"] == {"train": 9, "val": 5, "test": 6}  # the silent val clip is left out
    assert report["class_balance"]["train"] == {"blues": 3, "classical": 0, "country": 0, "disco": 0, "hiphop": 0,
                                                "jazz": 3, "metal": 0, "pop": 0, "reggae": 0, "rock": 3}
    assert report["class_balance"]["val"]["rock"] == 1 and report["artists_across_splits"] is None
    assert report["counts"]["exact_duplicate_groups_across_splits"] == 1
    assert report["counts"]["near_duplicate_pairs"] == 2
    assert "exact duplicates" in printed and original in printed and copy in printed

    client = MlflowClient(mlflow_uri)
    experiment = client.get_experiment_by_name("genre_lab").experiment_id
    (run,) = client.search_runs([experiment])
    assert run.info.status == "FINISHED" and run.data.tags["run_type"] == "audit"
    assert run.data.tags["dataset"] == "gtzan" and run.data.tags["embedding"] == "fingerprint"
    assert run.data.metrics["exact_duplicate_groups"] == 1 and run.data.metrics["near_duplicate_pairs_across_splits"] == 2
    assert run.data.metrics["unused_files/unreadable"] == 1 and run.data.metrics["unused_files/silent"] == 1
    assert run.data.params["data.sample_rate"] == str(SR)
    logged = json.loads(Path(client.download_artifacts(run.info.run_id, "audit.json", str(tmp_path))).read_text())
    assert logged == report
    # Not a training run: reports count it nowhere (and do not list it as left out).
    assert run_kind(run.data.tags) == "audit" != TRAINING
    runs, left_out = finished_runs(client, experiment)
    assert runs == [] and left_out == []
    assert ids["train"]["jazz"][0] == original


def test_on_leak_error_refuses_training_with_one_line(tree, tmp_path: Path, mlflow_uri: str) -> None:
    tmp, planted = tree
    original, copy = planted["exact"]
    args = [*_data_args(tmp), "data.on_leak=error", "model=cnn", "trainer.max_epochs=1", "callbacks.progress_bar=null",
            f"hydra.run.dir={tmp_path / 'run'}"]
    proc = subprocess.run([sys.executable, "-m", "genre_lab", "train", *args], cwd=PROJECT_ROOT,
                          env={**os.environ, "MLFLOW_TRACKING_URI": mlflow_uri}, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if "identical audio" in line and "error" in line.lower()]
    assert len(errors) == 1, proc.stderr[-3000:]
    assert f"{original}.wav (train)" in errors[0] and f"{copy}.au (test)" in errors[0]
    assert "Traceback" not in proc.stderr


def test_artists_across_splits_from_a_manifest_column(tree, tmp_path: Path, mlflow_uri: str) -> None:
    """A CSV manifest's `artist` column; a FLAC copy of a WAV is an exact duplicate too."""
    tmp, planted = tree
    ids = planted["ids"]
    files = {clip: tmp / "gtzan" / clip.split(".")[0] / f"{clip}.wav" for s in ("train", "test")
             for g in ("blues", "rock") for clip in ids[s][g]}
    flac = tmp_path / "copy.flac"
    sf.write(str(flac), sf.read(str(files[ids["train"]["blues"][0]]), dtype="int16")[0], SR, subtype="PCM_16")
    lines = ["path,label,split,artist"]
    lines += [f"{files[c]},blues,{s},Hooker" for s in ("train", "test") for c in ids[s]["blues"]]
    lines += [f"{files[c]},rock,{s},Band {s}" for s in ("train", "test") for c in ids[s]["rock"]]
    lines += [f"{flac},blues,val,Hooker"]
    (tmp_path / "m.csv").write_text("\n".join(lines) + "\n")
    args = ["data=csv", f"data.manifest={tmp_path / 'm.csv'}", f"data.cache_dir={tmp / 'cache'}",
            f"data.sample_rate={SR}", "data.chunk_seconds=1.0", f"paths.root_dir={tmp_path}"]
    assert genre_lab(["audit", *args, "--output", str(tmp_path / "out")]) == 0
    report = json.loads((tmp_path / "out" / "audit.json").read_text())
    artists = {a["artist"]: sorted(a["splits"]) for a in report["artists_across_splits"]}
    assert artists == {"Hooker": ["test", "train", "val"]}
    (group,) = report["exact_duplicates"]
    assert {c["split"] for c in group["clips"]} == {"train", "val"} and str(flac) in [c["clip"] for c in group["clips"]]
    (run,) = MlflowClient(mlflow_uri).search_runs([MlflowClient(mlflow_uri).get_experiment_by_name("genre_lab").experiment_id])
    assert run.data.metrics["artists_across_splits"] == 1


def test_gtzan_artist_list_reaches_the_splits(tree, tmp_path: Path) -> None:
    tmp, planted = tree
    ids = planted["ids"]
    (tmp_path / "artists.csv").write_text("clip,artist\n" + "".join(
        f"{c},{'Same' if g == 'blues' else c}\n" for s in ids for g in GENRES for c in ids[s][g]) + "nonsense\n")
    assert gtzan_artists(tmp_path)[ids["train"]["blues"][0]] == "Same" and gtzan_artists(tmp / "nowhere") == {}
    source = GTZANSource(tmp / "gtzan", cache_dir=tmp / "cache")
    source.artists_folder = tmp_path
    splits = source.load(SR, min_samples=SR)
    train = splits["train"]
    assert train.artists is not None and len(train.artists) == len(train)
    assert {a for i, a in zip(train.ids, train.artists) if i.startswith("blues")} == {"Same"}


def test_near_pairs_blockwise_equal_the_full_matrix_and_stay_bounded() -> None:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((300, 16)).astype(np.float32)
    x[150:160] = x[:10] + 0.01 * rng.standard_normal((10, 16)).astype(np.float32)
    unit = standardize(x)
    full = unit @ unit.T
    i, j = np.triu_indices(len(unit), 1)
    expected = {(a, b) for a, b in zip(i, j) if full[a, b] >= 0.5}
    pairs, total = near_pairs(unit, 0.5, block=37)
    assert {(a, b) for a, b, _ in pairs} == expected and total == len(expected)
    top, total = near_pairs(unit, 0.5, block=37, max_pairs=5)
    assert len(top) == 5 and total == len(expected)
    assert [s for _, _, s in top] == sorted((s for _, _, s in pairs), reverse=True)[:5]
    assert {(a, a + 150) for a in range(10)} <= {(a, b) for a, b, _ in near_pairs(unit, 0.98, block=7)[0]}


def test_audit_with_a_model_embeds_clips_at_its_rate(tree, tmp_path: Path, mlflow_uri: str) -> None:
    """`--model`: a model file's mean window embedding (16 kHz model, 8 kHz dataset: resampled);
    exact duplicates do not depend on the embedding."""
    from genre_lab.bench.tag import default_model
    from genre_lab.models import model_file

    tmp, planted = tree
    model = default_model(["model=cnn"])
    ckpt = tmp_path / "model.ckpt"
    model_file.write(ckpt, model.spec, model.state_dict())
    out = tmp_path / "out"
    assert genre_lab(["audit", *_data_args(tmp), "--model", str(ckpt), "--near-threshold", "0.999",
                      "--output", str(out)]) == 0
    report = json.loads((out / "audit.json").read_text())
    assert report["embedding"] == str(ckpt) and report["near_threshold"] == 0.999
    assert {c["clip"] for c in report["exact_duplicates"][0]["clips"]} == set(planted["exact"])
    (run,) = MlflowClient(mlflow_uri).search_runs([MlflowClient(mlflow_uri).get_experiment_by_name("genre_lab").experiment_id])
    assert run.data.tags["embedding"] == str(ckpt)
    assert run_kind({"run_type": "something-new"}) == "something-new" != TRAINING  # an unknown kind is not a training


def test_a_bad_threshold_is_one_line_naming_it(tree, capsys) -> None:
    tmp, _ = tree
    assert genre_lab(["audit", *_data_args(tmp), "--near-threshold", "1.5"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--near-threshold" in err


def test_datamodule_on_leak_warns_in_one_line_or_refuses(tree, caplog) -> None:
    from genre_lab.data import GenreDataModule
    from genre_lab.data.leakage import LeakageError

    tmp, planted = tree
    original, copy = planted["exact"]

    def datamodule(on_leak: str) -> GenreDataModule:
        return GenreDataModule(GTZANSource(tmp / "gtzan", cache_dir=tmp / "cache"), sample_rate=SR,
                               chunk_seconds=1.0, on_leak=on_leak)

    with pytest.raises(ValueError, match="data.on_leak must be one of warn, error"):
        datamodule("ignore")
    with pytest.raises(LeakageError, match=rf"{original}\.wav \(train\) and .*{copy}\.au \(test\) hold identical audio"):
        datamodule("error").setup()
    caplog.clear()
    # Seven genres have no clip in this small tree: refused by the class check, after the leak's.
    with caplog.at_level("WARNING", logger="genre_lab.data.leakage"), pytest.raises(ValueError, match="no usable clip"):
        datamodule("warn").setup()
    lines = [r.getMessage() for r in caplog.records if "identical audio" in r.getMessage()]
    assert len(lines) == 1 and "data.on_leak=error refuses" in lines[0], lines  # one line, not two
    assert f"{copy}.au (test)" in lines[0] and "\n" not in lines[0]
