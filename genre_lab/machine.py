"""What this process may use of the machine it runs on (import-light: the tagging path uses it)."""

from __future__ import annotations

import os


def cores() -> int:
    """CPU cores this process may run on: its CPU affinity where the platform has one (a
    container's or `taskset`'s limit), else every core of the machine."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
