"""Dataset sources selected by `conf/data/*.yaml`."""

from __future__ import annotations

from .clips import SPLITS, AudioSplit, ClipSource
from .synthetic import GENRES, synthetic_split


class SyntheticSource(ClipSource):
    """The built-in procedurally generated genres (see `synthetic.py` for the recipes).

    Generated in memory from a seed: nothing is downloaded or written to disk, and the
    three splits come from disjoint seed ranges.
    """

    name = "synthetic"

    def __init__(
        self,
        clips_per_class: dict[str, int],
        clip_seconds: float = 6.0,
        seed: int = 0,
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

    @property
    def classes(self) -> list[str]:
        return list(GENRES)

    def load(self, sample_rate: int) -> dict[str, AudioSplit]:
        out = {}
        for split in SPLITS:
            waves, labels, ids = synthetic_split(
                split, self.clips_per_class[split], self.clip_seconds, sample_rate, self.seed
            )
            out[split] = AudioSplit(ids=ids, labels=labels, waves=waves)
        return out
