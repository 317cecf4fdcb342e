"""Server processes on this machine's loopback (`mlflow models serve`, `mlflow server`, the
MLflow UI), as the serving benchmark and the tests start them: a free port, waiting until the
server answers, and stopping the whole process session it leads (servers fork workers)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import requests


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(proc: subprocess.Popen, url: str, log: Path, limit: float = 120.0) -> None:
    """Until `url` answers 200; RuntimeError with the end of `log` if the server exits or
    does not answer within `limit` seconds."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if requests.get(url, timeout=5).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"server not ready after {limit:.0f} s:\n{log.read_text()[-3000:]}")


def stop_session(proc: subprocess.Popen) -> None:
    """SIGTERM to the session `proc` leads (started with `start_new_session=True`), SIGKILL
    after 20 s, then reap it."""
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
