"""`genre-lab report` never mixes configurations: on a real sqlite MLflow store, runs logged as
training logs them (the whole resolved config of `conf/train.yaml` flattened into params, the
run's tags and test metrics), a sweep made by the sweep's own `SweepTracker` and an ensemble run
tagged as the ensemble command tags it. Runs that differ in epochs or learning rate are split
into rows (or refused with `--strict`), reruns are refused unless `--latest`, and sweep trials
and ensembles count only with `--include`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from matplotlib.image import imread
from mlflow import MlflowClient
from omegaconf import OmegaConf

from genre_lab.cli import main as genre_lab_main
from genre_lab.cli import report
from genre_lab.config import compose
from genre_lab.sweep.mlflow_parent import SweepTracker, close_child
from genre_lab.tracking import mlflow_runs as tracking

EXPERIMENT = "compare"
LR = "model.optimizer.lr"
EPOCHS = "trainer.max_epochs"
T_MAX = "model.scheduler.T_max"  # ${trainer.max_epochs} in the config: it changes with the epochs
COLUMNS = ["model", LR, T_MAX, EPOCHS]


def _train_params(root: Path, name: str, overrides: list[str]) -> dict[str, str]:
    """The params `genre_lab.training.fit` logs for `genre-lab train OVERRIDES`: the composed,
    resolved config flattened, with this run's own output folder (one per run, as Hydra's)."""
    cfg = compose([f"paths.root_dir={root}", *overrides], output_dir=root / "outputs" / "runs" / name)
    return tracking.flatten(OmegaConf.to_container(cfg, resolve=True))


def _training_run(client: MlflowClient, root: Path, exp: str, model: str, seed: int, acc: float,
                  *overrides: str, run_id: str | None = None) -> str:
    """A finished training run of `model` at `seed` (into `run_id` when a sweep made it)."""
    name = f"{model}-logmel-synthetic-s{seed}"
    if run_id is None:
        run_id = client.create_run(exp, run_name=name).info.run_id
    for key, value in {"model": model, "features": "logmel", "backend": "auto", "dataset": "synthetic",
                       **tracking.source_tags()}.items():
        client.set_tag(run_id, key, value)
    tracking.log_params(client, run_id, _train_params(root, f"{run_id[:8]}_{model}",
                                                      [f"model={model}", f"seed={seed}", *overrides]))
    client.log_metric(run_id, "test/track_acc", acc)
    client.log_metric(run_id, "epoch", 1.0)
    client.set_terminated(run_id, "FINISHED")
    return run_id


@pytest.fixture()
def store(tmp_path: Path) -> tuple[str, MlflowClient, dict[str, str]]:
    """crnn and cnn at the default 15 epochs over seeds 1-3; then a 2-epoch crnn rerun of seed 2
    and a crnn at another learning rate; a sweep (a crnn trial at lr 0.03, a pruned trial) and
    an ensemble of two crnn runs. Returns the URI, the client and the notable run ids."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp = client.create_experiment(EXPERIMENT, artifact_location=str(tmp_path / "artifacts"))
    ids: dict[str, str] = {}
    for model, accs in (("crnn", (0.80, 0.86, 0.81)), ("cnn", (0.70, 0.74, 0.69))):
        for seed, acc in enumerate(accs, start=1):
            ids[f"{model}-{seed}"] = _training_run(client, tmp_path, exp, model, seed, acc)
    ids["crnn-2-epochs"] = _training_run(client, tmp_path, exp, "crnn", 2, 0.55, f"{EPOCHS}=2")
    ids["crnn-lr"] = _training_run(client, tmp_path, exp, "crnn", 1, 0.78, f"{LR}=0.01")

    tracker = SweepTracker.open(client, exp, "crnn-logmel", {"metric": "val/loss", "n_trials": 2})
    trial = tracker.start_child(0, {LR: 0.03}, ["model=crnn", f"{LR}=0.03"])
    ids["trial"] = _training_run(client, tmp_path, exp, "crnn", 42, 0.95, f"{LR}=0.03", run_id=trial)
    close_child(client, trial, "COMPLETE")
    pruned = tracker.start_child(1, {LR: 1e-6}, ["model=crnn", f"{LR}=1e-06"])
    ids["pruned"] = _training_run(client, tmp_path, exp, "crnn", 42, 0.10, f"{LR}=1e-06", run_id=pruned)
    close_child(client, pruned, "PRUNED")
    tracker.close(None)

    # As `genre-lab ensemble` logs it (genre_lab.cli.ensemble.build_ensemble).
    ensemble = client.create_run(exp, run_name="ensemble-2x-crnn", tags={
        "run_type": "ensemble", "model": "ensemble", "features": "mixed", "dataset": "synthetic",
        "genre_lab.members": json.dumps([ids["crnn-1"], ids["crnn-3"]])}).info.run_id
    tracking.log_params(client, ensemble, {"member0": ids["crnn-1"], "member1": ids["crnn-3"],
                                           "member0.weight": "0.5", "member1.weight": "0.5", "members": 2})
    client.log_metric(ensemble, "test/track_acc", 0.99)
    client.set_terminated(ensemble, "FINISHED")
    ids["ensemble"] = ensemble
    return uri, client, ids


def _report(uri: str, out: Path, *args: str) -> int:
    return report.main([EXPERIMENT, "--tracking-uri", uri, "--out", str(out), "--group-by", "model", "--no-log", *args])


def _rows(out: Path) -> dict[tuple[str, ...], dict]:
    data = json.loads((out / "report.json").read_text())
    return {tuple(r["group"]): r for r in data["tables"]["test/track_acc"]}


def test_runs_of_other_epochs_or_learning_rate_get_rows_of_their_own(
        store, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    uri, _, ids = store
    out = tmp_path / "report"
    capsys.readouterr()
    assert _report(uri, out) == 0
    err = capsys.readouterr().err
    data = json.loads((out / "report.json").read_text())
    assert data["group_by"] == ["model"] and data["split_by"] == [LR, T_MAX, EPOCHS] and data["columns"] == COLUMNS
    rows = _rows(out)
    # the 15-epoch crnn keeps its three seeds; the 2-epoch rerun and the other learning rate
    # are rows of their own, never averaged into it nor replacing its seed 2
    assert set(rows) == {("cnn", "0.003", "15", "15"), ("crnn", "0.003", "15", "15"),
                         ("crnn", "0.003", "2", "2"), ("crnn", "0.01", "15", "15")}
    crnn = rows[("crnn", "0.003", "15", "15")]
    assert crnn["n"] == 3 and crnn["mean"] == pytest.approx((0.80 + 0.86 + 0.81) / 3)
    assert crnn["values"] == {"seed=1": 0.80, "seed=2": 0.86, "seed=3": 0.81}
    assert rows[("crnn", "0.003", "2", "2")]["values"] == {"seed=2": 0.55}
    assert rows[("crnn", "0.01", "15", "15")]["values"] == {"seed=1": 0.78}
    assert rows[("cnn", "0.003", "15", "15")]["mean"] == pytest.approx(0.71)
    # neither the sweep (trial, pruned trial, parent) nor the ensemble counted; each left out says why
    skipped = dict(data["skipped"])
    assert "--include sweep-trials" in skipped[ids["trial"]] and "pruned" in skipped[ids["pruned"]]
    assert "--include ensembles" in skipped[ids["ensemble"]]
    assert not any(r["mean"] > 0.9 for r in rows.values())

    md = (out / "report.md").read_text()
    assert f"| model | {LR} | {T_MAX} | {EPOCHS} | n | test/track_acc |" in md
    assert "| crnn | 0.003 | 15 | 15 | 3 | 0.823 ± 0.032 |" in md and "| crnn | 0.003 | 2 | 2 | 1 | 0.550 |" in md
    tex = (out / "report.tex").read_text()
    assert r"\begin{tabular}{llllrr}" in tex and r"crnn & 0.01 & 15 & 15 & 1 & $0.780$ \\" in tex
    assert imread(out / "per_seed.png").shape[0] > 100
    # the split is said once, naming the settings and their values
    assert f"split: the runs of model=crnn differ in {LR} (0.003, 0.01), {T_MAX} (15, 2), {EPOCHS} (15, 2)" in err
    assert "model=cnn" not in err


def test_strict_refuses_naming_the_settings_that_differ(store, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    uri, _, _ = store
    out = tmp_path / "report"
    capsys.readouterr()
    assert _report(uri, out, "--strict") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: --strict: the runs of model=crnn differ in"), err
    assert f"{LR} (0.003, 0.01)" in err and f"{EPOCHS} (15, 2)" in err and "model=cnn" not in err
    assert not out.exists()
    # the same runs narrowed to one configuration by --filter pass
    assert _report(uri, out, "--strict", "--filter", f"params.`{EPOCHS}` = '15' and params.`{LR}` = '0.003'") == 0
    assert set(_rows(out)) == {("cnn",), ("crnn",)} and _rows(out)[("crnn",)]["n"] == 3


def test_a_rerun_of_the_same_settings_is_refused_unless_latest(
        store, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    uri, client, ids = store
    exp = client.get_experiment_by_name(EXPERIMENT).experiment_id
    rerun = _training_run(client, tmp_path, exp, "crnn", 1, 0.90)  # same settings, its own output folder
    out = tmp_path / "report"
    capsys.readouterr()
    assert _report(uri, out) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"runs {ids['crnn-1']} and {rerun} are both model=crnn" in err, err
    assert "seed=1" in err and "--latest" in err and not out.exists()

    assert _report(uri, out, "--latest") == 0
    assert "replaced by the later run" in capsys.readouterr().err
    data = json.loads((out / "report.json").read_text())
    assert dict(data["skipped"])[ids["crnn-1"]].startswith(f"replaced by the later run {rerun}")
    crnn = _rows(out)[("crnn", "0.003", "15", "15")]
    assert crnn["values"] == {"seed=1": 0.90, "seed=2": 0.86, "seed=3": 0.81}


def test_sweep_trials_and_ensembles_count_when_included(store, tmp_path: Path) -> None:
    uri, client, _ = store
    out = tmp_path / "report"
    assert _report(uri, out, "--include", "sweep-trials") == 0
    rows = _rows(out)
    assert rows[("crnn", "0.03", "15", "15")]["values"] == {"seed=42": 0.95}  # the trial, as its own row
    assert rows[("crnn", "0.003", "15", "15")]["n"] == 3 and ("ensemble", "—", "—", "—") not in rows
    assert not any(r["mean"] == pytest.approx(0.10) for r in rows.values())  # a pruned trial never counts

    assert _report(uri, out, "--include", "sweep-trials,ensembles") == 0
    rows = _rows(out)
    assert rows[("ensemble", "—", "—", "—")]["mean"] == pytest.approx(0.99)
    assert rows[("crnn", "0.03", "15", "15")]["n"] == 1

    # the report run logged records what it was asked; a bad kind is refused by name
    assert report.main([EXPERIMENT, "--tracking-uri", uri, "--out", str(out), "--group-by", "model",
                        "--include", "ensembles", "--metric", "test/track_acc"]) == 0
    exp = client.get_experiment_by_name(EXPERIMENT).experiment_id
    (logged,) = client.search_runs([exp], "tags.run_type = 'report'")
    assert logged.data.params["include"] == "ensembles" and logged.data.params["split_by"] == f"{LR},{T_MAX},{EPOCHS}"
    with pytest.raises(SystemExit):
        report.parser().parse_args([EXPERIMENT, "--include", "probes"])


def test_help_names_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        genre_lab_main(["report", "--help"])
    out = capsys.readouterr().out
    assert done.value.code == 0 and out.startswith("usage: genre-lab report ")
    assert "--strict" in out and "--latest" in out and "sweep-trials" in out
