"""`genre-lab evaluate <run id | checkpoint | URI | pretrained:NAME> [data=<dataset>] [split=test]`:
track-level metrics of a trained model, logged as a new MLflow run linked to the trained one.
The model is positional or `run=<model>`, as in every command that takes one."""

from __future__ import annotations

from typing import TYPE_CHECKING

from omegaconf import DictConfig

from genre_lab.cli.hydra_command import hydra_command
from genre_lab.cli.options import model_as_override
from genre_lab.cli.refusals import refuse
from genre_lab.cli.verbosity import verbose

if TYPE_CHECKING:
    from genre_lab.inference.evaluation import EvaluationResult

# Torch and MLflow are imported inside the functions below: `--help` and a bad override are
# answered from `conf/` before either loads.


def refusals() -> tuple[type[Exception], ...]:
    """Refusals whose message names the run, file or setting at fault: one line, exit 2."""
    from genre_lab.data.clips import DataConfigError
    from genre_lab.data.leakage import LeakageError
    from genre_lab.inference.evaluation import EvaluationError
    from genre_lab.models.ensemble import EnsembleError
    from genre_lab.models.loading import ModelSourceError
    from genre_lab.models.model_file import CheckpointError
    from genre_lab.registry import ConfigSecurityError

    return (EvaluationError, ModelSourceError, CheckpointError, EnsembleError, ConfigSecurityError, LeakageError,
            DataConfigError)


def print_summary(result: EvaluationResult, cfg: DictConfig) -> None:
    """The split's track accuracy and macro-F1, the evaluation run and the command to open it in
    MLflow's UI; every metric (an ensemble's members too) with `-v`."""
    from mlflow import MlflowClient
    from rich.console import Console

    from genre_lab.cli.summary import headline, metric_table, print_lines, ui_commands
    from genre_lab.tracking.mlflow_runs import tracking_uri

    uri = str(cfg.get("tracking_uri") or tracking_uri())
    run = MlflowClient(uri).get_run(result.run_id).info
    console = Console()
    split = result.tags["split"]
    if verbose():
        console.print(metric_table(result.metrics, result.metrics))
    places = [("Evaluated", result.evaluated_run_id or result.tags.get("evaluated_model", "?")),
              *ui_commands(uri, run.experiment_id, result.run_id)]
    if not verbose():
        places.append(("All metrics", "run again with -v, or see the run in the UI"))
    print_lines(console, f"{result.tags['model']} on {result.tags['dataset']}/{split}: "
                         f"run {run.run_name} ({result.run_id})",
                headline(result.metrics, (f"{split}/track_acc", f"{split}/track_f1")), places)


@hydra_command("evaluate", rewrite=model_as_override)  # the model first, or as run=
def main(cfg: DictConfig) -> None:
    from genre_lab.inference.evaluation import evaluate

    try:
        result = evaluate(cfg)
    except refusals() as err:
        refuse(err)
    print_summary(result, cfg)


if __name__ == "__main__":
    raise SystemExit(main())
