"""Crash-safe training: atomic checkpoints, exact resume state, and `resume=<run>`."""

from .checkpoints import INTERRUPTED, LAST, AtomicCheckpointIO, InterruptCheckpoint, ResumeState
from .run import ResumeError, ResumePoint, prepare, start_tags, write_run_file

__all__ = [
    "INTERRUPTED", "LAST", "AtomicCheckpointIO", "InterruptCheckpoint", "ResumeError", "ResumePoint", "ResumeState",
    "prepare", "start_tags", "write_run_file",
]
