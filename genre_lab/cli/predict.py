"""`genre-lab predict MODEL PATH... [options]`: tag songs and folders with a trained model.

MODEL (positional or `run=<model>`) is a checkpoint file, an MLflow run id, a `models:/` /
`runs:/` URI or a `pretrained:` name.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import NoReturn

from genre_lab.audio.decode import DEFAULT_MAX_SECONDS
from genre_lab.audio.windows import POOLINGS
from genre_lab.cli.options import add_tracking_uri_option, command_parser, models_from_run_arguments
from genre_lab.inference.tag_files import PredictOptions, run_predict
from genre_lab.inference.tag_output import FORMATS


def parser() -> argparse.ArgumentParser:
    p = command_parser("predict", __doc__)
    p.add_argument("model", metavar="MODEL",
                   help="checkpoint file, MLflow run id, models:/ / runs:/ URI or pretrained:NAME (or run=<that>)")
    p.add_argument("paths", nargs="+", metavar="PATH", help="audio files or folders (searched recursively)")
    p.add_argument("--top-k", type=int, default=3, help="genres listed per file (default 3)")
    p.add_argument("--segments", type=float, metavar="SECONDS", help="also give a timeline of SECONDS-long segments")
    p.add_argument("--hop", type=float, metavar="SECONDS", help="window hop (default: the model's evaluation hop, data.eval_hop_seconds)")
    p.add_argument("--pooling", choices=POOLINGS, default=None,
                   help="how window probabilities become a song's: mean, max, logmean (geometric mean); default: the "
                        "model's own (mean; a linear probe's: its mean logits)")
    p.add_argument("--tta-shifts", type=int, default=1, metavar="N",
                   help="test-time augmentation: also the windows shifted by hop/N, 2 hop/N, ... (default 1: none)")
    p.add_argument("--format", choices=FORMATS, default="table")
    p.add_argument("--output", type=Path, metavar="FILE", help="write here instead of stdout")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --output file")
    p.add_argument("--workers", type=int, default=2, help="decoding threads running ahead of the model (0: none)")
    p.add_argument("--processes", type=int, metavar="N",
                   help="worker processes tagging whole files (default 0: tag in this process with --workers "
                        "decoding threads)")
    p.add_argument("--max-seconds", type=float, default=DEFAULT_MAX_SECONDS, metavar="SECONDS",
                   help=f"refuse (an error row) a file whose header declares more audio than this, before "
                        f"decoding it (default {DEFAULT_MAX_SECONDS:g}: 4 hours)")
    p.add_argument("--batch-size", type=int, default=16, help="windows per forward pass")
    p.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    add_tracking_uri_option(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--min-content", action="store_true",
                   help="fail files that carry no music (DC only, near-silence, mostly padding, a constant tone) "
                        "instead of tagging them with a warning")
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    a = p.parse_args(argv)
    (model,), paths = models_from_run_arguments(p, [a.model, *a.paths], rest_name="PATH")
    # Our own progress bar is the one to watch; MLflow's download bars would interleave with it.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    return run_predict(PredictOptions(
        model=model, paths=paths, top_k=a.top_k, segments=a.segments, hop=a.hop, format=a.format,
        output=a.output, overwrite=a.overwrite, workers=a.workers, processes=a.processes, batch_size=a.batch_size,
        device=a.device, tracking_uri=a.tracking_uri, progress=not a.no_progress,
        min_content=a.min_content, max_seconds=a.max_seconds, pooling=a.pooling, tta_shifts=a.tta_shifts,
    ))


def exit_now(status: int) -> NoReturn:
    """End the process with `status` once the output is flushed, skipping the interpreter's
    teardown of torch and its modules: that took ~0.5 s after every tagging run
    (`python -c "import torch"` 2.0 s against 1.5 s with `os._exit`). The report file is
    closed by then and no thread or process is left running."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


if __name__ == "__main__":
    exit_now(main())
