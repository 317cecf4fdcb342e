"""`genre_lab.cli.report` on a real sqlite MLflow store: runs created with MlflowClient with known
metric values; the table's means, stds, paired differences and p-values are checked against
values computed by hand here."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread
from mlflow import MlflowClient

from genre_lab.cli import report
from genre_lab.reporting.comparison import Observation, paired, summarise

#: test/track_acc per model and seed; crnn beats cnn on every seed, rnn has a missing seed.
ACC = {
    "cnn": {1: 0.70, 2: 0.74, 3: 0.69},
    "crnn": {1: 0.80, 2: 0.86, 3: 0.81},
    "rnn": {1: 0.75, 3: 0.71},
}


def _run(client: MlflowClient, exp: str, model: str, seed: int, acc: float, status: str = "FINISHED", **tags: str) -> str:
    run = client.create_run(exp, tags={"model": model, "features": "logmel", **tags})
    rid = run.info.run_id
    client.log_param(rid, "seed", str(seed))
    client.log_metric(rid, "test/track_acc", acc)
    client.log_metric(rid, "test/track_f1", acc - 0.05)
    client.set_terminated(rid, status)
    return rid


@pytest.fixture()
def store(tmp_path: Path) -> tuple[str, MlflowClient]:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp = client.create_experiment("compare", artifact_location=str(tmp_path / "artifacts"))
    # a first crnn seed-2 run, replaced by its rerun below (with --latest the later run counts)
    _run(client, exp, "crnn", 2, 0.10)
    for model, by_seed in ACC.items():
        for seed, acc in by_seed.items():
            _run(client, exp, model, seed, acc)
    # none of these may count: failed, evaluation, sweep parent, pruned trial
    _run(client, exp, "cnn", 4, 0.01, status="FAILED")
    _run(client, exp, "cnn", 5, 0.02, run_type="evaluation")
    _run(client, exp, "cnn", 6, 0.03, sweep_role="parent")
    _run(client, exp, "cnn", 7, 0.04, trial_state="PRUNED")
    return uri, client


def test_costs_are_tabulated_but_not_tested_pairwise(store, tmp_path: Path) -> None:
    """A model's size and speed sit beside its scores; only the scores get paired tests."""
    uri, client = store
    experiment = client.get_experiment_by_name("compare").experiment_id
    for run in client.search_runs([experiment]):
        client.log_metric(run.info.run_id, "model/params", 1000.0 + len(run.data.tags["model"]))
        client.log_metric(run.info.run_id, "speed/train_examples_per_s", 10.0 + run.data.metrics["test/track_acc"])
    out = tmp_path / "report"
    assert report.main(["compare", "--tracking-uri", uri, "--out", str(out), "--group-by", "model", "--latest",
                        "--metric", "test/track_acc", "--metric", "model/params",
                        "--metric", "speed/train_examples_per_s", "--no-log"]) == 0
    data = json.loads((out / "report.json").read_text())
    assert {r["group"][0]: r["mean"] for r in data["tables"]["model/params"]}["crnn"] == 1004.0
    assert set(data["comparisons"]) == {"test/track_acc"}
    md = (out / "report.md").read_text()
    assert "| model | n | test/track_acc | model/params | speed/train_examples_per_s |" in md
    assert md.count("Paired differences") == 1
    # One run per group (seed 1 only): no pair of groups shares two seeds, so nothing is tested.
    assert report.main(["compare", "--tracking-uri", uri, "--out", str(out), "--group-by", "model", "--latest",
                        "--filter", "params.seed = '1'", "--no-log"]) == 0
    data = json.loads((out / "report.json").read_text())
    assert [r["n"] for r in data["tables"]["test/track_acc"]] == [1, 1, 1] and not data["comparisons"]
    assert "Paired differences" not in (out / "report.md").read_text()


def test_table_means_stds_and_paired_tests_match_hand_computation(store, tmp_path: Path) -> None:
    uri, client = store
    readme = tmp_path / "README.md"
    readme.write_text("# Results\n\n<!-- report:begin -->\nold table\n<!-- report:end -->\n\nmore text\n")
    out = tmp_path / "report"
    code = report.main(["compare", "--tracking-uri", uri, "--out", str(out), "--group-by", "model", "--latest",
                        "--metric", "test/track_acc", "--metric", "test/track_f1", "--readme", str(readme)])
    assert code == 0
    data = json.loads((out / "report.json").read_text())
    (replaced,) = [why for _, why in data["skipped"] if why.startswith("replaced by the later run")]
    assert "model=crnn, seed=2" in replaced and data["split_by"] == []
    rows = {r["group"][0]: r for r in data["tables"]["test/track_acc"]}
    assert set(rows) == {"cnn", "crnn", "rnn"}
    # by hand: cnn 0.70, 0.74, 0.69 -> mean 0.71, deviations -.01, .03, -.02 -> var .0014/2 -> std .026458
    assert rows["cnn"]["n"] == 3 and rows["cnn"]["mean"] == pytest.approx(0.71)
    assert rows["cnn"]["std"] == pytest.approx(np.sqrt(0.0014 / 2))
    assert rows["crnn"]["mean"] == pytest.approx((0.80 + 0.86 + 0.81) / 3)  # the 0.10 run was replaced
    assert rows["rnn"]["n"] == 2 and rows["rnn"]["std"] == pytest.approx(np.sqrt(2 * 0.02 ** 2))
    f1 = {r["group"][0]: r["mean"] for r in data["tables"]["test/track_f1"]}
    assert f1["cnn"] == pytest.approx(0.66)

    comps = {(c["a"][0], c["b"][0]): c for c in data["comparisons"]["test/track_acc"]}
    # cnn - crnn per seed: -.10, -.12, -.12 -> mean -.11333, sd .011547, t = mean / (sd / sqrt 3) = -17.0
    d = np.array([-0.10, -0.12, -0.12])
    t = d.mean() / (d.std(ddof=1) / np.sqrt(3))
    assert t == pytest.approx(-17.0)
    stats = pytest.importorskip("scipy.stats")
    c = comps[("cnn", "crnn")]
    assert c["n"] == 3 and c["mean_diff"] == pytest.approx(d.mean())
    assert c["p_value"] == pytest.approx(2 * stats.t.sf(abs(t), df=2))
    half = stats.t.ppf(0.975, 2) * d.std(ddof=1) / np.sqrt(3)
    assert (c["ci_low"], c["ci_high"]) == (pytest.approx(d.mean() - half), pytest.approx(d.mean() + half))
    # rnn ran seeds 1 and 3 only: paired with cnn on those two
    c = comps[("cnn", "rnn")]
    assert c["n"] == 2 and c["mean_diff"] == pytest.approx(((0.70 - 0.75) + (0.69 - 0.71)) / 2)

    md = (out / "report.md").read_text()
    assert "| model | n | test/track_acc | test/track_f1 |" in md
    assert "| cnn | 3 | 0.710 ± 0.026 | 0.660 ± 0.026 |" in md
    assert "| cnn | crnn | 3 | -0.113 |" in md and "paired t-test" in md
    tex = (out / "report.tex").read_text()
    assert r"\begin{tabular}{lrrr}" in tex and r"test/track\_acc" in tex
    assert r"crnn & 3 & $\mathbf{0.823 \pm 0.032}$" in tex  # best mean in bold
    image = imread(out / "per_seed.png")
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    text = readme.read_text()
    assert "old table" not in text and md in text and text.endswith("more text\n")

    runs = client.search_runs([client.get_experiment_by_name("compare").experiment_id], "tags.run_type = 'report'")
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    assert runs[0].data.params["runs"] == "8"  # 3 + 3 + 2 counted
    logged = {f.path for f in client.list_artifacts(runs[0].info.run_id, "report")}
    assert logged == {"report/report.md", "report/report.tex", "report/per_seed.png", "report/report.json"}

    # a second report ignores the first report's run
    assert report.main(["compare", "--tracking-uri", uri, "--out", str(out), "--group-by", "model", "--latest", "--no-log"]) == 0
    again = json.loads((out / "report.json").read_text())
    assert sum(r["n"] for r in again["tables"]["test/track_acc"]) == 8


def test_without_scipy_the_comparison_is_a_bootstrap_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "scipy", None)  # `from scipy import stats` raises ImportError
    obs = [Observation((m,), (f"seed={s}",), v) for m, by_seed in ACC.items() for s, v in by_seed.items()]
    rows = {s.group[0]: s for s in summarise(obs)}
    c = paired(rows["crnn"], rows["cnn"])
    d = np.array([0.10, 0.12, 0.12])
    assert c.method.startswith("bootstrap") and c.p_value is None and c.n == 3
    assert c.mean_diff == pytest.approx(d.mean())
    # a bootstrap mean of resampled differences lies between their smallest and largest
    assert d.min() - 1e-12 <= c.ci_low <= c.mean_diff <= c.ci_high <= d.max() + 1e-12
    assert c.ci_low < c.ci_high


def test_errors_name_the_experiment_and_metric(store, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    uri, _ = store
    assert report.main(["nope", "--tracking-uri", uri, "--out", str(tmp_path / "r")]) == 2
    assert "no MLflow experiment named 'nope'" in capsys.readouterr().err
    assert report.main(["compare", "--tracking-uri", uri, "--out", str(tmp_path / "r"), "--metric", "test/auc"]) == 2
    assert "--metric test/auc" in capsys.readouterr().err
    readme = tmp_path / "README.md"
    readme.write_text("no markers here\n")
    assert report.main(["compare", "--tracking-uri", uri, "--out", str(tmp_path / "r"), "--readme", str(readme)]) == 2
    assert "report:begin" in capsys.readouterr().err and not (tmp_path / "r").exists()


def test_missing_gives_older_runs_the_value_of_a_setting_they_predate(store, tmp_path: Path) -> None:
    uri, client = store
    exp = client.get_experiment_by_name("compare").experiment_id
    for seed, acc in ((1, 0.60), (2, 0.62), (3, 0.58)):  # the cnn again, with the new setting on
        rid = _run(client, exp, "cnn", seed, acc)
        client.log_param(rid, "frontend.trainable", "True")
    out = tmp_path / "report"
    args = ["compare", "--tracking-uri", uri, "--out", str(out), "--group-by", "model,frontend.trainable", "--no-log",
            "--filter", "tags.model = 'cnn'"]
    assert report.main(args) == 0
    groups = {tuple(r["group"]): r["n"] for r in json.loads((out / "report.json").read_text())["tables"]["test/track_acc"]}
    assert groups == {("cnn", "—"): 3, ("cnn", "True"): 3}  # the older runs never recorded it
    assert report.main([*args, "--missing", "frontend.trainable=False"]) == 0
    data = json.loads((out / "report.json").read_text())
    rows = {tuple(r["group"]): r for r in data["tables"]["test/track_acc"]}
    assert set(rows) == {("cnn", "False"), ("cnn", "True")}
    assert rows[("cnn", "False")]["mean"] == pytest.approx(0.71) and rows[("cnn", "True")]["mean"] == pytest.approx(0.60)
    (c,) = data["comparisons"]["test/track_acc"]
    assert c["n"] == 3  # paired by seed across the two groups
    with pytest.raises(SystemExit):
        report.parser().parse_args(["compare", "--missing", "no-equals-sign"])
