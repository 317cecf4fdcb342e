"""`genre-lab sweep sweep=crnn [overrides]` (or `python -m genre_lab.sweep`): one Optuna sweep worker.

Start it again to resume the study; start several (`make sweep-workers N=2`) to share it.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from genre_lab.cli.hydra_command import hydra_command
from genre_lab.cli.refusals import refuse

if TYPE_CHECKING:
    from genre_lab.sweep.runner import SweepResult

# Optuna, Lightning and MLflow are imported inside `main`: `--help` and a bad override are
# answered from `conf/` before any of them loads.


def print_summary(result: SweepResult) -> None:
    # The study name, parameter paths and rerun command come from a shared Optuna storage: escaped.
    table = Table(title=f"Sweep {escape(result.study_name)}  (MLflow parent run {result.parent_run_id})")
    table.add_column("")
    table.add_column("value", justify="right")
    for state, n in result.counts.items():
        if n:
            table.add_row(f"trials {state.lower()}", str(n))
    if result.best_trial is not None:
        table.add_row("best trial", str(result.best_trial))
        table.add_row("best value", f"{result.best_value:.4f}")
        for path, value in result.best_params.items():
            table.add_row(f"  {escape(path)}", f"{value:.4g}" if isinstance(value, float) else escape(str(value)))
    table.add_row("wall time (this worker)", f"{result.wall_seconds:.1f} s")
    table.add_row("storage", escape(result.storage))
    console = Console()
    console.print(table)
    console.print(f"MLflow parent run: {result.parent_run_id}", soft_wrap=True)
    if result.rerun_command:
        console.print(f"Re-run the best config:\n  {escape(result.rerun_command)}", soft_wrap=True)


@hydra_command("sweep")
def main(cfg: DictConfig) -> float | None:
    from genre_lab.sweep.runner import run_sweep
    from genre_lab.sweep.space import SweepConfigError

    hydra_cfg = HydraConfig.get()
    try:
        result = run_sweep(hydra_cfg.overrides.task, hydra_cfg.runtime.output_dir, cfg=cfg)
    except SweepConfigError as err:
        # Nothing has run yet: the message (naming the setting) is all the user needs.
        refuse(err)
    except KeyboardInterrupt:
        Console(stderr=True).print("Interrupted: the running trial is marked FAIL. Re-run the same command to resume.")
        sys.exit(130)
    print_summary(result)
    return result.best_value


if __name__ == "__main__":
    main()
