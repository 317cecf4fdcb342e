"""`-v` / `--verbose` of the Hydra commands (train, evaluate, sweep): print every metric, not
only the headline numbers. Hydra would refuse an unknown flag, so it is taken out of the command
line before Hydra parses it (`genre-lab CMD` and `python -m genre_lab.CMD` both do)."""

from __future__ import annotations

from collections.abc import Sequence

FLAGS = ("-v", "--verbose")

_verbose = False


def take_verbose_flag(args: Sequence[str]) -> list[str]:
    """`args` without `-v` / `--verbose`; when one was there, `verbose()` is True from now on."""
    global _verbose
    rest = [a for a in args if a not in FLAGS]
    _verbose = _verbose or len(rest) != len(args)
    return rest


def verbose() -> bool:
    """Whether the command line asked for the full output."""
    return _verbose
