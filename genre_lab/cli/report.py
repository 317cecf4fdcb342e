"""`python -m genre_lab.report EXPERIMENT`: the results table of an MLflow experiment.

Reads the experiment's finished training runs (evaluation, report and sweep-parent runs and
pruned trials are left out), groups them (`--group-by model,features`: tags first, then
params), pairs runs of different groups by seed and fold (`--pair-by`), and writes

  report.md   mean ± std over seeds and n runs per group, then paired differences between
              groups (paired t-test, 95% CI; `genre_lab.reporting.comparison`)
  report.tex  the same means as a booktabs tabular
  per_seed.png  every run's value as a point, per group and metric
  report.json   the numbers behind them

to `--out` (default `outputs/reports/<experiment>` in the working directory or `GENRE_LAB_HOME`), and logs them to a new run of the
experiment tagged `run_type=report`. `--readme FILE` (repeatable) replaces the block between
`<!-- report:begin -->` and `<!-- report:end -->` in FILE with the Markdown table, so the
result tables of `experiments/*/README.md` come from this command, not from a keyboard.

Tags and params come from a shared store: in the tables they are escaped text (one cell, no
rows, HTML, markers or LaTeX commands of their own; `genre_lab.reporting.comparison`), in the figure plain
text (`genre_lab.reporting.plots.plain_text`). FILE must hold exactly one begin marker followed by one end
marker, or it is refused untouched; only the text between them is rewritten.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities import Run

from genre_lab.reporting import comparison
from genre_lab.tracking import mlflow_runs as tracking
from genre_lab.cli.options import add_tracking_uri_option
from genre_lab.config import home
from genre_lab.reporting.comparison import Observation, Summary

#: Runs with one of these `run_type` tags are not training runs of the compared models.
EXCLUDED_RUN_TYPES = frozenset({"evaluation", "report", "sweep"})
README_BEGIN = "<!-- report:begin -->"
README_END = "<!-- report:end -->"


@dataclass
class Collected:
    observations: dict[str, list[Observation]]  # by metric
    runs: int = 0
    #: (run id, reason) of finished runs left out: missing a metric, or a duplicate seed.
    skipped: list[tuple[str, str]] = field(default_factory=list)


def _value(run: Run, key: str) -> str | None:
    """A run's tag `key`, else its param `key` (None if neither exists)."""
    if key in run.data.tags:
        return run.data.tags[key]
    return run.data.params.get(key)


def _counts(run: Run) -> bool:
    tags = run.data.tags
    return (
        tags.get("run_type") not in EXCLUDED_RUN_TYPES
        and tags.get("sweep_role") != "parent"
        and tags.get("trial_state") != "PRUNED"
    )


def finished_runs(client: MlflowClient, experiment_id: str, filter_string: str = "") -> list[Run]:
    """FINISHED runs of the experiment that train a compared model, oldest first."""
    query = "attributes.status = 'FINISHED'" + (f" and {filter_string}" if filter_string else "")
    runs: list[Run] = []
    token = None
    while True:
        page = client.search_runs([experiment_id], query, max_results=1000, page_token=token,
                                  order_by=["attributes.start_time ASC"])
        runs += [r for r in page if _counts(r)]
        token = page.token
        if not token:
            return runs


def collect(runs: Sequence[Run], metrics: Sequence[str], group_by: Sequence[str], pair_by: Sequence[str],
            missing: Mapping[str, str] | None = None) -> Collected:
    """Observations per metric. A run missing a metric is skipped for it; of two runs with the
    same group and pairing key (a rerun of a seed), the later one counts. `missing` gives the
    value of a group or pairing key for runs that did not record it (runs logged before the
    setting existed); other unrecorded keys read `—`."""
    missing = missing or {}
    out = Collected({m: [] for m in metrics})
    latest: dict[tuple[tuple[str, ...], tuple[str, ...]], Run] = {}
    for run in runs:
        group = tuple(_value(run, k) or missing.get(k) or "—" for k in group_by)
        pair = tuple(f"{k}={v}" for k in pair_by if (v := _value(run, k) or missing.get(k)) is not None)
        key = (group, pair)
        if key in latest:
            out.skipped.append((latest[key].info.run_id, f"replaced by the later run {run.info.run_id} of the same {pair or 'group'}"))
        latest[key] = run
    for (group, pair), run in latest.items():
        out.runs += 1
        for m in metrics:
            if m in run.data.metrics:
                out.observations[m].append(Observation(group, pair, float(run.data.metrics[m])))
            else:
                out.skipped.append((run.info.run_id, f"no metric {m}"))
    return out


def per_seed_figure(group_by: Sequence[str], tables: dict[str, list[Summary]]):
    """One panel per metric: each run as a point (same pairing key, same colour), the group
    mean as a bar across its points. Group names, keys and metric names are plain text."""
    from genre_lab.reporting.plots import plain_figure  # matplotlib with the headless backend, only when drawing

    return plain_figure(_per_seed_figure)(group_by, tables)


def _per_seed_figure(group_by: Sequence[str], tables: dict[str, list[Summary]]):
    from genre_lab.reporting.plots import plt

    metrics = list(tables)
    fig, axes = plt.subplots(1, len(metrics), figsize=(1.0 + 2.2 * max(len(t) for t in tables.values()) * len(metrics) / 2, 3.6),
                             squeeze=False)
    keys = sorted({k for rows in tables.values() for s in rows for k in s.values})
    colours = {k: plt.cm.tab10(i % 10) for i, k in enumerate(keys)}
    for ax, m in zip(axes[0], metrics):
        rows = tables[m]
        for x, s in enumerate(rows):
            for i, (k, v) in enumerate(sorted(s.values.items())):
                offset = (i - (len(s.values) - 1) / 2) * 0.06
                ax.scatter(x + offset, v, color=colours[k], s=28, zorder=3, label=", ".join(k) if x == 0 else None)
            ax.hlines(s.mean, x - 0.3, x + 0.3, color="black", linewidth=1.5, zorder=2)
        ax.set_xticks(range(len(rows)), ["\n".join(s.group) for s in rows])
        ax.set_xlim(-0.6, len(rows) - 0.4)
        ax.set_ylabel(m)
        ax.grid(axis="y", alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    if labels:
        fig.legend(handles, labels, loc="upper right", fontsize=7, title=None)
    fig.suptitle(f"per-run values, grouped by {', '.join(group_by)} (bar: mean)", fontsize=9)
    fig.tight_layout(rect=(0, 0, 0.88 if labels else 1, 1))
    return fig


def _block(text: str, path: Path) -> tuple[int, int]:
    """Where the report block of `path` starts and ends (just after its begin marker, at its
    end marker). The file must hold exactly one begin and one end marker, in that order:
    anything else is refused rather than guessed at."""
    begins, ends = text.count(README_BEGIN), text.count(README_END)
    start, stop = text.find(README_BEGIN), text.find(README_END)
    if begins != 1 or ends != 1 or stop < start:
        found = f"{begins} '{README_BEGIN}' and {ends} '{README_END}'" + (", end first" if begins == ends == 1 else "")
        raise ValueError(f"--readme {path}: needs exactly one '{README_BEGIN}' followed by one '{README_END}' "
                         f"to replace the block between them (found {found})")
    return start + len(README_BEGIN), stop


def _read_text(path: Path) -> str:
    """The file as it is (line endings kept), or a one-line error naming it."""
    try:
        with open(path, encoding="utf-8", newline="") as f:
            return f.read()
    except UnicodeDecodeError as err:
        raise ValueError(f"--readme {path}: not UTF-8 text (byte {err.start})") from None


def replace_block(path: Path, markdown: str | None) -> None:
    """Put `markdown` between the report markers of `path`; the rest of the file is kept byte
    for byte (its line endings too). None only checks that the file can take it."""
    text = _read_text(path)
    start, stop = _block(text, path)
    if markdown is None:
        return
    if README_BEGIN in markdown or README_END in markdown:  # escaped tables never hold one
        raise ValueError(f"--readme {path}: the table holds a report marker; not written")
    newline = "\r\n" if "\r\n" in text else "\n"
    block = ("\n" + markdown).replace("\n", newline)
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(text[:start] + block + text[stop:])


@dataclass
class Report:
    markdown: str
    latex: str
    tables: dict[str, list[Summary]]
    comparisons: dict[str, list[comparison.PairedComparison]]
    collected: Collected
    run_id: str | None = None
    files: dict[str, Path] = field(default_factory=dict)


def build(
    client: MlflowClient, experiment: str, metrics: Sequence[str], group_by: Sequence[str],
    pair_by: Sequence[str], filter_string: str = "", missing: Mapping[str, str] | None = None,
) -> Report:
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        names = ", ".join(e.name for e in client.search_experiments()) or "none"
        raise ValueError(f"no MLflow experiment named {experiment!r} (experiments in this store: {names})")
    collected = collect(finished_runs(client, exp.experiment_id, filter_string), metrics, group_by, pair_by, missing)
    empty = [m for m, obs in collected.observations.items() if not obs]
    if empty:
        raise ValueError(f"--metric {', '.join(empty)}: no finished training run of experiment {experiment!r} logged it")
    tables = {m: comparison.summarise(obs) for m, obs in collected.observations.items()}
    comparisons = {m: comparison.all_pairs(rows) for m, rows in tables.items()}
    md = comparison.markdown(group_by, tables, comparisons)
    return Report(md, comparison.latex(group_by, tables), tables, comparisons, collected)


def write(report: Report, out_dir: Path, group_by: Sequence[str]) -> dict[str, Path]:
    from genre_lab.reporting.plots import plain_text, plt

    out_dir.mkdir(parents=True, exist_ok=True)
    files = {"markdown": out_dir / "report.md", "latex": out_dir / "report.tex",
             "figure": out_dir / "per_seed.png", "json": out_dir / "report.json"}
    files["markdown"].write_text(report.markdown, encoding="utf-8")
    files["latex"].write_text(report.latex, encoding="utf-8")
    with plain_text():
        fig = per_seed_figure(group_by, report.tables)
        fig.savefig(files["figure"], dpi=120)
    plt.close(fig)
    data = {
        "group_by": list(group_by),
        "tables": {m: [{**asdict(s), "values": {", ".join(k): v for k, v in s.values.items()}} for s in rows]
                   for m, rows in report.tables.items()},
        "comparisons": {m: [asdict(c) for c in rows] for m, rows in report.comparisons.items()},
        "skipped": report.collected.skipped,
    }
    files["json"].write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")
    report.files = files
    return files


def log(client: MlflowClient, experiment: str, report: Report, args: argparse.Namespace) -> str:
    """A new run tagged `run_type=report` holding the written files."""
    exp_id = client.get_experiment_by_name(experiment).experiment_id
    tags = {"run_type": "report", "report.group_by": ",".join(args.group_by), **tracking.source_tags()}
    run_id = client.create_run(exp_id, run_name=f"report-{'-'.join(args.group_by)}", tags=tags).info.run_id
    error: BaseException | None = None
    try:
        tracking.log_params(client, run_id, {"group_by": ",".join(args.group_by), "metrics": ",".join(args.metric),
                                             "pair_by": ",".join(args.pair_by), "filter": args.filter,
                                             "runs": report.collected.runs})
        for path in report.files.values():
            client.log_artifact(run_id, str(path), "report")
        return run_id
    except BaseException as err:
        error = err
        raise
    finally:
        tracking.close_run(client, run_id, error)


def _assignment(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), value.strip()


def _csv(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m genre_lab.report", description=__doc__.split("\n\n")[0])
    p.add_argument("experiment", help="MLflow experiment name (e.g. genre_lab, synthetic_compare)")
    p.add_argument("--group-by", type=_csv, default=["model", "features"],
                   help="comma-separated tags or params that define a compared configuration (default model,features)")
    p.add_argument("--metric", action="append", default=None,
                   help="metric to tabulate, repeatable (default test/track_acc)")
    p.add_argument("--pair-by", type=_csv, default=["seed", "data.fold"],
                   help="tags or params that match runs across groups for the paired test (default seed,data.fold)")
    p.add_argument("--filter", default="", help="extra MLflow search filter, e.g. \"params.`data.source.difficulty` = 'medium'\"")
    p.add_argument("--missing", type=_assignment, action="append", default=[], metavar="KEY=VALUE",
                   help="value of a group or pairing key for runs that did not record it (logged before the setting "
                        "existed), e.g. features.frontend.trainable=False; repeatable")
    p.add_argument("--out", type=Path, default=None, help="output folder (default <GENRE_LAB_HOME or .>/outputs/reports/<experiment>)")
    p.add_argument("--readme", type=Path, action="append", default=[],
                   help="Markdown file whose report block gets the table (repeatable)")
    add_tracking_uri_option(p)
    p.add_argument("--no-log", action="store_true", help="write the files only; no report run in MLflow")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    args.metric = args.metric or ["test/track_acc"]
    if not args.group_by:
        parser().error("--group-by needs at least one tag or param name")
    client = MlflowClient(args.tracking_uri or tracking.tracking_uri())
    try:
        for readme in args.readme:  # fail before any work when a README cannot take the table
            replace_block(readme, None)
        report = build(client, args.experiment, args.metric, args.group_by, args.pair_by, args.filter,
                       dict(args.missing))
    except (ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    out = args.out or home() / "outputs" / "reports" / re.sub(r"[^\w.-]+", "_", args.experiment)
    write(report, out, args.group_by)
    try:
        for readme in args.readme:  # checked again: the file may have changed meanwhile
            replace_block(readme, report.markdown)
    except (ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if not args.no_log:
        report.run_id = log(client, args.experiment, report, args)
    print(report.markdown)
    for reason in sorted({r for _, r in report.collected.skipped}):
        print(f"skipped: {reason}", file=sys.stderr)
    print(f"{report.collected.runs} runs; files in {out}" + (f"; MLflow run {report.run_id}" if report.run_id else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
