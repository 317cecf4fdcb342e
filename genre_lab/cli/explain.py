"""`genre-lab explain MODEL SONG... --output DIR`: why a model hears a genre.

Per song, a PNG with the log-mel spectrogram, the attribution for the predicted genre (or
`--target LABEL`) laid over it, and the genre timeline across the song. MODEL (positional or
`run=<model>`) is anything `genre-lab predict` takes, ensembles included. Methods:
`integrated_gradients` (default), `occlusion`, `gradcam` (see `genre_lab.inference.attribution`).
A song that cannot be explained is reported and the others go on; the exit status is 1 if any
failed, 2 if the model or method cannot be used.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from genre_lab.cli.refusals import error_line
from genre_lab.cli.options import add_tracking_uri_option, command_parser, models_from_run_arguments
from genre_lab.inference.attribution import METHODS
from genre_lab.inference.explanation import Failure, explain_songs


def parser() -> argparse.ArgumentParser:
    p = command_parser("explain", __doc__)
    p.add_argument("model", metavar="MODEL",
                   help="checkpoint, MLflow run id, models:/ or runs:/ URI, ensembles too (or run=<that>)")
    p.add_argument("paths", nargs="+", metavar="SONG", help="audio files or folders")
    p.add_argument("--output", type=Path, required=True, metavar="DIR", help="where the PNGs go")
    p.add_argument("--method", choices=METHODS, default="integrated_gradients")
    p.add_argument("--target", metavar="LABEL", help="explain this genre instead of the predicted one")
    p.add_argument("--steps", type=int, default=16, help="integration steps of integrated_gradients")
    p.add_argument("--hop", type=float, metavar="SECONDS", help="window hop (default: the model's evaluation hop)")
    add_tracking_uri_option(p)
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    a = p.parse_args(argv)
    (model,), paths = models_from_run_arguments(p, [a.model, *a.paths], rest_name="SONG")
    try:
        results = explain_songs(model, paths, a.output, a.method, a.target, a.steps, a.hop, a.tracking_uri)
    except ValueError as error:
        return error_line(error)
    err = Console(stderr=True)
    failed = 0
    # Paths and class names are data: printed as typed, never read as rich markup.
    for result in results:
        if isinstance(result, Failure):
            failed += 1
            err.print(f"[red]{escape(result.path)}:[/red] {escape(result.reason)}", highlight=False)
        else:
            Console().print(escape(f"{result.path}: {result.label} ({result.probability:.2f}) -> {result.figure}"),
                            highlight=False)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
