"""Multi-node DDP as a cluster launches it: two `torchrun` "nodes" on loopback (gloo), one process
each, training one model; Lightning finds the launcher through TorchElasticEnvironment."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

from genre_lab.config import PROJECT_ROOT
from tests.training.test_ddp import DDP_ARGS


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_torchrun_two_nodes_one_run_equal_to_single_process_evaluate(tmp_path: Path, mlflow_uri: str) -> None:
    port = free_port()
    torchrun = Path(sys.executable).with_name("torchrun")
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_uri, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    run_dir = tmp_path / "run"  # both nodes' Hydra folder: one shared filesystem, as on a cluster
    args = [*DDP_ARGS, "trainer.max_epochs=2", f"paths.root_dir={tmp_path}", f"hydra.run.dir={run_dir}"]
    nodes = [
        subprocess.Popen(
            [str(torchrun), "--nnodes=2", "--nproc_per_node=1", f"--node_rank={rank}", "--master_addr=127.0.0.1",
             f"--master_port={port}", "-m", "genre_lab.cli.train", "trainer=ddp", "trainer.num_nodes=2",
             "trainer.devices=1", *args],
            cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for rank in (0, 1)
    ]
    outputs = []
    for node in nodes:
        try:
            outputs.append(node.communicate(timeout=900)[0])
        except subprocess.TimeoutExpired:
            for other in nodes:
                other.kill()
            raise
    for node, out in zip(nodes, outputs):
        assert node.returncode == 0, out[-4000:]
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in "".join(outputs)

    client = MlflowClient(mlflow_uri)
    experiment = client.get_experiment_by_name("genre_lab")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1  # node 1 logs nothing of its own
    trained = runs[0]
    assert trained.info.status == "FINISHED"
    assert trained.data.params["trainer.num_nodes"] == "2" and trained.data.params["trainer.devices"] == "1"

    # One process evaluates the run's model (its kept checkpoint) on the data it was trained on.
    assert (run_dir / "checkpoints" / "best.ckpt").is_file()
    proc = subprocess.run([sys.executable, "-m", "genre_lab.cli.evaluate", f"run={trained.info.run_id}", "progress=false",
                           "explain.enabled=false", f"paths.root_dir={tmp_path}",
                           f"tracking_uri={mlflow_uri}", f"hydra.run.dir={tmp_path / 'evaluate'}"],
                          cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    (evaluation,) = [r for r in client.search_runs([e.experiment_id for e in client.search_experiments()])
                     if r.data.tags.get("run_type") == "evaluation"]
    assert evaluation.info.status == "FINISHED"
    single, ddp = evaluation.data.metrics, trained.data.metrics
    shared = [k for k in single if k.startswith(("test/track_", "test/chunk_")) and k in ddp]
    assert {"test/track_acc", "test/track_f1", "test/chunk_acc"} <= set(shared), sorted(single)
    for key in shared:
        assert ddp[key] == pytest.approx(single[key], abs=1e-5), key
