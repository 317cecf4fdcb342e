"""`genre-lab audit data=<dataset> [overrides] [--model M] [--near-threshold 0.98] [--output DIR]`:
a dataset's exact and near-duplicates, leaks across splits, class balance and unused files.

The overrides are Hydra overrides of `conf/audit.yaml` and its `data` group, composed as `train`
composes them; the work is `genre_lab.inference.data_audit` (a table here, `audit.json` in
`--output`, one MLflow run tagged `run_type=audit`).
"""

from __future__ import annotations


from rich.console import Console
from rich.markup import escape
from rich.table import Table

from genre_lab.cli.refusals import error_line
from genre_lab.cli.options import add_tracking_uri_option, command_parser

#: Rows of each finding spelt out in the terminal; audit.json lists them all.
SHOWN_ROWS = 20


def parser():
    p = command_parser("audit", __doc__)
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="Hydra overrides: data=<dataset> (required), data.root=..., data.sample_rate=..., ...")
    p.add_argument("--model", default=None,
                   help="embed clips with this model for near-duplicates (run id, model file, models:/ or runs:/ URI, "
                        "pretrained:musicnn-msd); default: a spectral fingerprint, no model needed")
    p.add_argument("--near-threshold", type=float, default=0.98,
                   help="cosine similarity from which two clips are near-duplicates (default 0.98)")
    p.add_argument("--output", default=None, help="folder for audit.json (default outputs/audit/<dataset>)")
    add_tracking_uri_option(p)
    return p


def main(argv: list[str] | None = None) -> int:
    a = parser().parse_args(argv)
    # Imported here: `genre-lab audit --help` needs neither Hydra nor torch.
    from hydra.errors import HydraException
    from omegaconf import open_dict
    from omegaconf.errors import OmegaConfBaseException

    from genre_lab.config import compose
    from genre_lab.inference.data_audit import run_audit
    from genre_lab.models.loading import ModelSourceError
    from genre_lab.models.model_file import CheckpointError
    from genre_lab.registry import ConfigSecurityError

    refusals = (ModelSourceError, CheckpointError, ConfigSecurityError, HydraException, OmegaConfBaseException,
                ValueError)
    try:
        cfg = compose(a.overrides, config_name="audit")
        if a.tracking_uri:
            with open_dict(cfg):
                cfg.tracking_uri = a.tracking_uri
        result = run_audit(cfg, a.model, a.near_threshold, a.output)
    except refusals as error:  # LeakageError (one file listed twice) and DataConfigError are ValueErrors
        return error_line(error)
    print_report(Console(), result.report)
    Console().print(f"written to {escape(str(result.path))}; MLflow run {result.run_id}", highlight=False)
    return 0


def print_report(console: Console, report: dict) -> None:
    """The counts, then the first rows of each finding (names from the dataset are escaped)."""
    counts = Table(title=f"audit of {escape(report['dataset'])} ({escape(str(report['embedding']))} embedding, "
                         f"near-duplicates from cosine {report['near_threshold']:g})")
    counts.add_column("finding")
    counts.add_column("count", justify="right")
    for key, value in report["counts"].items():
        counts.add_row(escape(key), f"{value:g}")
    console.print(counts)

    balance = Table(title="class balance")
    balance.add_column("class")
    for split in report["class_balance"]:
        balance.add_column(split, justify="right")
    for cls in report["classes"]:
        balance.add_row(escape(cls), *(str(report["class_balance"][s][cls]) for s in report["class_balance"]))
    console.print(balance)

    def clip(entry: dict) -> str:
        return f"{escape(entry['clip'])} ({entry['split']})"

    rows = {
        "exact duplicates": [(", ".join(clip(c) for c in g["clips"]), "leak" if g["across_splits"] else "")
                             for g in report["exact_duplicates"]],
        "near-duplicates": [(f"{clip(p['first'])} ~ {clip(p['second'])} {p['similarity']:.4f}",
                             "leak" if p["across_splits"] else "") for p in report["near_duplicates"]],
        "artists across splits": [(escape(a["artist"]), ", ".join(f"{s} {len(ids)}" for s, ids in a["splits"].items()))
                                  for a in report["artists_across_splits"] or []],
        "unused files": [(escape(u["path"]), f"{u['kind']} ({u['split']}): {escape(u['reason'])}")
                         for u in report["unused_files"]],
    }
    for title, found in rows.items():
        if not found:
            continue
        table = Table(title=f"{title} ({len(found)}{', first ' + str(SHOWN_ROWS) if len(found) > SHOWN_ROWS else ''})")
        table.add_column("what")
        table.add_column("note")
        for what, note in found[:SHOWN_ROWS]:
            table.add_row(what, note)
        console.print(table)
