"""`python -m genre_lab.runs [--mark-dead]`: training runs with their true state.

MLflow shows a run RUNNING until its process says otherwise; a process killed with `kill -9`
or lost with its machine never does. This lists the runs of an experiment with the state
`genre_lab.tracking.liveness` finds (DEAD for a RUNNING run without a live process), and
`--mark-dead` closes those FAILED. A DEAD run can be continued with
`python -m genre_lab.train resume=<run id>`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time

from mlflow import MlflowClient
from mlflow.entities import Run
from rich.console import Console
from rich.table import Table

from genre_lab.tracking import mlflow_runs as tracking
from genre_lab.cli.options import add_tracking_uri_option
from genre_lab.tracking.liveness import HOST, PID, Liveness, liveness

EXPERIMENT = "genre_lab"
_STYLE = {"RUNNING": "green", "DEAD": "bold red", "FAILED": "red", "KILLED": "yellow", "FINISHED": ""}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m genre_lab.runs", description=__doc__.splitlines()[0])
    p.add_argument("--experiment", default=EXPERIMENT, help=f"MLflow experiment (default {EXPERIMENT})")
    add_tracking_uri_option(p)
    p.add_argument("--limit", type=int, default=50, help="newest runs shown (default 50)")
    p.add_argument("--running", action="store_true", help="only runs MLflow calls RUNNING (alive or dead)")
    p.add_argument("--mark-dead", action="store_true", help="close every DEAD run FAILED, with the reason as its error tag")
    return p


def list_runs(client: MlflowClient, experiment: str, limit: int, running: bool = False) -> list[tuple[Run, Liveness]]:
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise SystemExit(f"--experiment={experiment!r}: no such experiment in {tracking.redact_url(client.tracking_uri)}")
    where = "attributes.status = 'RUNNING'" if running else ""
    runs = client.search_runs([exp.experiment_id], where, max_results=limit, order_by=["attributes.start_time DESC"])
    now = time.time()
    return [(run, liveness(run, now)) for run in runs]


def mark_dead(client: MlflowClient, runs: list[tuple[Run, Liveness]]) -> list[str]:
    """Close the DEAD runs FAILED; their ids."""
    closed = []
    for run, state in runs:
        if state.state == "DEAD":
            tracking.close_run(client, run.info.run_id, f"process died: {state.reason}")
            closed.append(run.info.run_id)
    return closed


def table(runs: list[tuple[Run, Liveness]], title: str) -> Table:
    t = Table(title=title)
    t.add_column("run id", no_wrap=True, min_width=32)  # whole, to paste into resume=
    for name in ("name", "state", "MLflow", "epoch", "started", "heartbeat", "host:pid", "why"):
        t.add_column(name, justify="right" if name in ("epoch", "heartbeat") else "left")
    for run, state in runs:
        epoch = run.data.metrics.get("epoch")  # Lightning's, from 0; max_epochs once fit is over
        live = state.state in ("RUNNING", "DEAD")
        started = dt.datetime.fromtimestamp(run.info.start_time / 1000).strftime("%Y-%m-%d %H:%M:%S")
        tags = run.data.tags
        t.add_row(
            run.info.run_id, run.info.run_name or "",
            f"[{_STYLE.get(state.state, '')}]{state.state}[/]" if _STYLE.get(state.state) else state.state,
            run.info.status, "" if epoch is None else str(int(epoch)), started,
            f"{state.heartbeat_age:.0f} s ago" if live and state.heartbeat_age is not None else "",
            f"{tags.get(HOST, '?')}:{tags.get(PID, '?')}" if HOST in tags else "",
            state.reason if live else tags.get("error", "")[:60],
        )
    return t


def main(argv: list[str] | None = None) -> int:
    a = parser().parse_args(argv)
    client = MlflowClient(a.tracking_uri or tracking.tracking_uri())
    runs = list_runs(client, a.experiment, a.limit, a.running)
    console = Console(width=max(Console().width, 160))
    console.print(table(runs, f"{a.experiment} runs ({tracking.redact_url(client.tracking_uri)})"))
    dead = [r.info.run_id for r, s in runs if s.state == "DEAD"]
    if a.mark_dead:
        for run_id in mark_dead(client, runs):
            console.print(f"closed {run_id} FAILED")
    elif dead:
        console.print(f"{len(dead)} dead run(s): close them with --mark-dead, or continue one with "
                      f"python -m genre_lab.train resume=<run id>")
    return 0


if __name__ == "__main__":
    sys.exit(main())
