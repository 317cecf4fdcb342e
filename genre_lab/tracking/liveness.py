"""Is the process behind a RUNNING MLflow run still alive?

MLflow only knows what a process told it: a run whose process was `kill -9`'d or lost power
stays RUNNING forever. Every training run therefore records where it runs (tags
`genre_lab.host`, `genre_lab.pidns`, `genre_lab.pid`, `genre_lab.pid_started`) and refreshes a
heartbeat tag (`genre_lab.heartbeat`, unix seconds) from a background thread. A RUNNING run is
dead when, on its own host and PID namespace, its process is gone (`ProcessRecord.gone`), or,
seen from elsewhere, its heartbeat is older than `STALE_BEATS` intervals.

`ProcessRecord` is the package's one rule for "is that process still running": sweep workers
(`genre_lab.sweep.study`) record themselves and are judged by it too.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psutil
from mlflow import MlflowClient
from mlflow.entities import Run

log = logging.getLogger(__name__)

HOST, PIDNS, PID, PID_STARTED = "genre_lab.host", "genre_lab.pidns", "genre_lab.pid", "genre_lab.pid_started"
HEARTBEAT, INTERVAL = "genre_lab.heartbeat", "genre_lab.heartbeat_interval"
#: Missed heartbeats after which a run seen from another host counts as dead.
STALE_BEATS = 3
#: Seconds by which a PID's start time may differ from the recorded one and still be that process.
_START_TOLERANCE = 1.0


def pid_namespace() -> str:
    """This process's PID namespace ("" where there is none to read: not Linux). Containers
    sharing the host's name (host networking, Kubernetes `hostNetwork`) have PID namespaces of
    their own: a PID is only looked up in the namespace that recorded it."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


@dataclass(frozen=True)
class ProcessRecord:
    """Where a process runs, as recorded for others to check later: host name, PID namespace
    (None when not recorded), PID and the PID's start time (None when not recorded)."""

    host: str
    pidns: str | None
    pid: int
    started: float | None

    @classmethod
    def current(cls) -> ProcessRecord:
        pid = os.getpid()
        return cls(socket.gethostname(), pid_namespace(), pid, psutil.Process(pid).create_time())

    def is_local(self) -> bool:
        """Whether its PID can be looked up here: this host, and this PID namespace (a record
        without one counts as this one). Elsewhere only a heartbeat tells."""
        return self.host == socket.gethostname() and self.pidns in (None, pid_namespace())

    def gone(self) -> bool:
        """Whether the process (one of this host, see `is_local`) has ended: its PID is free,
        a zombie (ended, not yet reaped), or taken by a process that started at another time
        (PIDs are reused). A process that is not ours to inspect (another user's) is alive."""
        try:
            proc = psutil.Process(self.pid)
            if proc.status() == psutil.STATUS_ZOMBIE:
                return True
            return self.started is not None and abs(proc.create_time() - self.started) >= _START_TOLERANCE
        except psutil.NoSuchProcess:
            return True
        except psutil.Error:
            return False
        except ValueError:  # not a valid PID (negative): no such process
            return True


def process_tags(interval: float) -> dict[str, str]:
    """The tags a training run records: where its process runs, and its first heartbeat."""
    me = ProcessRecord.current()
    tags = {HOST: me.host, PIDNS: me.pidns, PID: str(me.pid), PID_STARTED: f"{me.started:.3f}",
            HEARTBEAT: f"{time.time():.3f}", INTERVAL: f"{interval:g}"}
    return {key: value for key, value in tags.items() if value}  # MLflow refuses empty tag values


class Heartbeat:
    """Refreshes the heartbeat tag every `interval` seconds until stopped (a daemon thread with
    its own client, so a busy training loop never delays it and it never delays training)."""

    def __init__(self, tracking_uri: str, run_id: str, interval: float) -> None:
        self.client, self.run_id, self.interval = MlflowClient(tracking_uri), run_id, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{run_id[:8]}", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.client.set_tag(self.run_id, HEARTBEAT, f"{time.time():.3f}")
            except Exception as err:  # a store hiccup must not end training; the next beat retries
                log.warning("heartbeat for run %s failed: %s", self.run_id, err)


@dataclass(frozen=True)
class Liveness:
    state: str  # the run's true state: MLflow's status, or DEAD for a RUNNING run without a process
    reason: str
    heartbeat_age: float | None


def liveness(run: Run, now: float | None = None) -> Liveness:
    """The true state of `run` (tags are untrusted data: malformed ones read as unknown)."""
    status = run.info.status
    tags = run.data.tags
    now = time.time() if now is None else now
    age = _age(tags.get(HEARTBEAT), now)
    if status != "RUNNING":
        return Liveness(status, "", age)
    host, pid = tags.get(HOST), _int(tags.get(PID))
    if host is not None and pid is not None:
        process = ProcessRecord(host, tags.get(PIDNS), pid, _float(tags.get(PID_STARTED)))
        if process.is_local():
            if process.gone():
                return Liveness("DEAD", f"process {pid} on {host} is gone", age)
            return Liveness("RUNNING", f"process {pid} on {host} is alive", age)
    interval = _float(tags.get(INTERVAL))
    if age is None or interval is None:
        return Liveness("RUNNING", "no heartbeat recorded (not started by genre_lab.cli.train?)", age)
    if age > STALE_BEATS * interval:
        return Liveness("DEAD", f"no heartbeat from {host} for {age:.0f} s", age)
    return Liveness("RUNNING", f"heartbeat from {host} {age:.0f} s ago", age)


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _age(value: str | None, now: float) -> float | None:
    beat = _float(value)
    return None if beat is None else max(0.0, now - beat)


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (a preempted VM, `kill`, a scheduler) stops the process like Ctrl-C, so training
    writes `interrupted.ckpt` and closes its run KILLED, and a sweep worker fails its running trial,
    instead of vanishing with runs left RUNNING. Only the main thread may set signal handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
