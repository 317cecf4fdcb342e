"""What the MLflow UI shows of a training run: names that tell runs apart (unique in their
experiment, safe whatever the config holds), the run description and headline view, only
metrics worth a chart; and, read back from a real `mlflow server` through the endpoints its
pages call, the experiment's kind, dataset inputs and the LoggedModel linked to its run and
metrics; and in headless Chromium, the headline view of the runs page."""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from hydra.utils import get_class
from mlflow import MlflowClient

from genre_lab.config import compose
from genre_lab.tracking.mlflow_runs import experiment_id
from genre_lab.tracking.run_names import (
    HEADLINE_METRICS, HEADLINE_PARAMS, NOTE_TAG, VIEW_KEY, VIEW_TAG, describe_results, headline_view, run_name,
    run_summary, unique_run_name, view_link,
)
from genre_lab.tracking.servers import free_port, stop_session, wait_ready
from genre_lab.tracking.mlflow_runs import EXPERIMENT_KIND, EXPERIMENT_KIND_TAG
from genre_lab.training.fit import fit_and_test

from tests.conftest import TINY


@contextlib.contextmanager
def mlflow_server(uri: str, folder: Path) -> Iterator[str]:
    """A real `mlflow server` on loopback over `uri`, answering /health (slow to start on a busy
    machine: up to 240 s); yields its address, stops it (its whole session) after the block."""
    port = free_port()
    log = folder / "server.log"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", uri, "--host", "127.0.0.1",
             "--port", str(port), "--workers", "1"],
            cwd=folder, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        wait_ready(proc, f"http://127.0.0.1:{port}/health", log, limit=240)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_session(proc)


@pytest.mark.parametrize("overrides, name", [
    ([], "crnn-logmel-synthetic-s42"),
    (["model=cnn", "features=mfcc", "seed=3"], "cnn-mfcc-synthetic-s3"),
    # Cross-validation folds differ by manifest or by split seed; repeats by seed.
    (["data=csv", "data.manifest=/cv/fold3.csv"], "crnn-logmel-csv:fold3-s42"),
    (["data=csv", "data.manifest=/cv/all.csv", "data.split_seed=4"], "crnn-logmel-csv:all-s42-split4"),
    (["data=folder", "data.root=/music/my_songs", "seed=1"], "crnn-logmel-folder:my_songs-s1"),
    (["data=gtzan", "data.root=/data/gtzan"], "crnn-logmel-gtzan-s42"),
])
def test_run_names_tell_runs_apart(overrides: list[str], name: str) -> None:
    cfg = compose(overrides)
    source_name = get_class(cfg.data.source._target_).name  # what the built source calls itself
    assert run_name(cfg, source_name) == name


@pytest.mark.parametrize("overrides, name", [
    (["trainer.max_epochs=2"], "crnn-logmel-synthetic-s42-e2"),
    (["model=cnn", "model.optimizer.lr=3e-4", "trainer.max_epochs=15", "seed=3"], "cnn-logmel-synthetic-s3-lr3e-4-e15"),
    (["data.batch_size=16", "model.freeze=backbone", "trainer=gpu"], "crnn-logmel-synthetic-s42-bs16-freeze-backbone-gpu"),
    (["model=cnn", "init_from=0123456789abcdef0123456789abcdef"], "cnn-logmel-synthetic-s42-ft"),
    # Where the run runs or how it prints: not part of the name.
    (["paths.root_dir=/tmp/x", "throughput_seconds=0", "callbacks.progress_bar=null", "data.num_workers=2"],
     "crnn-logmel-synthetic-s42"),
])
def test_run_names_say_what_the_command_line_changed(overrides: list[str], name: str) -> None:
    assert run_name(compose(overrides), "synthetic", overrides) == name


def test_other_changes_are_a_digest_shared_by_a_grid() -> None:
    small = ["data.source.clips_per_class={train: 8, val: 3, test: 3}", "trainer.max_epochs=1"]
    smaller = ["data.source.clips_per_class={train: 6, val: 3, test: 3}", "trainer.max_epochs=1"]
    a, b = (run_name(compose(o), "synthetic", o) for o in (small, smaller))
    assert a.startswith("crnn-logmel-synthetic-s42-e1-c") and len(a.rsplit("-c", 1)[1]) == 6
    assert a != b and a == run_name(compose(small), "synthetic", small)  # same settings, same name
    # The models of one grid (`-m model=cnn,rnn`) share the digest of the other settings.
    cnn = run_name(compose(["model=cnn", *small]), "synthetic", ["model=cnn", *small])
    assert cnn == a.replace("crnn-", "cnn-", 1)


def test_run_names_are_safe_whatever_the_config_holds() -> None:
    # A folder name is user input; names end up in filter strings, URLs and markdown.
    cfg = compose(["data=folder", "data.root=/music/x"])
    cfg.data.root = "/music/it's <b>a</b> 'mix' %_\n"
    cfg.model.freeze = "x'y`"
    name = run_name(cfg, "folder", ["model.freeze=backbone"])  # the value named is the config's
    assert name.startswith("crnn-logmel-folder:") and len(name) <= 120
    assert set(name) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:+-"), name


def test_unique_run_names_get_a_suffix(mlflow_uri: str) -> None:
    client = MlflowClient(mlflow_uri)
    exp = experiment_id("genre_lab", mlflow_uri)
    other = experiment_id("elsewhere", mlflow_uri)
    client.create_run(other, run_name="cnn-logmel-synthetic-s42")  # another experiment does not count
    names = []
    for _ in range(3):
        run = client.create_run(exp)
        names.append(unique_run_name(client, exp, "cnn-logmel-synthetic-s42", run.info.run_id))
        client.set_tag(run.info.run_id, "mlflow.runName", names[-1])
    assert names == ["cnn-logmel-synthetic-s42", "cnn-logmel-synthetic-s42-2", "cnn-logmel-synthetic-s42-3"]
    # A longer name sharing the prefix is not a clash; the run itself is not either.
    assert unique_run_name(client, exp, "cnn-logmel-synthetic-s4") == "cnn-logmel-synthetic-s4"
    first = client.search_runs([exp], filter_string="attributes.run_name = 'cnn-logmel-synthetic-s42'")[0]
    assert unique_run_name(client, exp, "cnn-logmel-synthetic-s42", first.info.run_id) == "cnn-logmel-synthetic-s42"


def test_description_gets_the_scores_and_keeps_other_notes(mlflow_uri: str) -> None:
    cfg = compose(["model=cnn"])
    client = MlflowClient(mlflow_uri)
    exp = experiment_id("genre_lab", mlflow_uri)
    scores = {"test/track_acc": 0.61234, "test/track_f1": 0.5, "val/track_acc": float("nan")}
    start = run_summary(cfg, "synthetic")
    assert start == "cnn on logmel, synthetic data, seed 42, 15 epochs max, lr 3e-3"
    # A fine-tune's origin (set before) stays below the summary line.
    tuned = client.create_run(exp, tags={NOTE_TAG: f"{start}\n\nFine-tuned from `abc`."}).info.run_id
    describe_results(client, tuned, cfg, "synthetic", scores)
    assert client.get_run(tuned).data.tags[NOTE_TAG] == f"test track acc 0.612, test track F1 0.500; {start}\n\nFine-tuned from `abc`."
    # A description written in the UI during the run is the user's.
    edited = client.create_run(exp, tags={NOTE_TAG: "my notes"}).info.run_id
    describe_results(client, edited, cfg, "synthetic", scores)
    assert client.get_run(edited).data.tags[NOTE_TAG] == "my notes"


@pytest.mark.slow
def test_two_identical_trainings_are_told_apart_with_headlines_and_no_zero_bookkeeping(
        mlflow_uri: str, tmp_path: Path) -> None:
    """What the runs table and charts show first: distinct names, a description with the test
    scores, the headline view on the experiment; no all-zero bookkeeping metric (they sort
    first in the charts) and no NaN."""
    overrides = [*TINY, "model=cnn", "trainer.max_epochs=1", "throughput_seconds=0", f"paths.root_dir={tmp_path}"]
    results = [fit_and_test(compose(overrides, output_dir=tmp_path / f"out{i}"), overrides=overrides) for i in range(2)]

    client = MlflowClient(mlflow_uri)
    runs = [client.get_run(r.run_id) for r in results]
    first, second = (r.info.run_name for r in runs)
    assert first.startswith("cnn-logmel-synthetic-s42-chunk2-e1-c") and second == f"{first}-2"
    for run, result in zip(runs, results):
        tags, metrics = run.data.tags, run.data.metrics
        assert tags["run_type"] == "training"
        assert tags[NOTE_TAG].startswith(f"test track acc {result.metrics['test/track_acc']:.3f}, ")
        assert "cnn on logmel, synthetic data, seed 42, 1 epochs max" in tags[NOTE_TAG]
        assert {"test/track_acc", "test/track_f1", "val/track_acc"} <= set(metrics)
        assert not [k for k in metrics if k.startswith("data/")], sorted(metrics)  # nothing skipped, nothing logged
        assert "frontend/audio_sec_per_sec" not in metrics  # not measured (throughput_seconds=0)
        assert all(math.isfinite(v) for v in metrics.values()), metrics
        # The LoggedModel: `runs:/<run id>/model` resolves by this name; the Models tab shows
        # its source run's name beside it.
        (logged,) = client.search_logged_models([run.info.experiment_id],
                                                filter_string=f"source_run_id = '{run.info.run_id}'")
        assert logged.name == "model"
    experiment = client.get_experiment(runs[0].info.experiment_id)
    assert json.loads(experiment.tags[VIEW_TAG]) == headline_view()
    assert f"viewStateShareKey={VIEW_KEY}" in experiment.tags[NOTE_TAG]  # the link to it, atop the runs page


@pytest.mark.slow
@pytest.mark.server
def test_ui_endpoints_show_kind_name_datasets_and_logged_model(mlflow_uri: str, tmp_path: Path) -> None:
    cfg = compose([*TINY, "model=cnn", "trainer.max_epochs=1", "throughput_seconds=0", "seed=5",
                   f"paths.root_dir={tmp_path}"], output_dir=tmp_path / "out")
    result = fit_and_test(cfg)

    with mlflow_server(mlflow_uri, tmp_path) as url:
        api = f"{url}/ajax-api/2.0/mlflow"
        assert "<html" in requests.get(url, timeout=30).text.lower()  # the UI itself is served

        # The experiment is a model-training one: runs table, Models tab, Dataset column.
        exp = requests.get(f"{api}/experiments/get-by-name", params={"experiment_name": "genre_lab"}, timeout=30).json()["experiment"]
        assert {"key": EXPERIMENT_KIND_TAG, "value": EXPERIMENT_KIND} in exp["tags"]

        (run,) = requests.post(f"{api}/runs/search", json={"experiment_ids": [exp["experiment_id"]]}, timeout=30).json()["runs"]
        assert run["info"]["run_id"] == result.run_id
        assert run["info"]["run_name"] == "cnn-logmel-synthetic-s5"
        inputs = {next(t["value"] for t in d["tags"] if t["key"] == "mlflow.data.context"): d["dataset"]
                  for d in run["inputs"]["dataset_inputs"]}
        assert set(inputs) == {"train", "val", "test"}
        assert {d["name"] for d in inputs.values()} == {"synthetic"}
        assert len({d["digest"] for d in inputs.values()}) == 3  # three different clip lists
        assert '"split_sizes": {"train": 120, "val": 40, "test": 40}' in inputs["train"]["profile"]
        (output,) = run["outputs"]["model_outputs"]

        # The LoggedModel: on the experiment's Models tab, from this run, with its test metrics
        # tied to the test dataset input.
        (model,) = requests.post(f"{api}/logged-models/search", json={"experiment_ids": [exp["experiment_id"]]},
                                 timeout=30).json()["models"]
        assert model["info"]["model_id"] == output["model_id"]
        assert model["info"]["source_run_id"] == result.run_id and model["info"]["status"] == "LOGGED_MODEL_READY"
        metrics = {m["key"]: m for m in model["data"]["metrics"]}
        assert metrics["test/track_acc"]["value"] == pytest.approx(result.metrics["test/track_acc"])
        assert metrics["test/track_acc"]["dataset_digest"] == inputs["test"]["digest"]
        assert metrics["val/loss"]["dataset_digest"] == inputs["val"]["digest"]


def _chromium() -> str:
    """Debian's chromium (`apt-get install chromium`); the test is skipped without it unless
    GENRE_LAB_REQUIRE_BROWSER=1 (where it fails instead)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("GENRE_LAB_REQUIRE_BROWSER") == "1":
            pytest.fail("GENRE_LAB_REQUIRE_BROWSER=1 but no chromium on PATH")
        pytest.skip("no chromium on PATH (apt-get install chromium)")
    return found


def _browse(chromium: str, url: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    """Headless Chromium on `url`, the MLflow UI's scripts given 20 s of virtual time; wide, as
    the grid leaves columns out of view out of the page (and MLflow's assistant panel takes a
    third of it on a loopback address)."""
    return subprocess.run([chromium, "--headless=new", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}",
                           "--window-size=3000,800", "--virtual-time-budget=20000", *args, url],
                          capture_output=True, text=True, timeout=240)


@pytest.mark.slow
@pytest.mark.server
def test_browser_shows_the_headline_view(mlflow_uri: str, tmp_path: Path) -> None:
    """The real UI in a real browser: the runs page in the headline view, as linked from the
    experiment's banner, lists the run by name with the headline metric and param columns."""
    chromium = _chromium()
    overrides = [*TINY, "model=cnn", "trainer.max_epochs=1", "throughput_seconds=0", f"paths.root_dir={tmp_path}"]
    result = fit_and_test(compose(overrides, output_dir=tmp_path / "out"), overrides=overrides)
    client = MlflowClient(mlflow_uri)
    run = client.get_run(result.run_id)

    with mlflow_server(mlflow_uri, tmp_path) as server:
        url = f"{server}/{view_link(run.info.experiment_id)}"
        dom = _browse(chromium, url, tmp_path / "profile", "--dump-dom")
        assert dom.returncode == 0, dom.stderr[-2000:]
        page = dom.stdout
        assert run.info.run_name in page and "Headline view" in page  # the run's name, the banner's link
        for column in (*HEADLINE_METRICS, *HEADLINE_PARAMS):
            assert column in page, column
        png = tmp_path / "runs.png"
        shot = _browse(chromium, url, tmp_path / "profile", f"--screenshot={png}", "--hide-scrollbars")
        assert shot.returncode == 0 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", shot.stderr[-2000:]
        assert png.stat().st_size > 20_000  # a rendered page, not a blank one
