"""`genre-lab probe MODEL data=<dataset> [probe.layer=...] [probe.pooling=mean,std,max] [data.folds=K]`:
a linear probe on MODEL's embeddings (`genre_lab.inference.linear_probe`), logged as one MLflow run.

MODEL is anything `load_model` takes but an ensemble (run id, checkpoint, `models:/` or
`runs:/` URI, `pretrained:musicnn-msd`); the other arguments are Hydra overrides of
`conf/probe.yaml` and its `data` group, composed as `train` and `evaluate` compose theirs.
"""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from genre_lab.cli.refusals import error_line
from genre_lab.cli.options import add_tracking_uri_option

#: Keys of the summary table, in its order (the per-fold rows stay in the run).
SHOWN = ("test/track_acc", "test/track_acc_mean", "test/track_acc_std", "test/track_balanced_acc",
         "test/track_f1", "test/track_auroc", "test/track_ece", "val/track_acc")


def list_override(override: str) -> str:
    """`probe.pooling=mean,std` as the list Hydra reads (`probe.pooling=[mean,std]`): unbracketed,
    Hydra would take the commas for a multirun sweep."""
    key, sep, value = override.partition("=")
    if key.lstrip("+~") == "probe.pooling" and sep and "," in value and not value.startswith(("[", "'", '"')):
        return f"{key}=[{value}]"
    return override


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="genre-lab probe", description=__doc__.splitlines()[0])
    p.add_argument("model", help="run id, checkpoint, models:/ or runs:/ URI, or pretrained:musicnn-msd|mtt")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="Hydra overrides: data=<dataset> (required unless MODEL is a training run), "
                        "probe.layer=auto|frontend|midend|penultimate|taggram, probe.pooling=mean,std,max, data.folds=K, ...")
    add_tracking_uri_option(p)
    return p


def main(argv: list[str] | None = None) -> int:
    a = parser().parse_args(argv)
    # Imported here: `genre-lab probe --help` needs neither Hydra nor torch.
    from hydra.errors import HydraException
    from omegaconf import open_dict
    from omegaconf.errors import OmegaConfBaseException

    from genre_lab.config import compose
    from genre_lab.data.leakage import LeakageError
    from genre_lab.inference.evaluation import EvaluationError
    from genre_lab.inference.linear_probe import ProbeError, run_probe
    from genre_lab.models.loading import ModelSourceError
    from genre_lab.models.model_file import CheckpointError
    from genre_lab.registry import ConfigSecurityError

    refusals = (ProbeError, EvaluationError, ModelSourceError, CheckpointError, ConfigSecurityError, LeakageError,
                HydraException, OmegaConfBaseException, ValueError)
    try:
        cfg = compose([list_override(o) for o in a.overrides], config_name="probe")
        with open_dict(cfg):
            cfg.embedding_model = a.model
            if a.tracking_uri:
                cfg.tracking_uri = a.tracking_uri
        result = run_probe(cfg)
    except refusals as error:
        return error_line(error)
    table = Table(title=f"linear probe of {escape(a.model)} ({escape(result.tags['probe_layer'])}) "
                        f"on {escape(result.tags['dataset'])}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in SHOWN:
        if key in result.metrics:
            table.add_row(key, f"{result.metrics[key]:.4f}")
    console = Console()
    console.print(table)
    chosen = ", ".join(f"{f.C:g}" for f in result.folds)
    console.print(f"C={chosen}; {result.computed} track(s) embedded, {result.cached} from the cache; "
                  f"MLflow run {result.run_id}", highlight=False)
    if result.model_uri:
        console.print(f"logged as a model: predict, serve, ensemble or init_from={result.run_id} (LP-FT) take the run id",
                      highlight=False)
    return 0
