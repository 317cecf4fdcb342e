"""K-fold cross-validation (`data.folds`, `data.fold`): stratified, grouped, named in MLflow."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from hydra.utils import instantiate
from mlflow import MlflowClient

from genre_lab.config import compose
from genre_lab.data.files import LabelledFile
from genre_lab.data.stratify import fold_split
from genre_lab.tracking.run_names import describe_run, run_name
from tests.conftest import write_tone


def _files(per_class: list[int], groups: int | None = None) -> list[LabelledFile]:
    out = []
    for label, n in enumerate(per_class):
        for i in range(n):
            # Artists of unequal size (1..5 files), some of them across two classes.
            group = f"artist{(label * 7 + i * i) % groups}" if groups else None
            out.append(LabelledFile(Path(f"/x/{label}_{i}.wav"), label, f"{label}_{i}", (), group))
    return out


@pytest.mark.parametrize("folds", [3, 5])
def test_folds_partition_the_files_stratified(folds: int) -> None:
    files = _files([13, 7, 20, 5])
    tested: Counter[str] = Counter()
    for k in range(folds):
        split = fold_split(files, folds, k, seed=0)
        ids = {s: {f.clip_id for f in split[s]} for s in split}
        assert ids["train"] | ids["val"] | ids["test"] == {f.clip_id for f in files}
        assert not ids["train"] & ids["val"] and not ids["train"] & ids["test"] and not ids["val"] & ids["test"]
        # Validation is the next fold: what fold k tests, fold k-1 validates on.
        assert ids["val"] == {f.clip_id for f in fold_split(files, folds, (k + 1) % folds, seed=0)["test"]}
        for label, n in enumerate([13, 7, 20, 5]):
            in_test = sum(f.label == label for f in split["test"])
            assert n // folds <= in_test <= -(-n // folds), (label, in_test)  # stratified: floor..ceil
        tested.update(ids["test"])
    assert set(tested.values()) == {1} and len(tested) == len(files)  # every file tested once
    # Seeded: the same seed gives the same folds, another seed others.
    assert fold_split(files, folds, 0, seed=0) == fold_split(files, folds, 0, seed=0)
    assert fold_split(files, folds, 0, seed=0)["test"] != fold_split(files, folds, 0, seed=1)["test"]


def test_a_group_never_sits_on_two_sides() -> None:
    files = _files([15, 12, 18], groups=11)
    assert any(len({f.label for f in files if f.group == g}) > 1 for g in {f.group for f in files})
    tested: Counter[str] = Counter()
    for k in range(5):
        split = fold_split(files, 5, k, seed=3)
        sides = {g: {s for s, fs in split.items() for f in fs if f.group == g} for g in {f.group for f in files}}
        assert all(len(s) == 1 for s in sides.values()), sides
        assert sum(len(v) for v in split.values()) == len(files)
        tested.update({f.group for f in split["test"]})
    assert set(tested.values()) == {1}  # each artist is tested in exactly one fold


@pytest.mark.parametrize(("folds", "fold", "setting"), [(2, 0, "data.folds"), (5, 5, "data.fold"), (5, -1, "data.fold")])
def test_bad_fold_settings_name_the_setting(folds: int, fold: int, setting: str) -> None:
    with pytest.raises(ValueError, match=setting):
        fold_split(_files([6, 6]), folds, fold, seed=0)


def _manifest(root: Path, split_column: bool = False) -> Path:
    """12 artists x 2 files in 3 classes, a header naming the columns (artist before label)."""
    rows = ["path,artist,label" + (",split" if split_column else "")]
    for a in range(12):
        for i in range(2):
            name = f"a{a}_{i}.wav"
            write_tone(root / name, seconds=0.6, sr=8000, freq=200.0 + 40 * a + 5 * i)
            rows.append(f"{name},artist{a},{'abc'[a % 3]}" + (",train" if split_column else ""))
    (root / "m.csv").write_text("\n".join(rows) + "\n")
    return root / "m.csv"


def _cfg(manifest: Path, tmp_path: Path, *extra: str):
    return compose(["data=csv", f"data.manifest={manifest}", "data.sample_rate=8000", "data.chunk_seconds=0.5",
                    f"data.cache_dir={tmp_path / 'cache'}", f"paths.root_dir={tmp_path}", *extra])


def test_csv_folds_grouped_by_artist_and_named_in_mlflow(tmp_path: Path, mlflow_uri: str) -> None:
    manifest = _manifest(tmp_path)
    client = MlflowClient(mlflow_uri)
    experiment = client.create_experiment("folds")
    tested: Counter[str] = Counter()
    for k in range(4):
        cfg = _cfg(manifest, tmp_path, "data.folds=4", f"data.fold={k}", "data.group_column=artist")
        datamodule = instantiate(cfg.data)
        datamodule.setup()
        artists = {s: {clip.split("_")[0] for clip in split.ids} for s, split in datamodule.splits.items()}
        assert not artists["train"] & artists["test"] and not artists["train"] & artists["val"]
        assert not artists["val"] & artists["test"]
        tested.update(artists["test"])
        run_id = client.create_run(experiment).info.run_id
        describe_run(client, run_id, cfg, datamodule)
        tags = client.get_run(run_id).data.tags
        assert tags["mlflow.runName"] == run_name(cfg, "csv") and tags["mlflow.runName"].endswith(f"-fold{k}of4")
        assert tags["fold"] == f"{k}/4"
    assert sorted(tested) == sorted(f"a{a}" for a in range(12)) and set(tested.values()) == {1}


def test_fold_setting_errors_name_the_setting(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path)
    with pytest.raises(ValueError, match="data.group_column='singer' is not a column"):
        instantiate(_cfg(manifest, tmp_path, "data.folds=4", "data.group_column=singer").data).setup()
    with pytest.raises(ValueError, match="set data.folds"):
        instantiate(_cfg(manifest, tmp_path, "data.group_column=artist").data).setup()
    with pytest.raises(Exception, match=r"data.fold must be in 0\.\.3"):  # Hydra wraps the ValueError
        instantiate(_cfg(manifest, tmp_path, "data.folds=4", "data.fold=4").data)
    (tmp_path / "fixed").mkdir()
    fixed = _manifest(tmp_path / "fixed", split_column=True)
    with pytest.raises(ValueError, match="data.folds=4: .* fixes its own split"):
        instantiate(_cfg(fixed, tmp_path, "data.folds=4").data).setup()


@pytest.mark.slow
def test_fold_multirun_is_aggregated_by_the_report(tmp_path: Path, mlflow_uri: str) -> None:
    """`-m data.fold=0,1,2`: three runs named by fold; `genre_lab.cli.report` counts them as 3 runs
    of one configuration (mean ± std over folds), each paired by its data.fold."""
    import json
    import os
    import subprocess
    import sys

    from genre_lab.cli import report
    from genre_lab.config import PROJECT_ROOT

    (tmp_path / "audio").mkdir()
    manifest = _manifest(tmp_path / "audio")
    overrides = ["data=csv", f"data.manifest={manifest}", "data.sample_rate=8000", "data.chunk_seconds=0.5",
                 f"data.cache_dir={tmp_path / 'cache'}", "data.folds=3", "data.group_column=artist", "model=cnn",
                 "trainer.max_epochs=1", "callbacks.progress_bar=null", "throughput_seconds=0",
                 "logger.mlflow.experiment_name=folds", f"paths.root_dir={tmp_path}"]
    proc = subprocess.run([sys.executable, "-m", "genre_lab.cli.train", "-m", "data.fold=0,1,2", *overrides],
                          cwd=tmp_path, env={**os.environ, "MLFLOW_TRACKING_URI": mlflow_uri, "PYTHONPATH": str(PROJECT_ROOT)},
                          capture_output=True, text=True, timeout=900, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    client = MlflowClient(mlflow_uri)
    runs = client.search_runs([client.get_experiment_by_name("folds").experiment_id])
    assert sorted(r.data.tags["fold"] for r in runs) == ["0/3", "1/3", "2/3"]
    assert all(f"-fold{r.data.params['data.fold']}of3" in r.data.tags["mlflow.runName"] for r in runs)

    out = tmp_path / "report"
    assert report.main(["folds", "--group-by", "model", "--metric", "test/track_acc", "--out", str(out),
                        "--tracking-uri", mlflow_uri, "--no-log"]) == 0
    (row,) = json.loads((out / "report.json").read_text())["tables"]["test/track_acc"]
    assert row["group"] == ["cnn"] and row["n"] == 3
    assert sorted(row["values"]) == [f"seed=42, data.fold={k}" for k in range(3)]  # folds, not repeats
    assert row["mean"] == pytest.approx(sum(r.data.metrics["test/track_acc"] for r in runs) / 3)
