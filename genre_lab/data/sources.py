"""Dataset sources selected by `conf/data/*.yaml`."""

from __future__ import annotations

import os
import threading

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from genre_lab.data.clips import SPLITS, AudioSplit, ClipSource
from genre_lab.data.synthetic import GENRES, LEVELS, synthetic_split


class SyntheticSource(ClipSource):
    """The built-in procedurally generated genres (see the `synthetic` package for the recipes).

    Generated in memory from a seed: nothing is downloaded or written to disk, and the
    three splits come from disjoint seed ranges. `difficulty` picks how far clips stray from
    their genre's recipe (`easy`, `medium`, `hard`); `conf/data/synthetic.yaml` sets `medium`,
    while the Python default stays `easy` so that checkpoints trained before levels existed
    (whose configs have no such key) are evaluated on the data they were trained on.
    """

    name = "synthetic"

    def __init__(
        self,
        clips_per_class: dict[str, int],
        clip_seconds: float = 6.0,
        seed: int = 0,
        difficulty: str = "easy",
    ) -> None:
        missing = [s for s in SPLITS if s not in clips_per_class]
        if missing:
            raise ValueError(f"data.source.clips_per_class needs an entry for {missing}")
        for split, n in clips_per_class.items():
            if int(n) < 1:
                raise ValueError(f"data.source.clips_per_class.{split} must be >= 1, got {n}")
        if clip_seconds <= 0:
            raise ValueError(f"data.source.clip_seconds must be positive, got {clip_seconds}")
        self.clips_per_class = {k: int(v) for k, v in clips_per_class.items()}
        self.clip_seconds = float(clip_seconds)
        self.seed = int(seed)
        if difficulty not in LEVELS:
            raise ValueError(f"data.source.difficulty must be one of {', '.join(LEVELS)}, got {difficulty!r}")
        self.difficulty = str(difficulty)

    @property
    def classes(self) -> list[str]:
        return list(GENRES)

    def load(self, sample_rate: int, min_samples: int = 0) -> dict[str, AudioSplit]:
        # Generated clips all last clip_seconds: the DataModule applies data.short_clips to them.
        out = {}
        with terminal_progress() as progress:
            task = progress.add_task("Generating synthetic clips", total=len(GENRES) * sum(self.clips_per_class[s] for s in SPLITS))
            for split in SPLITS:
                waves, labels, ids = synthetic_split(
                    split, self.clips_per_class[split], self.clip_seconds, sample_rate, self.seed,
                    self.difficulty, on_clip=lambda: progress.advance(task),
                )
                out[split] = AudioSplit(ids=ids, labels=labels, waves=waves)
        return out


def terminal_progress(enabled: bool = True) -> Progress:
    """A progress bar on stderr that vanishes when done, shown only on a terminal (logs and CI
    get nothing), only in the main thread (Rich draws one live display per process; sweep trials
    in threads would collide) and only by the first of DDP's processes (`LOCAL_RANK`)."""
    console = Console(stderr=True)
    show = (enabled and console.is_terminal and threading.current_thread() is threading.main_thread()
            and os.environ.get("LOCAL_RANK", "0") == "0")
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    console=console, transient=True, disable=not show)
