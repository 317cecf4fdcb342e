"""Timing, result tables and MLflow logging shared by the benchmarks.

Every benchmark measures its contenders in one process on the same inputs, reports the
median of several repeats after a warm-up, and states each result as a ratio against a
baseline measured in the same run: absolute times on shared machines are noise, ratios are
what carries over.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass, field

import mlflow
import torch
from rich.console import Console
from rich.table import Table

from genre_lab.tracking import mlflow_runs as tracking
from genre_lab.machine import cores

EXPERIMENT = "benchmarks"


@dataclass
class Result:
    """One contender's measurement; `value` is a rate (higher is better) in `unit`."""

    name: str
    value: float
    unit: str
    baseline: str | None = None  # name of the Result this one is compared against
    extra: dict[str, float | str] = field(default_factory=dict)


def speedups(results: list[Result]) -> dict[str, float]:
    """`<contender>_speedup_vs_<baseline>` for every result that names a baseline."""
    by_name = {r.name: r for r in results}
    out = {}
    for r in results:
        if r.baseline and r.baseline in by_name and by_name[r.baseline].value > 0:
            out[f"{r.name}_speedup_vs_{r.baseline}"] = r.value / by_name[r.baseline].value
    return out


def environment_tags() -> dict[str, str]:
    import nnAudio
    import torchaudio

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else platform.processor() or "cpu"
    return {
        "device": device,
        "cuda": str(torch.cuda.is_available()),
        "torch": torch.__version__,
        "torchaudio": torchaudio.__version__,
        "nnAudio": getattr(nnAudio, "__version__", "unknown"),
        "threads": str(torch.get_num_threads()),
        "cpu_count": str(cores()),
        "git_commit": tracking.git_commit() or "unknown",
    }


def report(suite: str, results: list[Result], params: dict[str, object], console: Console | None = None) -> str:
    """Print the table and log one MLflow run in experiment `benchmarks`; returns the run id."""
    ratios = speedups(results)
    table = Table(title=f"bench {suite}")
    for col in ("contender", "rate", "unit", "vs baseline", "notes"):
        table.add_column(col, justify="right" if col in ("rate", "vs baseline") else "left")
    for r in results:
        ratio = ratios.get(f"{r.name}_speedup_vs_{r.baseline}")
        notes = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in r.extra.items())
        table.add_row(r.name, f"{r.value:,.1f}", r.unit, f"{ratio:.2f}x {r.baseline}" if ratio else "baseline", notes)
    (console or Console(width=220)).print(table)

    uri = tracking.tracking_uri()
    mlflow.set_tracking_uri(uri)
    with mlflow.start_run(run_name=f"bench-{suite}", experiment_id=tracking.experiment_id(EXPERIMENT, uri)) as run:
        mlflow.set_tags({"suite": suite, **environment_tags()})
        mlflow.log_params({k: str(v) for k, v in params.items()})
        mlflow.log_metrics({_metric_name(r.name): r.value for r in results})
        mlflow.log_metrics({_metric_name(k): v for k, v in ratios.items()})
        for r in results:
            numeric = {f"{r.name}.{k}": float(v) for k, v in r.extra.items() if isinstance(v, (int, float))}
            mlflow.log_metrics({_metric_name(k): v for k, v in numeric.items()})
        mlflow.log_dict(
            {"results": [r.__dict__ for r in results], "speedups": ratios}, f"bench_{suite}.json"
        )
        return run.info.run_id


def _metric_name(name: str) -> str:
    # MLflow metric names allow alphanumerics, _ - . / and space.
    return "".join(c if c.isalnum() or c in "_-./ " else "_" for c in name)
