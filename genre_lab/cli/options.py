"""Command-line options that several commands share, declared once (import-light: the predict
command's start-up loads neither MLflow nor Hydra)."""

from __future__ import annotations

import argparse


def add_tracking_uri_option(parser: argparse.ArgumentParser) -> None:
    """`--tracking-uri`: the MLflow store to read runs and models from. Left out (None), the
    command uses `genre_lab.tracking.mlflow_runs.tracking_uri()`, the store training writes to."""
    parser.add_argument(
        "--tracking-uri", default=None,
        help="MLflow store (default: $MLFLOW_TRACKING_URI, else mlflow.db in $GENRE_LAB_HOME or the working directory)",
    )
