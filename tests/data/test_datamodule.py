import numpy as np
import pytest
import torch

from genre_lab.data import AudioSplit, ClipSource, GenreDataModule, SyntheticSource
from genre_lab.data.datamodule import chunk_starts


class ListSource(ClipSource):
    name = "list"

    def __init__(self, lengths: dict[str, list[int]]) -> None:
        self.lengths = lengths

    @property
    def classes(self) -> list[str]:
        return ["a", "b"]

    def load(self, sample_rate: int, min_samples: int = 0) -> dict[str, AudioSplit]:
        return {
            s: AudioSplit(
                ids=[f"{s}{i}" for i in range(len(n))],
                labels=[i % 2 for i in range(len(n))],
                waves=[np.full(k, i, dtype=np.float32) for i, k in enumerate(n)],
            )
            for s, n in self.lengths.items()
        }


def test_chunk_starts_cover_the_clip() -> None:
    assert chunk_starts(10, 4, 4) == [0, 4, 6]
    assert chunk_starts(8, 4, 4) == [0, 4]
    assert chunk_starts(4, 4, 2) == [0]
    assert chunk_starts(3, 4, 2) == [0]  # shorter than a window: one window, padded by the caller


def test_eval_batches_carry_clip_ids_and_every_chunk() -> None:
    src = ListSource({"train": [8000, 8000], "val": [8000, 12000], "test": [4000, 4000]})
    dm = GenreDataModule(src, sample_rate=4000, chunk_seconds=1.0, batch_size=2, eval_batch_size=100)
    dm.setup()
    wave, label, clip = next(iter(dm.val_dataloader()))
    assert wave.shape == (2 + 3, 4000)
    assert clip.tolist() == [0, 0, 1, 1, 1]
    # Each chunk comes from its own clip (the test waves are filled with their index).
    assert torch.equal(wave[:, 0], clip.float())
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (2, 4000) and y.dtype == torch.int64


def test_chunk_longer_than_clip_names_the_setting() -> None:
    src = ListSource({"train": [8000], "val": [3000], "test": [8000]})
    dm = GenreDataModule(src, sample_rate=4000, chunk_seconds=1.0, short_clips="error")
    with pytest.raises(ValueError, match=r"data.chunk_seconds=1 is longer than clip 'val0'.*data.short_clips=error"):
        dm.setup()


def test_short_clip_is_skipped_and_reported_by_default() -> None:
    # val1 (label b) is short; val3 keeps a b clip in validation.
    src = ListSource({"train": [8000, 8000], "val": [8000, 3000, 8000, 4000], "test": [4000, 4000]})
    dm = GenreDataModule(src, sample_rate=4000, chunk_seconds=1.0)
    dm.setup()
    assert dm.splits["val"].ids == ["val0", "val2", "val3"]
    report = dm.scan_report()
    (entry,) = report["val"]["skipped"]
    assert entry["path"] == "val1" and "shorter than one chunk: 0.75 s" in entry["reason"]
    assert report["val"]["clips"] == 3 and report["unassigned"] == {"clips": 0, "skipped": []}


def test_short_clip_is_zero_padded_with_pad() -> None:
    src = ListSource({"train": [3000, 8000], "val": [2000, 8000], "test": [4000, 4000]})
    dm = GenreDataModule(src, sample_rate=4000, chunk_seconds=1.0, batch_size=2, eval_batch_size=100, short_clips="pad")
    dm.setup()
    wave, label, clip = next(iter(dm.val_dataloader()))
    # val0 is 2000 samples of 0.0, val1 8000 samples of 1.0: one padded window, then two.
    assert wave.shape == (3, 4000) and clip.tolist() == [0, 1, 1]
    train = [dm.train_dataloader().dataset[0][0] for _ in range(5)]
    assert all(x.shape == (4000,) for x in train)

    class Ones(ListSource):
        def load(self, sample_rate: int, min_samples: int = 0) -> dict[str, AudioSplit]:
            splits = super().load(sample_rate, min_samples)
            splits["train"].waves[0][:] = 1.0  # the short clip, non-zero: its window ends in zeros
            return splits

    dm = GenreDataModule(Ones({"train": [3000, 8000], "val": [8000, 8000], "test": [4000, 4000]}),
                         sample_rate=4000, chunk_seconds=1.0, short_clips="pad")
    x, y = dm.train_dataloader().dataset[0]
    assert torch.all(x[:3000] == 1.0) and torch.all(x[3000:] == 0.0) and y == 0


def test_class_without_a_clip_in_a_split_is_an_error_naming_it() -> None:
    # Labels alternate a, b: val holds one clip, of class a only.
    src = ListSource({"train": [8000, 8000], "val": [8000], "test": [4000, 4000]})
    dm = GenreDataModule(src, sample_rate=4000, chunk_seconds=1.0)
    with pytest.raises(ValueError, match=r"class 'b' has no usable clip in split\(s\) val \(usable clips: train 1, val 0, test 1\)"):
        dm.setup()


def test_unknown_dataset_setting_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"data.rooot is not a setting of the 'list' dataset \(its settings: none\)"):
        GenreDataModule(ListSource({}), rooot="/music")
    with pytest.raises(ValueError, match="data.short_clips must be one of pad, skip, error"):
        GenreDataModule(ListSource({}), short_clips="trim")


@pytest.mark.parametrize(
    "kw, match",
    [({"sample_rate": 0}, "data.sample_rate"), ({"chunk_seconds": -1}, "data.chunk_seconds"), ({"batch_size": 0}, "data.batch_size")],
)
def test_bad_settings(kw: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        GenreDataModule(ListSource({}), **kw)


def test_empty_split_is_an_error() -> None:
    dm = GenreDataModule(ListSource({"train": [8000], "val": [], "test": [8000]}), sample_rate=4000, chunk_seconds=1.0)
    with pytest.raises(ValueError, match="no usable clips in split 'val'"):
        dm.setup()


def test_synthetic_source_splits_are_balanced() -> None:
    src = SyntheticSource({"train": 3, "val": 2, "test": 1}, clip_seconds=1.0, seed=1)
    splits = src.load(8000)
    assert [len(splits[s]) for s in ("train", "val", "test")] == [30, 20, 10]
    assert np.bincount(splits["train"].labels).tolist() == [3] * 10
    with pytest.raises(ValueError, match="data.source.clips_per_class"):
        SyntheticSource({"train": 3, "val": 0, "test": 1})
