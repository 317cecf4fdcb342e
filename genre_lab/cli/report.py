"""`genre-lab report EXPERIMENT`: the results table of an MLflow experiment.

Reads the experiment's finished training runs, groups them (`--group-by model,features`: tags
first, then params), pairs runs of different groups by seed and fold (`--pair-by`), and writes
report.md (mean ± std, paired t-tests), report.tex, per_seed.png and report.json to `--out`,
logged to a new run tagged `run_type=report`; `--readme FILE` puts the table between FILE's
`<!-- report:begin -->` and `<!-- report:end -->` markers (`genre_lab.reporting.experiment_report`).

One row is one configuration: runs of a group that differ in any other logged setting are
split into rows by those settings (`--strict` refuses instead), two runs of the same settings
and seed are refused (`--latest` keeps the newer), and sweep trials, ensembles and evaluations
count only with `--include` (`genre_lab.reporting.collect`).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from mlflow import MlflowClient

from genre_lab.cli.options import add_tracking_uri_option
from genre_lab.reporting.collect import IGNORED_SETTINGS, INCLUDABLE
from genre_lab.reporting.experiment_report import ReportRequest, make_report
from genre_lab.tracking import mlflow_runs as tracking


def _assignment(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), value.strip()


def _csv(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def _kinds(text: str) -> list[str]:
    names = _csv(text)
    unknown = [n for n in names if n not in INCLUDABLE]
    if unknown:
        raise argparse.ArgumentTypeError(f"{', '.join(map(repr, unknown))}: choose from {', '.join(INCLUDABLE)}")
    return names


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="genre-lab report", description="The results table of an MLflow experiment: mean ± "
                                "std per configuration over seeds/folds, and paired tests between configurations.")
    p.add_argument("experiment", help="MLflow experiment name (e.g. genre_lab, synthetic_compare)")
    p.add_argument("--group-by", type=_csv, default=["model", "features"],
                   help="comma-separated tags or params that define a compared configuration (default model,features)")
    p.add_argument("--metric", action="append", default=None,
                   help="metric to tabulate, repeatable (default test/track_acc)")
    p.add_argument("--pair-by", type=_csv, default=["seed", "data.fold"],
                   help="tags or params that match runs across groups for the paired test (default seed,data.fold)")
    p.add_argument("--filter", default="", help="extra MLflow search filter, e.g. \"params.`data.source.difficulty` = 'medium'\"")
    p.add_argument("--missing", type=_assignment, action="append", default=[], metavar="KEY=VALUE",
                   help="value of a key or setting for runs that did not record it (logged before the setting "
                        "existed), e.g. features.frontend.trainable=False; repeatable")
    p.add_argument("--strict", action="store_true",
                   help="refuse when the runs of a group differ in other settings (default: one row per setting)")
    p.add_argument("--latest", action="store_true",
                   help="of runs with the same settings and seed/fold, keep the newest (default: refuse); "
                        "the others are listed as skipped")
    p.add_argument("--include", type=_kinds, default=[], metavar="KINDS",
                   help=f"also count these runs, comma-separated: {', '.join(INCLUDABLE)} (default: training runs only)")
    p.add_argument("--ignore", action="append", default=[], metavar="SETTING",
                   help="a param not compared between runs, or a prefix of such params, repeatable; always ignored: "
                        + ", ".join(IGNORED_SETTINGS))
    p.add_argument("--out", type=Path, default=None, help="output folder (default <GENRE_LAB_HOME or .>/outputs/reports/<experiment>)")
    p.add_argument("--readme", type=Path, action="append", default=[],
                   help="Markdown file whose report block gets the table (repeatable)")
    add_tracking_uri_option(p)
    p.add_argument("--no-log", action="store_true", help="write the files only; no report run in MLflow")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if not args.group_by:
        parser().error("--group-by needs at least one tag or param name")
    request = ReportRequest(
        args.experiment, args.metric or ["test/track_acc"], args.group_by, args.pair_by, args.filter,
        dict(args.missing), args.ignore, args.include, args.strict, args.latest, args.out, args.readme, not args.no_log)
    client = MlflowClient(args.tracking_uri or tracking.tracking_uri())
    try:
        report = make_report(client, request)
    except (ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(report.markdown)
    for note in report.collected.notes:
        print(note, file=sys.stderr)
    for reason, n in sorted(Counter(r for _, r in report.collected.skipped).items()):
        print(f"skipped{f' ({n} runs)' if n > 1 else ''}: {reason}", file=sys.stderr)
    print(f"{report.collected.runs} runs; files in {request.out_dir()}" + (f"; MLflow run {report.run_id}" if report.run_id else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
