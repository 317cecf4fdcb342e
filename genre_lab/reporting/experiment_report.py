"""The results table of an MLflow experiment, the work behind `genre-lab report`.

The experiment's finished runs are collected into cells (`genre_lab.reporting.collect`: one
configuration per row, never two configurations averaged), summarised and compared
(`genre_lab.reporting.comparison`), and written to a folder:

  report.md     mean ± std over seeds and n runs per row, then paired differences between rows
  report.tex    the same means as a booktabs tabular
  per_seed.png  every run's value as a point, per row and metric
  report.json   the numbers behind them, the columns, and the runs skipped with why

then logged to a new run of the experiment tagged `run_type=report`, and put into the report
block of Markdown files (`genre_lab.reporting.readme_block`).

Tags and params come from a shared store: in the tables they are escaped text (one cell, no
rows, HTML, markers or LaTeX commands of their own; `comparison`), in the figure plain text
(`genre_lab.reporting.plots.plain_text`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from mlflow import MlflowClient

from genre_lab.config import home
from genre_lab.reporting import comparison
from genre_lab.reporting.collect import Collected, collect, finished_runs, include_kinds
from genre_lab.reporting.comparison import Summary
from genre_lab.reporting.readme_block import replace_block
from genre_lab.tracking import mlflow_runs as tracking


#: Metrics that describe what a model costs, not how well it does: its size (`model/params`,
#: the same for every seed) and its speed on the machine that ran it (`speed/...`, which moves
#: with the machine's load). They are tabulated beside the scores but not tested pairwise.
COSTS = ("model/", "speed/")


@dataclass(frozen=True)
class ReportRequest:
    """What `genre-lab report` was asked for (see its `--help` for each setting)."""

    experiment: str
    metrics: Sequence[str] = ("test/track_acc",)
    group_by: Sequence[str] = ("model", "features")
    pair_by: Sequence[str] = ("seed", "data.fold")
    filter: str = ""
    missing: Mapping[str, str] = field(default_factory=dict)
    ignore: Sequence[str] = ()
    include: Sequence[str] = ()
    strict: bool = False
    latest: bool = False
    out: Path | None = None
    readmes: Sequence[Path] = ()
    log: bool = True

    def out_dir(self) -> Path:
        """`out`, else `<GENRE_LAB_HOME or .>/outputs/reports/<experiment>` (a safe folder name)."""
        return self.out or home() / "outputs" / "reports" / re.sub(r"[^\w.-]+", "_", self.experiment)


@dataclass
class Report:
    markdown: str
    latex: str
    tables: dict[str, list[Summary]]
    comparisons: dict[str, list[comparison.PairedComparison]]
    collected: Collected
    run_id: str | None = None
    files: dict[str, Path] = field(default_factory=dict)


def build(client: MlflowClient, request: ReportRequest) -> Report:
    """Collect, summarise and compare the runs; ValueError (one line) when the experiment, a
    metric or the runs do not make a table."""
    exp = client.get_experiment_by_name(request.experiment)
    if exp is None:
        names = ", ".join(e.name for e in client.search_experiments()) or "none"
        raise ValueError(f"no MLflow experiment named {request.experiment!r} (experiments in this store: {names})")
    runs, left_out = finished_runs(client, exp.experiment_id, request.filter, include_kinds(request.include))
    empty = [m for m in request.metrics if not any(m in r.data.metrics for r in runs)]
    if not empty:
        collected = collect(runs, request.metrics, request.group_by, request.pair_by, request.missing,
                            ignore=request.ignore, strict=request.strict, latest=request.latest)
        collected.skipped[:0] = left_out
        empty = [m for m, obs in collected.observations.items() if not obs]
    if empty:
        raise ValueError(f"--metric {', '.join(empty)}: no finished training run of experiment "
                         f"{request.experiment!r} logged it")
    tables = {m: comparison.summarise(obs) for m, obs in collected.observations.items()}
    comparisons = {m: comparison.all_pairs(rows) for m, rows in tables.items() if not m.startswith(COSTS)}
    # No two groups share two seeds or folds (one run each): there is nothing to test.
    comparisons = {m: pairs for m, pairs in comparisons.items() if any(c.n >= 2 for c in pairs)}
    md = comparison.markdown(collected.columns, tables, comparisons)
    return Report(md, comparison.latex(collected.columns, tables), tables, comparisons, collected)


def per_seed_figure(columns: Sequence[str], tables: dict[str, list[Summary]], named: int | None = None):
    """One panel per metric: each run as a point (same pairing key, same colour), the row
    mean as a bar across its points. Rows are labelled by their values of `columns`; the
    columns after the first `named` (the settings a group was split by) as `name=value`, by
    the last part of the setting's name where that is unambiguous (`max_epochs=15`). Every
    label is plain text."""
    from genre_lab.reporting.plots import plain_figure  # matplotlib with the headless backend, only when drawing

    return plain_figure(_per_seed_figure)(columns, tables, len(columns) if named is None else named)


def _short_names(names: Sequence[str]) -> list[str]:
    """`model.optimizer.lr` -> `lr`, unless two of `names` would then read the same."""
    short = [n.rsplit(".", 1)[-1] for n in names]
    return short if len(set(short)) == len(short) else list(names)


def _per_seed_figure(columns: Sequence[str], tables: dict[str, list[Summary]], named: int):
    from genre_lab.reporting.plots import plt

    metrics = list(tables)
    split = _short_names(columns[named:])
    labels_of = {s.group: "\n".join([*s.group[:named], *(f"{c}={v}" for c, v in zip(split, s.group[named:]))])
                 for rows in tables.values() for s in rows}
    widest = max((len(line) for label in labels_of.values() for line in label.split("\n")), default=0)
    per_row = max(1.1, 0.07 * widest)  # inches per row, so that labels do not run into each other
    fig, axes = plt.subplots(1, len(metrics), figsize=(1.0 + per_row * max(len(t) for t in tables.values()) * len(metrics), 3.6),
                             squeeze=False)
    keys = sorted({k for rows in tables.values() for s in rows for k in s.values})
    colours = {k: plt.cm.tab10(i % 10) for i, k in enumerate(keys)}
    labelled: set[tuple[str, ...]] = set()
    for ax, m in zip(axes[0], metrics):
        rows = tables[m]
        for x, s in enumerate(rows):
            for i, (k, v) in enumerate(sorted(s.values.items())):
                offset = (i - (len(s.values) - 1) / 2) * 0.06
                label = None if k in labelled else (", ".join(k) or "no seed/fold")
                labelled.add(k)
                ax.scatter(x + offset, v, color=colours[k], s=28, zorder=3, label=label)
            ax.hlines(s.mean, x - 0.3, x + 0.3, color="black", linewidth=1.5, zorder=2)
        ax.set_xticks(range(len(rows)), [labels_of[s.group] for s in rows], fontsize=8 if split else None)
        ax.set_xlim(-0.6, len(rows) - 0.4)
        ax.set_ylabel(m)
        ax.grid(axis="y", alpha=0.3)
    handles, labels = [], []
    for ax in axes[0]:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.append(handle)
            labels.append(label)
    if labels:
        fig.legend(handles, labels, loc="upper right", fontsize=7, title=None)
    by = ", ".join(columns[:named]) + (f"; split by {', '.join(split)}" if split else "")
    fig.suptitle(f"per-run values by {by} (bar: mean)", fontsize=9)
    fig.tight_layout(rect=(0, 0, 0.88 if labels else 1, 1))
    return fig


def write(report: Report, out_dir: Path, group_by: Sequence[str]) -> dict[str, Path]:
    """report.md, report.tex, per_seed.png and report.json in `out_dir`."""
    from genre_lab.reporting.plots import plain_text, plt

    out_dir.mkdir(parents=True, exist_ok=True)
    files = {"markdown": out_dir / "report.md", "latex": out_dir / "report.tex",
             "figure": out_dir / "per_seed.png", "json": out_dir / "report.json"}
    files["markdown"].write_text(report.markdown, encoding="utf-8")
    files["latex"].write_text(report.latex, encoding="utf-8")
    collected = report.collected
    with plain_text():
        fig = per_seed_figure(collected.columns, report.tables, len(collected.columns) - len(collected.split_by))
        fig.savefig(files["figure"], dpi=120)
    plt.close(fig)
    data = {
        "group_by": list(group_by),
        "split_by": collected.split_by,
        "columns": collected.columns,
        "tables": {m: [{**asdict(s), "values": {", ".join(k): v for k, v in s.values.items()}} for s in rows]
                   for m, rows in report.tables.items()},
        "comparisons": {m: [asdict(c) for c in rows] for m, rows in report.comparisons.items()},
        "notes": collected.notes,
        "skipped": collected.skipped,
    }
    files["json"].write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")
    report.files = files
    return files


def log(client: MlflowClient, request: ReportRequest, report: Report) -> str:
    """A new run tagged `run_type=report` holding the written files."""
    exp_id = client.get_experiment_by_name(request.experiment).experiment_id
    tags = {"run_type": "report", "report.group_by": ",".join(request.group_by), **tracking.source_tags()}
    with tracking.tracked_run(client, exp_id, f"report-{'-'.join(request.group_by)}", tags) as run_id:
        tracking.log_params(client, run_id, {
            "group_by": ",".join(request.group_by), "metrics": ",".join(request.metrics),
            "pair_by": ",".join(request.pair_by), "filter": request.filter, "runs": report.collected.runs,
            "split_by": ",".join(report.collected.split_by), "include": ",".join(request.include),
            "strict": request.strict, "latest": request.latest})
        for path in report.files.values():
            client.log_artifact(run_id, str(path), "report")
    return run_id


def make_report(client: MlflowClient, request: ReportRequest) -> Report:
    """The whole command: every README checked before any work, the report built and written,
    the README blocks replaced (checked again: a file may have changed meanwhile), the report
    run logged. ValueError or OSError (one line) when something cannot be done."""
    for readme in request.readmes:
        replace_block(readme, None)
    report = build(client, request)
    write(report, request.out_dir(), request.group_by)
    for readme in request.readmes:
        replace_block(readme, report.markdown)
    if request.log:
        report.run_id = log(client, request, report)
    return report
