"""How a command reports a refusal: one line on stderr, exit status 2.

A refusal is an error whose message already names the file, run or setting at fault (a
hostile config from a store, a damaged checkpoint, one file in two splits, a setting that does
not exist): the traceback Hydra would print around it adds nothing for the user. `--debug` or
`HYDRA_FULL_ERROR=1` keeps the traceback for whoever debugs genre_lab itself. The message may
quote text read from a store, so it is printed with Rich markup escaped and on a single line.
"""

from __future__ import annotations

import os
import sys
from typing import NoReturn


def refuse(err: BaseException | str, cause: BaseException | None = None) -> NoReturn:
    """Print `error: <message>` as one line and exit 2. `err`: the error, or the line to print
    for `cause`. Under HYDRA_FULL_ERROR=1 (`--debug`) the error is raised instead."""
    if os.environ.get("HYDRA_FULL_ERROR") == "1":
        raised = err if isinstance(err, BaseException) else cause
        if raised is not None:
            raise raised
    sys.exit(error_line(err))


def error_line(err: BaseException | str) -> int:
    """Print `error: <message>` on stderr as one line, markup escaped; return exit status 2.
    The argparse commands return it from `main`; `refuse` exits with it."""
    from rich.console import Console
    from rich.markup import escape

    message = " ".join(str(err).split())
    Console(stderr=True).print(f"[red]error:[/red] {escape(message)}", markup=True, highlight=False, soft_wrap=True)
    return 2
