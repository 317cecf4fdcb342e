"""How a Hydra command reports a refusal: one line on stderr, exit status 2.

A refusal is an error whose message already names the file, run or setting at fault (a
hostile config from a store, a damaged checkpoint, one file in two splits): the traceback
Hydra would print around it adds nothing for the user. `HYDRA_FULL_ERROR=1` keeps the
traceback for whoever debugs genre_lab itself. The message may quote text read from a store,
so it is printed with Rich markup escaped and on a single line.
"""

from __future__ import annotations

import os
import sys
from typing import NoReturn


def refuse(err: BaseException) -> NoReturn:
    """Print `error: <message>` as one line and exit 2 (re-raise under HYDRA_FULL_ERROR=1)."""
    if os.environ.get("HYDRA_FULL_ERROR") == "1":
        raise err
    from rich.console import Console
    from rich.markup import escape

    message = " ".join(str(err).split())
    Console(stderr=True).print(f"[red]error:[/red] {escape(message)}", markup=True, highlight=False, soft_wrap=True)
    sys.exit(2)
