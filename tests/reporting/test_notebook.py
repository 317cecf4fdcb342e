"""notebooks/compare_runs.ipynb runs top to bottom, as the README runs it (`jupyter execute`
from the repository root), on a real store holding a training run, a sweep and a report run,
finds that store through GENRE_LAB_HOME and draws its figures."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from mlflow import MlflowClient

from genre_lab.config import PROJECT_ROOT, compose
from genre_lab.sweep import run_sweep
from genre_lab.training.fit import fit_and_test
from tests.conftest import TINY

NOTEBOOK = PROJECT_ROOT / "notebooks" / "compare_runs.ipynb"

#: Two-epoch runs on a smaller synthetic set than TINY: a few seconds each.
QUICK = [
    *(o for o in TINY if not o.startswith(("trainer.max_epochs", "data.source.clips_per_class",
                                          "data.train_chunks_per_clip", "throughput_seconds"))),
    "data.source.clips_per_class={train: 8, val: 3, test: 2}",
    "data.train_chunks_per_clip=2",
    "trainer.max_epochs=2",
    "throughput_seconds=0",
]


@pytest.mark.slow
def test_compare_runs_notebook(tmp_path: Path, mlflow_uri: str) -> None:
    # The store the notebook reads: one plain training run and a two-trial sweep.
    fit_and_test(compose(["model=cnn", *QUICK, f"paths.root_dir={tmp_path}"], output_dir=tmp_path / "train"))
    sweep = run_sweep(["sweep=crnn", *QUICK, f"paths.root_dir={tmp_path}", "sweep.n_trials=2"],
                      output_dir=tmp_path / "sweep")
    assert sweep.counts["COMPLETE"] + sweep.counts["PRUNED"] == 2

    # A run that is not a trained model (what `report` logs): not counted.
    client = MlflowClient(mlflow_uri)
    client.create_run(client.get_experiment_by_name("genre_lab").experiment_id, run_name="report-model",
                      tags={"run_type": "report"})

    # As the README says, from the repository root; the store is found through GENRE_LAB_HOME
    # (the kernel runs in notebooks/, where no store may appear).
    executed = tmp_path / "compare_runs.ipynb"
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["GENRE_LAB_HOME"] = str(tmp_path)
    stray = PROJECT_ROOT / "notebooks" / "mlflow.db"
    existed = stray.exists()
    done = subprocess.run([str(Path(sys.executable).parent / "jupyter"), "execute", "notebooks/compare_runs.ipynb",
                           f"--output={executed.with_suffix('')}"], cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert existed or not stray.exists()
    nb = nbformat.read(executed, as_version=4)

    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream" and o.name == "stdout")
    assert mlflow_uri in text
    assert "1 training runs, 1 sweeps with 2 trials" in text
    # Figures: the accuracy bars, accuracy vs parameters, training curves, and one confusion
    # matrix for the training run and one for the best trial.
    pngs = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(pngs) >= 5, len(pngs)
    assert "2 confusion matrices" in text
    # The model table lists the training run and the sweep's best trial.
    tables = "".join(o["data"].get("text/plain", "") for o in outputs if "text/html" in o.get("data", {}))
    assert "best of sweep crnn-logmel" in tables and "training" in tables
