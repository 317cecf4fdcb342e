"""`genre-lab embed MODEL PATH... --output emb.npz [--layer NAME] [--per-window]`: embeddings of songs.

MODEL (positional or `run=<model>`) is any genre_lab model (run id, checkpoint, `models:/` /
`runs:/` URI) or a pretrained network (`pretrained:musicnn-msd`). `--layer` takes the names of
`probe.layer` (`genre_lab.models.embedding_layers`). What the `.npz` holds:
`genre_lab.inference.embedding`. Exit status 1 when a file could not be embedded (listed in the
file and on stderr), 2 when the model cannot be used.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from genre_lab.cli.refusals import error_line
from genre_lab.cli.options import add_tracking_uri_option, command_parser, models_from_run_arguments
from genre_lab.inference.embedding import embed_songs
from genre_lab.models.embedding_layers import AUTO, LAYERS


def parser() -> argparse.ArgumentParser:
    p = command_parser("embed", __doc__)
    p.add_argument("model", metavar="MODEL",
                   help="run id, checkpoint, models:/ or runs:/ URI, or pretrained:musicnn-msd|mtt (or run=<that>)")
    p.add_argument("paths", nargs="+", metavar="PATH", help="audio files or folders")
    p.add_argument("--output", type=Path, required=True, help="the .npz file to write")
    p.add_argument("--layer", default=AUTO, metavar="NAME",
                   help=f"the network's layer: {', '.join(LAYERS)} (frontend and midend: musicnn) or {AUTO} "
                        "(default: a pretrained model's measured-best layer, else penultimate)")
    p.add_argument("--per-window", action="store_true", help="also store every window's embedding")
    p.add_argument("--hop", type=float, metavar="SECONDS", help="window hop (default: the model's evaluation hop)")
    add_tracking_uri_option(p)
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    a = p.parse_args(argv)
    (model,), paths = models_from_run_arguments(p, [a.model, *a.paths], rest_name="PATH")
    try:
        result = embed_songs(model, paths, a.output, a.per_window, a.hop, a.tracking_uri, a.layer)
    except ValueError as error:
        return error_line(error)
    err = Console(stderr=True)
    # Paths are data: printed as typed, never read as rich markup.
    for path, reason in result.failed:
        err.print(f"[red]{escape(path)}:[/red] {escape(reason)}", highlight=False)
    Console().print(escape(f"{len(result.paths)} file(s) embedded ({result.layer}, {result.dim} dims) -> {a.output}"), highlight=False)
    return 1 if result.failed else 0


if __name__ == "__main__":
    sys.exit(main())
