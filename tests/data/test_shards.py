"""WebDataset shards (`genre-lab shards`, `data=shards`): round trip, per-rank streaming, hostile shards."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
from torch.utils.data import DistributedSampler

from genre_lab import registry
from genre_lab.cli import make_shards as shards_cli
from genre_lab.config import compose
from genre_lab.data.shards import ShardDataModule, ShardError, StreamedChunks, read_index, read_split
from omegaconf import OmegaConf
from tests.conftest import write_tone

GENRES = ("jazz", "pop", "rock")


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    """A folder dataset: 3 genres x 6 tones of 1-1.5 s at 8 kHz."""
    root = tmp_path / "music"
    for g, genre in enumerate(GENRES):
        (root / genre).mkdir(parents=True)
        for i in range(6):
            write_tone(root / genre / f"{genre}{i}.wav", seconds=1.0 + 0.1 * i, sr=8000, freq=200 + 100 * g + 10 * i)
    return root


def folder_args(root: Path, tmp_path: Path) -> list[str]:
    return ["data=folder", f"data.root={root}", f"data.cache_dir={tmp_path / 'cache'}", "data.sample_rate=8000",
            "data.chunk_seconds=0.5", "data.eval_hop_seconds=0.5", "data.val_fraction=0.2", "data.test_fraction=0.2"]


def built(args: list[str]):
    node = OmegaConf.to_container(compose(args).data, resolve=True, throw_on_missing=True)
    dm = registry.build(node, registry.DATA, "data")
    dm.setup()
    return dm


def write(folder: Path, tmp_path: Path, out: Path, *extra: str) -> None:
    assert shards_cli.main([*folder_args(folder, tmp_path), "--output", str(out), *extra]) == 0


def test_round_trip_same_clips_labels_and_audio(folder: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "shards"
    write(folder, tmp_path, out, "--shard-size", "2")
    assert f"data=shards data.url={out}" in capsys.readouterr().out
    original = built(folder_args(folder, tmp_path))
    index = read_index(out)
    assert index.classes == list(GENRES) == original.classes and index.sample_rate == 8000
    for name, split in original.splits.items():
        back = read_split(index, name)
        assert back.ids == split.ids and back.labels == split.labels
        assert all(np.array_equal(a, b) for a, b in zip(back.waves, split.waves))
        assert [n for _, n in index.shards[name]] == [2] * (len(split) // 2) + [len(split) % 2] * (len(split) % 2)
    counts = json.loads((out / "index.json").read_text())["counts"]
    assert sum(counts["train"]) == len(original.splits["train"])

    # data=shards: the same evaluation windows; training windows come from the streamed clips.
    dm = built(["data=shards", f"data.url={out}", "data.sample_rate=8000", "data.chunk_seconds=0.5",
                "data.eval_hop_seconds=0.5", "data.train_chunks_per_clip=3", "data.batch_size=4"])
    assert isinstance(dm, ShardDataModule) and dm.classes == list(GENRES)
    for name in ("val", "test"):
        assert dm.splits[name].ids == original.splits[name].ids
    seen = [(x.shape[-1], int(y)) for xb, yb in dm.train_dataloader() for x, y in zip(xb, yb)]
    n_train = len(original.splits["train"])
    assert len(seen) == n_train * 3 // 4 * 4 and {s for s, _ in seen} == {4000}
    assert sorted({y for _, y in seen}) == [0, 1, 2]
    # The streamed split has ids and labels (run digests, class checks) but no audio to read whole.
    assert dm.splits["train"].ids == original.splits["train"].ids
    with pytest.raises(ValueError, match="streamed during training"):
        dm.splits["train"].waves[0]

    # 16-bit PCM: half the bytes, the same clips within one quantisation step.
    pcm = tmp_path / "pcm"
    write(folder, tmp_path, pcm, "--dtype", "int16")
    back = read_split(read_index(pcm), "test")
    assert all(np.abs(a - b).max() <= 1 / 32768 for a, b in zip(back.waves, original.splits["test"].waves))
    # A sample-rate mismatch is one line naming the setting.
    with pytest.raises(ValueError, match="set data.sample_rate=8000"):
        built(["data=shards", f"data.url={out}", "data.sample_rate=16000"])


@pytest.mark.parametrize("n_shards_per_rank", [1, 3])
def test_two_ranks_read_their_own_shards_every_clip_once(folder: Path, tmp_path: Path, n_shards_per_rank: int) -> None:
    out = tmp_path / "shards"
    original = built(folder_args(folder, tmp_path))
    n_train = len(original.splits["train"])  # 12: 2 x 6 or 6 x 2 shards
    write(folder, tmp_path, out, "--shard-size", str(n_train // (2 * n_shards_per_rank)))
    index = read_index(out)
    for epoch in range(2):
        ranks = []
        for rank in range(2):
            ds = StreamedChunks(index, chunk=4000, per_clip=1, multilabel=False, rank=rank, world=2, seed=3)
            ds.epoch = epoch
            ranks.append([c.clip_id for c in ds.clips()])
        assert len(ranks[0]) == len(ranks[1]) == n_train // 2
        assert not set(ranks[0]) & set(ranks[1])
        assert sorted(ranks[0] + ranks[1]) == sorted(original.splits["train"].ids)

    # Uneven shards (5 + 5 + 2 clips): the ranks still take equal steps, every clip read.
    uneven = tmp_path / "uneven"
    write(folder, tmp_path, uneven, "--shard-size", "5")
    index = read_index(uneven)
    ranks = [[c.clip_id for c in StreamedChunks(index, 4000, 1, False, rank, 2).clips()] for rank in range(2)]
    assert len(ranks[0]) == len(ranks[1]) == n_train // 2
    assert set(ranks[0] + ranks[1]) <= set(original.splits["train"].ids)

    # Evaluation on 2 ranks: Lightning's distributed sampler over the windows, every window once.
    dm = built(["data=shards", f"data.url={out}", "data.sample_rate=8000", "data.chunk_seconds=0.5",
                "data.eval_hop_seconds=0.25"])
    windows = dm.val_dataloader().dataset
    per_rank = [list(DistributedSampler(windows, num_replicas=2, rank=r, shuffle=False)) for r in range(2)]
    assert sorted({i for r in per_rank for i in r}) == list(range(len(windows)))
    assert sum(map(len, per_rank)) - len(windows) <= 1  # the sampler's one pad, which unshard drops


def _rewrite(shard: Path, change) -> None:
    """Rewrite `shard` with `change(name, data) -> [(name, data), ...]` applied to each member."""
    with tarfile.open(shard) as tar:
        members = [(m.name, tar.extractfile(m).read()) for m in tar.getmembers()]
    with tarfile.open(shard, "w") as tar:
        for name, data in members:
            for new_name, new_data in change(name, data):
                info = tarfile.TarInfo(new_name)
                info.size = len(new_data)
                tar.addfile(info, io.BytesIO(new_data))


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _object_npy() -> bytes:
    """A .npy of dtype object: its payload is a pickle."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "|O", "fortran_order": False, "shape": (1,)})
    return buffer.getvalue() + b"\x80\x04K\x01."


HOSTILE = {
    "pickle member": (lambda n, d: [(n, d), (n.replace(".json", ".pickle"), b"\x80\x04K\x01.")] if n.endswith(".json")
                      else [(n, d)], "is not a test-NNNNNNNN.npy/.json file"),
    "wrong-shape array": (lambda n, d: [(n, _npy(np.zeros((2, 100), np.float32)) if n.endswith(".npy") else d)],
                          r"holds float32 \(2, 100\), expected 1-D float32"),
    "pickled object array": (lambda n, d: [(n, _object_npy() if n.endswith(".npy") else d)],
                             "is not a plain .npy array"),
    "label out of range": (lambda n, d: [(n, json.dumps({**json.loads(d), "label": 7, "tags": [7]}).encode()
                                          if n.endswith(".json") else d)], "indices of the index's 3 classes"),
    "oversized member": (lambda n, d: [(n, _npy(np.zeros(10**6, np.float32)) if n.endswith(".npy") else d)],
                         "more than"),
    "truncated": (lambda n, d: [(n, d)] if n.endswith(".json") else [], "lacks its npy member|complete clips"),
    # Clip 0 twice where clip 1 should be: every member is valid on its own, the index's count holds.
    "repeated clip": (lambda n, d: [(n.replace("-00000001.", "-00000000."), d)], "is not clip 1, the next"),
    "nested JSON": (lambda n, d: [(n, b"[" * 60000 if n.endswith(".json") else d)], "is not JSON"),
}


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_hostile_shard_refused_in_one_line(folder: Path, tmp_path: Path, kind: str) -> None:
    out = tmp_path / "shards"
    write(folder, tmp_path, out, "--shard-size", "100")
    change, message = HOSTILE[kind]
    _rewrite(out / "test-000000.tar", change)
    with pytest.raises(ShardError, match=message) as caught:
        read_split(read_index(out), "test")
    assert "\n" not in str(caught.value) and "test-000000.tar" in str(caught.value)


def test_hostile_index_refused(folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "shards"
    write(folder, tmp_path, out)
    index = json.loads((out / "index.json").read_text())
    index["splits"]["train"]["shards"][0]["name"] = "pipe:rm -rf ~"
    (out / "index.json").write_text(json.dumps(index))
    with pytest.raises(ShardError, match="shards must be"):
        read_index(out)
    assert shards_cli.main([*folder_args(folder, tmp_path), "--output", str(out)]) == 2  # not over old shards
