"""`genre-lab ensemble MODEL MODEL [MODEL...]` or `--from-experiment NAME --top K`: combine
trained models into one, logged as an MLflow run with its own servable model.

MODEL (positional or `run=<model>`, as often as there are members) is anything
`genre-lab predict` takes (run id, checkpoint, `models:/` or `runs:/` URI). The ensemble averages
the members' window probabilities (uniformly, or weighted by each member's validation score with
`--weights val`); members are named after their source runs in the run's params and in the
metrics `genre-lab evaluate` logs per member. What the run holds:
`genre_lab.inference.ensemble_runs`.
"""

from __future__ import annotations

import argparse
import sys

from rich.console import Console
from rich.markup import escape

from genre_lab.cli.refusals import error_line
from genre_lab.cli.options import add_tracking_uri_option, command_parser, models_from_run_arguments
from genre_lab.inference.ensemble_runs import WEIGHTINGS, create_ensemble
from genre_lab.training.quiet import quiet_third_party


def parser() -> argparse.ArgumentParser:
    p = command_parser("ensemble", __doc__)
    p.add_argument("models", nargs="*", metavar="MODEL",
                   help="run ids, checkpoints, models:/ or runs:/ URIs (each may be written run=<that>)")
    p.add_argument("--from-experiment", metavar="NAME", help="take the best runs of this MLflow experiment")
    p.add_argument("--top", type=int, default=3, metavar="K", help="how many runs --from-experiment takes (default 3)")
    p.add_argument("--metric", default="val/track_acc", help="ranks runs for --from-experiment and --weights val")
    p.add_argument("--weights", choices=WEIGHTINGS, default="uniform",
                   help="uniform mean, or weighted by each member's --metric")
    p.add_argument("--experiment", help="MLflow experiment of the ensemble run (default: the first member's)")
    p.add_argument("--run-name")
    add_tracking_uri_option(p)
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    a = p.parse_args(argv)
    models, _ = models_from_run_arguments(p, a.models, models=None)
    quiet_third_party()  # MLflow's download bars for every member, its INFO lines
    try:
        result = create_ensemble(models, a.tracking_uri, from_experiment=a.from_experiment, top=a.top,
                                 metric=a.metric, weighting=a.weights, experiment=a.experiment, run_name=a.run_name)
    except ValueError as err:  # EnsembleError and ModelSourceError too: the message names the member
        return error_line(err)
    Console().print(escape(f"ensemble of {', '.join(result.labels)}: MLflow run {result.run_id}"), highlight=False,
                    soft_wrap=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
