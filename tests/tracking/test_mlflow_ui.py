"""What the MLflow UI shows of a training run, read back from a real `mlflow server` through the
endpoints its pages call: the experiment's kind, run names that tell runs apart, dataset inputs,
and the LoggedModel linked to its run and metrics."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from hydra.utils import get_class

from genre_lab.config import compose
from genre_lab.tracking.run_names import run_name
from genre_lab.tracking.servers import free_port, stop_session
from genre_lab.tracking.mlflow_runs import EXPERIMENT_KIND, EXPERIMENT_KIND_TAG
from genre_lab.training.fit import fit_and_test

from tests.conftest import TINY


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


@pytest.mark.slow
@pytest.mark.server
def test_ui_endpoints_show_kind_name_datasets_and_logged_model(mlflow_uri: str, tmp_path: Path) -> None:
    cfg = compose([*TINY, "model=cnn", "trainer.max_epochs=1", "throughput_seconds=0", "seed=5",
                   f"paths.root_dir={tmp_path}"], output_dir=tmp_path / "out")
    result = fit_and_test(cfg)

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "server.log"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", mlflow_uri, "--host", "127.0.0.1",
             "--port", str(port), "--workers", "1"],
            cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 240
        while True:
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                if requests.get(f"{url}/health", timeout=10).status_code == 200:
                    break
            except (requests.ConnectionError, requests.Timeout):  # still starting (slow on a busy machine)
                pass
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(1)
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
    finally:
        stop_session(proc)
