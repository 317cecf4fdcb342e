"""`python -m genre_lab.train [overrides]`: fit, test and log one model (Hydra `-m` for grids)."""

from __future__ import annotations

from hydra.core.hydra_config import HydraConfig
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table

from genre_lab.models.model_file import CheckpointError
from genre_lab.data.clips import DataConfigError
from genre_lab.data.leakage import LeakageError
from genre_lab.cli.hydra_command import hydra_command
from genre_lab.cli.refusals import refuse
from genre_lab.models.loading import ModelSourceError
from genre_lab.registry import ConfigSecurityError
from genre_lab.training.resume import ResumeError
from genre_lab.training.resume.lightning_checkpoints import CheckpointLoadError
from genre_lab.training.resume.run_config import ResumeConfigError
from genre_lab.training.fit import TrainResult, fit_and_test


def print_summary(result: TrainResult) -> None:
    table = Table(title=f"{result.tags.get('model')} on {result.tags.get('dataset')}  (MLflow run {result.run_id})")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in sorted(k for k in result.metrics if k.startswith(("test/", "val/"))):
        table.add_row(key, f"{result.metrics[key]:.4f}")
    Console().print(table)


#: Refusals of a config (from a store, a best config or the command line), of a damaged
#: checkpoint or model source (init_from, resume), of a dataset that is missing or leaks: the
#: message names the setting or file and its source, so it is all the user needs.
REFUSALS = (ResumeError, ResumeConfigError, ConfigSecurityError, CheckpointError, CheckpointLoadError, LeakageError,
            ModelSourceError, DataConfigError)


@hydra_command("train")
def main(cfg: DictConfig) -> float:
    # The command line is recorded so that `resume=<run>` can compose the same config again.
    try:
        result = fit_and_test(cfg, overrides=list(HydraConfig.get().overrides.task))
    except REFUSALS as err:
        refuse(err)
    if rank_zero_only.rank == 0:  # under DDP every rank returns here; one table
        print_summary(result)
    # Returned for Hydra sweepers: the validation track accuracy of the run.
    return result.metrics.get("val/track_acc", float("nan"))


if __name__ == "__main__":
    main()
