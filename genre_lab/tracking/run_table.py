"""The runs of an experiment with their true state: the work behind `genre-lab runs`.

MLflow shows a run RUNNING until its process says otherwise; a process killed with `kill -9`
or lost with its machine never does. Each run is shown with the state `liveness` finds (DEAD
for a RUNNING run without a live process) and its kind (`run_kinds`). A sweep's parent run has
no process of its own (its workers run the trials, each a run with a heartbeat): it is shown
with its trials, counted by Optuna state, instead of a heartbeat.

Tags are untrusted text from a store: they are shown escaped (`rich.markup.escape`), and
nothing read from them goes into a search filter.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

from mlflow import MlflowClient
from mlflow.entities import Run
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID
from rich.markup import escape
from rich.table import Table

from genre_lab.tracking import mlflow_runs as tracking
from genre_lab.tracking.liveness import HEARTBEAT, HOST, PID, Liveness, liveness
from genre_lab.tracking.run_kinds import ROLE_TAG, STATE_TAG, STUDY_TAG, SWEEP, SWEEP_TRIAL, TRAINING, run_kind

_STYLE = {"RUNNING": "green", "DEAD": "bold red", "FAILED": "red", "KILLED": "yellow", "FINISHED": ""}
#: Optuna trial states, in the order a sweep's summary lists them.
_TRIAL_STATES = ("COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING")


@dataclass(frozen=True)
class Listed:
    run: Run
    state: Liveness
    kind: str


def _trials(client: MlflowClient, experiment_id: str) -> dict[str, list[Run]]:
    """Every sweep trial of the experiment, by the run id of its sweep parent."""
    out: dict[str, list[Run]] = {}
    token = None
    while True:
        page = client.search_runs([experiment_id], f"tags.{ROLE_TAG} = 'trial'", max_results=1000, page_token=token)
        for run in page:
            parent = run.data.tags.get(MLFLOW_PARENT_RUN_ID)
            if parent:
                out.setdefault(parent, []).append(run)
        token = page.token
        if not token:
            return out


def sweep_summary(parent: Run, trials: list[Run], now: float) -> str:
    """`sweep 'study': 12 of 20 trials (8 complete, 3 pruned, 1 running); best 0.41 (trial 7)`:
    the trials by Optuna state (a RUNNING trial whose process is gone counts as dead)."""
    states: Counter[str] = Counter()
    for trial in trials:
        state = trial.data.tags.get(STATE_TAG, "RUNNING" if trial.info.status == "RUNNING" else "?")
        if state == "RUNNING" and trial.info.status in ("FAILED", "KILLED"):  # closed, tag not updated
            state = "FAIL"
        elif state == "RUNNING" and liveness(trial, now).state == "DEAD":
            state = "DEAD"
        states[state if state in (*_TRIAL_STATES, "DEAD") else "other"] += 1
    tags = parent.data.tags
    budget = tags.get("sweep.n_trials")
    counts = ", ".join(f"{states[s]} {s.lower()}" for s in (*_TRIAL_STATES, "DEAD", "other") if states[s])
    text = f"sweep {tags.get(STUDY_TAG, '?')!r}: {len(trials)}" + (f" of {budget}" if budget else "") + " trials"
    text += f" ({counts})" if counts else ""
    best = parent.data.metrics.get("best_value")
    if best is not None:
        text += f"; best {tags.get('sweep.metric', 'value')} {best:.4g}" + (
            f" (trial {tags['best_trial']})" if "best_trial" in tags else "")
    return text


def list_runs(client: MlflowClient, experiment: str, limit: int, running: bool = False) -> tuple[list[Listed], dict[str, str]]:
    """The newest `limit` runs of `experiment` (only MLflow-RUNNING ones with `running`), each
    with its true state and kind, and the summary of each listed sweep parent by run id.
    ValueError names an experiment that is not in the store."""
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise ValueError(f"--experiment={experiment!r}: no such experiment in {tracking.redact_url(client.tracking_uri)}")
    where = "attributes.status = 'RUNNING'" if running else ""
    runs = client.search_runs([exp.experiment_id], where, max_results=limit, order_by=["attributes.start_time DESC"])
    now = time.time()
    by_id: dict[str, Mapping[str, str]] = {r.info.run_id: r.data.tags for r in runs}
    listed = [Listed(run, liveness(run, now), run_kind(run.data.tags, by_id.get)) for run in runs]
    sweeps: dict[str, str] = {}
    if any(item.kind == SWEEP for item in listed):
        trials = _trials(client, exp.experiment_id)
        sweeps = {item.run.info.run_id: sweep_summary(item.run, trials.get(item.run.info.run_id, []), now)
                  for item in listed if item.kind == SWEEP}
    return listed, sweeps


def mark_dead(client: MlflowClient, runs: list[Listed]) -> list[str]:
    """Close the DEAD runs FAILED; their ids."""
    closed = []
    for item in runs:
        if item.state.state == "DEAD":
            tracking.close_run(client, item.run.info.run_id, f"process died: {item.state.reason}")
            closed.append(item.run.info.run_id)
    return closed


def _why(item: Listed, sweeps: Mapping[str, str]) -> str:
    run, state = item.run, item.state
    if item.kind == SWEEP:
        return sweeps.get(run.info.run_id, "")
    live = state.state in ("RUNNING", "DEAD")
    if live and item.kind not in (TRAINING, SWEEP_TRIAL) and HEARTBEAT not in run.data.tags:
        return f"{item.kind} runs record no heartbeat"
    return state.reason if live else run.data.tags.get("error", "")[:60]


def table(runs: list[Listed], sweeps: Mapping[str, str], title: str) -> Table:
    """The rich table: run id (whole, to paste into `resume=`), name, kind, true state, MLflow
    status, epoch, start, heartbeat age, host:pid, and why (a sweep: its trials)."""
    t = Table(title=escape(title))
    t.add_column("run id", no_wrap=True, min_width=32)
    for name in ("name", "kind", "state", "MLflow", "epoch", "started", "heartbeat", "host:pid", "why"):
        t.add_column(name, justify="right" if name in ("epoch", "heartbeat") else "left", no_wrap=name == "started", min_width=19 if name == "started" else None)
    for item in runs:
        run, state = item.run, item.state
        epoch = run.data.metrics.get("epoch")  # Lightning's, from 0; max_epochs once fit is over
        live = state.state in ("RUNNING", "DEAD") and item.kind != SWEEP
        started = dt.datetime.fromtimestamp(run.info.start_time / 1000).strftime("%Y-%m-%d %H:%M:%S")
        tags = run.data.tags
        style = _STYLE.get(state.state, "")
        t.add_row(
            escape(run.info.run_id), escape(run.info.run_name or ""), escape(item.kind),
            f"[{style}]{state.state}[/]" if style else escape(state.state),
            escape(run.info.status), "" if epoch is None else str(int(epoch)), started,
            f"{state.heartbeat_age:.0f} s ago" if live and state.heartbeat_age is not None else "",
            escape(f"{tags.get(HOST, '?')}:{tags.get(PID, '?')}") if HOST in tags else "",
            escape(_why(item, sweeps)),
        )
    return t
