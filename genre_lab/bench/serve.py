"""`mlflow models serve` under load, against the in-process Tagger on the same clips.

A bounded load test on 127.0.0.1 only: the default CRNN saved as a pyfunc model folder, one
real `mlflow models serve` process (one uvicorn worker per core, one torch thread each), then
`clients` threads each sending `requests_per_client` requests of one 30 s clip (base64 WAV, as
a client uploads a file). It stops by itself: a fixed number of requests, each with a timeout,
then the server's whole process group is ended. Baseline: the same clips tagged by the Tagger in
this process one after another (requests/s and latency of one call).
"""

from __future__ import annotations

import base64
import io
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import requests
import soundfile as sf

from genre_lab.data.synthetic import GENRES, render_clip
from genre_lab.models.mlflow_model import save_tagger_model
from genre_lab.inference.tagger import Tagger
from genre_lab.machine import cores
from genre_lab.training.lightning_module import GenreClassifier
from genre_lab.tracking.servers import free_port, stop_session, wait_ready
from genre_lab.bench.common import Result

#: Seconds a server may take to answer /ping after start-up (imports, model load).
READY_SECONDS = 300.0


def clip_bytes(seconds: float, index: int, sample_rate: int = 22050) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, render_clip(GENRES[index % len(GENRES)], index, seconds, sample_rate), sample_rate,
             format="WAV", subtype="PCM_16")
    return buf.getvalue()


def _p95(latencies: list[float]) -> float:
    return float(np.percentile(latencies, 95))


def run(model: GenreClassifier, clients: int = 4, requests_per_client: int = 4, clip_seconds: float = 30.0,
        workers: int | None = None) -> list[Result]:
    workers = workers or cores()
    clips = [clip_bytes(clip_seconds, i) for i in range(clients * requests_per_client)]
    bodies = [{"dataframe_records": [{"audio_base64": base64.b64encode(c).decode("ascii")}], "params": {"top_k": 3}}
              for c in clips]

    # In-process baseline: the same clips, one call after another.
    tagger = Tagger(model, device="cpu")
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for i, c in enumerate(clips):
            files.append(Path(tmp) / f"clip{i}.wav")
            files[-1].write_bytes(c)
        tagger.tag(files[0])  # warm-up
        latencies = []
        t0 = time.perf_counter()
        for f in files:
            t = time.perf_counter()
            assert tagger.tag(f).ok
            latencies.append(time.perf_counter() - t)
        in_process = Result("in_process_tagger", len(files) / (time.perf_counter() - t0), "requests/s",
                            extra={"p95_latency_s": _p95(latencies)})

        folder = save_tagger_model(Path(tmp) / "model", model)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        log = Path(tmp) / "serve.log"
        threads = max(1, cores() // workers)
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
               "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
        with log.open("w") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "mlflow", "models", "serve", "-m", str(folder), "--env-manager", "local",
                 "-h", "127.0.0.1", "-p", str(port), "--workers", str(workers)],
                env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )
        try:
            wait_ready(proc, f"{url}/ping", log, READY_SECONDS)
            for _ in range(workers):  # warm every worker once
                requests.post(f"{url}/invocations", json=bodies[0], timeout=300).raise_for_status()

            def send(body: dict) -> float:
                t = time.perf_counter()
                response = requests.post(f"{url}/invocations", json=body, timeout=300)
                response.raise_for_status()
                (row,) = response.json()["predictions"]
                if row["error"]:
                    raise RuntimeError(f"served model answered an error: {row['error']}")
                return time.perf_counter() - t

            t0 = time.perf_counter()
            with ThreadPoolExecutor(clients) as pool:
                served = list(pool.map(send, bodies))
            wall = time.perf_counter() - t0
        finally:
            stop_session(proc)
    server = Result(f"mlflow_serve_{clients}clients", len(bodies) / wall, "requests/s", "in_process_tagger",
                    {"p95_latency_s": _p95(served), "workers": float(workers), "clip_seconds": clip_seconds})
    return [in_process, server]
