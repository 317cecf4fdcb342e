"""Crash-safe training: atomic checkpoints, exact resume state, and `resume=<run>`."""

from genre_lab.training.resume.lightning_checkpoints import INTERRUPTED, LAST, AtomicCheckpointIO, InterruptCheckpoint, ResumeState
from genre_lab.training.resume.run import ResumeError, ResumePoint, prepare, start_tags, write_run_file

__all__ = [
    "INTERRUPTED", "LAST", "AtomicCheckpointIO", "InterruptCheckpoint", "ResumeError", "ResumePoint", "ResumeState",
    "prepare", "start_tags", "write_run_file",
]
