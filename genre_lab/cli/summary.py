"""What train and evaluate print when they finish: the two or three numbers a user reads, where
the run and its model are, and the commands that open and use it; every metric with `-v`.

Run names and tracking URIs are printed as plain text (no Rich markup): a run name is read from
the store, and a password in a tracking URI is replaced by `***`.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Mapping, Sequence

from rich.console import Console
from rich.table import Table
from rich.text import Text

from genre_lab.tracking.mlflow_runs import redact_url, tracking_uri

#: How the summary calls the headline metrics (the name after `<split>/`).
HEADLINE = {"track_acc": "track accuracy", "track_f1": "track macro-F1"}


def headline(metrics: Mapping[str, float], keys: Sequence[str]) -> list[tuple[str, float]]:
    """(label, value) of those of `keys` (`<split>/<headline name>`) that were logged, in order."""
    rows = []
    for key in keys:
        split, _, name = key.partition("/")
        if key in metrics:
            rows.append((f"{split} {HEADLINE.get(name, name)}", metrics[key]))
    return rows


def metric_table(metrics: Mapping[str, float], keys: Iterable[str], title: str | None = None) -> Table:
    """Every metric of `keys`, sorted, one row each."""
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in sorted(keys):
        table.add_row(Text(key), f"{metrics[key]:.4f}")
    return table


def ui_commands(uri: str, experiment_id: str, run_id: str) -> list[tuple[str, str]]:
    """How to see the run in MLflow's UI: its page on a tracking server; else `mlflow ui` on the
    store, then the page that serves."""
    shown = redact_url(uri)
    page = f"#/experiments/{experiment_id}/runs/{run_id}"
    if uri.startswith(("http://", "https://")):
        return [("Run page", f"{shown.rstrip('/')}/{page}")]
    return [("MLflow UI", f"mlflow ui --backend-store-uri {shlex.quote(shown)}"),
            ("Run page", f"http://127.0.0.1:5000/{page}")]


def predict_command(model: str, uri: str) -> str:
    """`genre-lab predict MODEL FILES`, with `--tracking-uri` when the store is not predict's default."""
    store = "" if uri == tracking_uri() else f" --tracking-uri {shlex.quote(redact_url(uri))}"
    return f"genre-lab predict {shlex.quote(model)} FILES{store}"


def print_lines(console: Console, heading: str, numbers: Sequence[tuple[str, float]],
                places: Sequence[tuple[str, str]]) -> None:
    """A heading, the numbers, then `label  value` lines (paths and commands), all plain text."""
    console.print(Text(heading, style="bold"), soft_wrap=True)
    width = max((len(label) for label, _ in numbers), default=0)
    for label, value in numbers:
        console.print(Text(f"  {label:<{width}}  {value:.4f}"))
    width = max((len(label) for label, _ in places), default=0)
    for label, value in places:
        # soft_wrap: a long path or command stays one line that can be copied whole.
        console.print(Text(f"{label + ':':<{width + 1}}  {value}"), soft_wrap=True)
