"""`genre-lab runs [--mark-dead]`: the runs of an experiment with their true state.

MLflow shows a run RUNNING until its process says otherwise; a process killed with `kill -9`
or lost with its machine never does. This lists the runs with the state and kind
`genre_lab.tracking.run_table` finds (DEAD for a RUNNING run without a live process; a sweep
with its trials), and `--mark-dead` closes the DEAD ones FAILED. A DEAD training run can be
continued with `genre-lab train resume=<run id>`.
"""

from __future__ import annotations

import argparse
import sys

from mlflow import MlflowClient
from rich.console import Console
from rich.markup import escape

from genre_lab.cli.options import add_tracking_uri_option
from genre_lab.tracking import mlflow_runs as tracking
from genre_lab.tracking.run_table import list_runs, mark_dead, table

EXPERIMENT = "genre_lab"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="genre-lab runs", description="The runs of an MLflow experiment with their true "
                                "state: dead processes found, sweeps shown with their trials.")
    p.add_argument("--experiment", default=EXPERIMENT, help=f"MLflow experiment (default {EXPERIMENT})")
    add_tracking_uri_option(p)
    p.add_argument("--limit", type=int, default=50, help="newest runs shown (default 50)")
    p.add_argument("--running", action="store_true", help="only runs MLflow calls RUNNING (alive or dead)")
    p.add_argument("--mark-dead", action="store_true", help="close every DEAD run FAILED, with the reason as its error tag")
    return p


def main(argv: list[str] | None = None) -> int:
    a = parser().parse_args(argv)
    client = MlflowClient(a.tracking_uri or tracking.tracking_uri())
    try:
        runs, sweeps = list_runs(client, a.experiment, a.limit, a.running)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    console = Console(width=max(Console().width, 160))
    console.print(table(runs, sweeps, f"{a.experiment} runs ({tracking.redact_url(client.tracking_uri)})"))
    dead = [item.run.info.run_id for item in runs if item.state.state == "DEAD"]
    if a.mark_dead:
        for run_id in mark_dead(client, runs):
            console.print(f"closed {escape(run_id)} FAILED")
    elif dead:
        console.print(f"{len(dead)} dead run(s): close them with --mark-dead, or continue a training run with "
                      f"genre-lab train resume=<run id>")
    return 0


if __name__ == "__main__":
    sys.exit(main())
