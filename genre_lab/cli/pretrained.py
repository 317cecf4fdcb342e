"""`genre-lab pretrained convert musicnn-0.1.0-py3-none-any.whl [--out DIR]`:
rebuild the shipped musicnn weights from the original wheel (no TensorFlow needed). Get the
wheel with `pip download --no-deps musicnn==0.1.0`."""

from __future__ import annotations

import sys
from pathlib import Path

from genre_lab.cli.options import command_parser


def main(argv: list[str] | None = None) -> int:
    parser = command_parser("pretrained", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    conv = sub.add_parser("convert", help="convert musicnn's TF checkpoints to safetensors")
    conv.add_argument("source", type=Path, help="musicnn-0.1.0 wheel, or an unpacked musicnn/ package folder")
    conv.add_argument("--out", type=Path, default=None, help="output folder (default: the package's weights/)")
    args = parser.parse_args(argv)
    from genre_lab.models.pretrained.convert import convert_wheel

    try:
        for path in convert_wheel(args.source, args.out):
            print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
    except (OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
