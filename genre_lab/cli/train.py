"""`python -m genre_lab.train [overrides]`: fit, test and log one model (Hydra `-m` for grids)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from omegaconf import DictConfig

from genre_lab.cli.hydra_command import hydra_command
from genre_lab.cli.refusals import refuse
from genre_lab.cli.verbosity import verbose

if TYPE_CHECKING:
    from genre_lab.training.fit import TrainResult

# Torch, Lightning and MLflow are imported inside the functions below: `--help` and a bad
# override are answered from `conf/` before any of them loads.


#: The numbers the summary leads with (every val/ and test/ metric with -v).
HEADLINE_KEYS = ("test/track_acc", "test/track_f1", "val/track_acc")


def print_summary(result: TrainResult, cfg: DictConfig) -> None:
    """The headline metrics, the run (name, id, folder, model) and the commands to open it in
    MLflow's UI and tag songs with it; every validation and test metric with `-v`."""
    from mlflow import MlflowClient
    from rich.console import Console

    from genre_lab.cli.summary import headline, metric_table, predict_command, print_lines, ui_commands

    uri = str(cfg.logger.mlflow.tracking_uri)
    run = MlflowClient(uri).get_run(result.run_id).info  # the name training gave it
    console = Console()
    if verbose():
        console.print(metric_table(result.metrics, (k for k in result.metrics if k.startswith(("test/", "val/")))))
    model = f"runs:/{result.run_id}/model" if cfg.get("log_model", True) else None
    places = [("Run folder", str(cfg.paths.output_dir)),
              *([("Checkpoint", result.best_checkpoint)] if result.best_checkpoint else []),
              *([("Model", model)] if model else []),
              *ui_commands(uri, run.experiment_id, result.run_id)]
    if model or result.best_checkpoint:
        places.append(("Predict", predict_command(result.run_id, uri)))
    if not verbose():
        places.append(("All metrics", "run again with -v, or see the run in the UI"))
    print_lines(console, f"{result.tags.get('model')} on {result.tags.get('dataset')}: run {run.run_name} ({result.run_id})",
                headline(result.metrics, HEADLINE_KEYS), places)


def refusals() -> tuple[type[Exception], ...]:
    """Refusals of a config (from a store, a best config or the command line), of a damaged
    checkpoint or model source (init_from, resume), of a dataset that is missing or leaks: the
    message names the setting or file and its source, so it is all the user needs."""
    from genre_lab.data.clips import DataConfigError
    from genre_lab.data.leakage import LeakageError
    from genre_lab.models.loading import ModelSourceError
    from genre_lab.models.model_file import CheckpointError
    from genre_lab.registry import ConfigSecurityError
    from genre_lab.training.resume import ResumeError
    from genre_lab.training.resume.lightning_checkpoints import CheckpointLoadError
    from genre_lab.training.resume.run_config import ResumeConfigError

    return (ResumeError, ResumeConfigError, ConfigSecurityError, CheckpointError, CheckpointLoadError, LeakageError,
            ModelSourceError, DataConfigError)


@hydra_command("train")
def main(cfg: DictConfig) -> float:
    from hydra.core.hydra_config import HydraConfig
    from lightning.pytorch.utilities import rank_zero_only

    from genre_lab.training.fit import fit_and_test

    # The command line is recorded so that `resume=<run>` can compose the same config again.
    try:
        result = fit_and_test(cfg, overrides=list(HydraConfig.get().overrides.task))
    except refusals() as err:
        refuse(err)
    if rank_zero_only.rank == 0:  # under DDP every rank returns here; one table
        print_summary(result, cfg)
    # Returned for Hydra sweepers: the validation track accuracy of the run.
    return result.metrics.get("val/track_acc", float("nan"))


if __name__ == "__main__":
    raise SystemExit(main())
