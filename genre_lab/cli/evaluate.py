"""`python -m genre_lab.evaluate run=<run id | checkpoint | URI> [data=<dataset>] [split=test]`:
track-level metrics of a trained model, logged as a new MLflow run linked to the trained one."""

from __future__ import annotations

from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table

from genre_lab.models.model_file import CheckpointError
from genre_lab.data.clips import DataConfigError
from genre_lab.data.leakage import LeakageError
from genre_lab.inference.evaluation import EvaluationError, EvaluationResult, evaluate
from genre_lab.models.ensemble import EnsembleError
from genre_lab.models.loading import ModelSourceError
from genre_lab.cli.hydra_command import hydra_command
from genre_lab.cli.refusals import refuse
from genre_lab.registry import ConfigSecurityError

#: Refusals whose message names the run, file or setting at fault: one line, exit 2.
REFUSALS = (EvaluationError, ModelSourceError, CheckpointError, EnsembleError, ConfigSecurityError, LeakageError,
            DataConfigError)


def print_summary(result: EvaluationResult) -> None:
    table = Table(title=f"{result.tags['model']} on {result.tags['dataset']}/{result.tags['split']}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in sorted(result.metrics):
        table.add_row(key, f"{result.metrics[key]:.4f}")
    console = Console()
    console.print(table)
    link = f" (evaluates run {result.evaluated_run_id})" if result.evaluated_run_id else ""
    console.print(f"MLflow run {result.run_id}{link}", highlight=False)


@hydra_command("evaluate")
def main(cfg: DictConfig) -> None:
    try:
        result = evaluate(cfg)
    except REFUSALS as err:
        refuse(err)
    print_summary(result)


if __name__ == "__main__":
    main()
