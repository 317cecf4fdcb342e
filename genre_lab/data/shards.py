"""Datasets past one machine: every split's clips in WebDataset tar shards, streamed back.

`genre-lab shards data=<dataset> --output DIR` decodes a dataset once (through its source and
the DataModule's short-clip rule) and writes, per split, tar shards of at most `--shard-size`
clips (`train-000000.tar`, ...) plus `index.json`: the classes, the sample rate, the sample
format, and per split its shards with their clip counts and every clip's id and labels.
`data=shards data.url=DIR` (a local folder, `file://`, `http(s)://`, `s3://` or `gs://`) reads
them back: validation and test clips are read into memory (the track-level evaluation of the
LightningModule gathers every rank's windows through Lightning's distributed sampler, which
needs the whole split), while training streams: each DDP rank, and each DataLoader worker
within it, reads only its own shards and draws `train_chunks_per_clip` random windows from each
clip as it passes through a small shuffle buffer, so no process ever holds the training set.

Why WebDataset (over LitData and MosaicML Streaming, all three installable here): its shards
are plain POSIX tar files of one `.npy` and one `.json` member per clip, which any tool can
list, verify and copy, and which object stores serve as-is (no library-specific chunk format or
index database); it is small (pure Python, two tiny dependencies) where the others bring their
own cloud clients and multiprocessing machinery. genre_lab uses its `ShardWriter` (rolls shards
over at a clip count), its `gopen` (http(s), gs and `pipe:` streams for remote shards) and its
member naming; it does not use its sample decoders, which include pickle for `.pyd`/`.pickle`
members and read every member whole before anything can bound its size.

Shard contents are untrusted: the reader takes members with `tarfile` in stream mode and
checks each header before reading its bytes (a regular file, named `<split>-<8 digits>.npy` or
`.json`, at most the size the index allows); arrays are loaded with `allow_pickle=False` and
must be 1-D float32 or int16 as the index says, finite, at most `max_frames` long; each clip's
id and labels must be the index's for that position, and labels must be indices of the index's
classes. Anything else stops the read with `ShardError`, one line naming the shard and member.
"""

from __future__ import annotations

import io
import json
import logging
import math
import re
import shlex
import tarfile
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, ClassVar

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from genre_lab.audio.decode import DEFAULT_MAX_SECONDS
from genre_lab.audio.windows import window
from genre_lab.data.clips import SPLITS, AudioSplit, ClipSource, DataConfigError
from genre_lab.data.datamodule import GenreDataModule

log = logging.getLogger(__name__)

INDEX = "index.json"
FORMAT = "genre_lab-shards"
VERSION = 1
DTYPES = {"float32": np.float32, "int16": np.int16}
#: Largest index.json read (ids and labels of every clip: ~100 bytes each).
#: The longest clip a shard may hold, as decoding accepts it (`audio.decode.DEFAULT_MAX_SECONDS`).
MAX_CLIP_SECONDS = int(DEFAULT_MAX_SECONDS)
MAX_INDEX_BYTES = 256 * 2**20
#: Largest `.json` member (a clip's id and labels).
MAX_META_BYTES = 64 * 2**10
#: Room for the `.npy` header in front of the samples.
NPY_HEADER_BYTES = 4096
_SHARD_NAME = re.compile(r"^(train|val|test)-\d{6}\.tar$")
_MEMBER_NAME = re.compile(r"^(train|val|test)-(\d{8})\.(npy|json)$")
_REMOTE = ("http://", "https://", "s3://", "gs://")


class ShardError(ValueError):
    """A shard or index that cannot be used; the message is one line naming the file."""


# --- writing -----------------------------------------------------------------------------------


def write_shards(
    splits: Mapping[str, AudioSplit], classes: Sequence[str], sample_rate: int, output: str | Path,
    shard_size: int = 1000, dtype: str = "float32", source: str = "dataset",
) -> dict[str, Any]:
    """Write `splits` as tar shards of at most `shard_size` clips plus `index.json` under
    `output`; returns the index. int16 stores 16-bit PCM (half the bytes, clipped to [-1, 1))."""
    import webdataset as wds

    if shard_size < 1:
        raise ValueError(f"--shard-size must be >= 1, got {shard_size}")
    if dtype not in DTYPES:
        raise ValueError(f"--dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    stale = sorted(p.name for p in out.iterdir() if _SHARD_NAME.match(p.name) or p.name == INDEX)
    if stale:
        raise ValueError(f"--output {out} already holds shards ({stale[0]}, ...): choose an empty folder")
    index: dict[str, Any] = {"format": FORMAT, "version": VERSION, "source": source, "classes": list(classes),
                             "sample_rate": int(sample_rate), "dtype": dtype, "max_frames": 0, "splits": {}}
    for name in SPLITS:
        split = splits[name]
        counts: dict[str, int] = {}
        with wds.ShardWriter(str(out / f"{name}-%06d.tar"), maxcount=shard_size, maxsize=float("inf"),
                             verbose=0, encoder=False) as sink:
            for i, (clip, tags, wave) in enumerate(zip(split.ids, split.tag_sets(), split.waves)):
                samples = np.asarray(wave, dtype=np.float32)
                index["max_frames"] = max(index["max_frames"], int(samples.size))
                if dtype == "int16":
                    samples = np.clip(np.round(samples * 32768.0), -32768, 32767).astype(np.int16)
                buffer = io.BytesIO()
                np.save(buffer, samples, allow_pickle=False)
                meta = {"id": clip, "label": int(tags[0]), "tags": [int(t) for t in tags]}
                sink.write({"__key__": f"{name}-{i:08d}", "npy": buffer.getvalue(),
                            "json": json.dumps(meta).encode()})
                counts[Path(sink.fname).name] = counts.get(Path(sink.fname).name, 0) + 1
        index["splits"][name] = {
            "shards": [{"name": shard, "clips": n} for shard, n in sorted(counts.items())],
            "ids": list(split.ids), "tags": [[int(t) for t in tags] for tags in split.tag_sets()],
        }
    index["counts"] = {
        name: [sum(c in tags for tags in index["splits"][name]["tags"]) for c in range(len(classes))] for name in SPLITS}
    (out / INDEX).write_text(json.dumps(index))
    return index


# --- opening (local or remote) -------------------------------------------------------------------


def _join(base: str, name: str) -> str:
    return f"{base.rstrip('/')}/{name}"


def open_url(url: str) -> IO[bytes]:
    """A byte stream of `url`: a local path or `file://`, `http(s)://` (urllib), `s3://` (the
    `aws` CLI) or `gs://` (`gsutil`, through WebDataset's `gopen`). The url comes from the
    command line or from `data.url` plus a shard name that `read_index` has checked."""
    if url.startswith(("http://", "https://")):
        return urllib.request.urlopen(url, timeout=60)  # noqa: S310 - the scheme is checked above
    if url.startswith(("s3://", "gs://")):
        from webdataset.gopen import gopen

        tool = "aws s3 cp" if url.startswith("s3://") else "gsutil cat"
        return gopen(f"pipe:{tool} {shlex.quote(url)}{' -' if url.startswith('s3://') else ''}")
    return open(url.removeprefix("file://"), "rb")


def _read_bounded(stream: IO[bytes], limit: int, where: str) -> bytes:
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise ShardError(f"{where} is larger than {limit} bytes")
    return data


@dataclass(frozen=True)
class ShardIndex:
    url: str
    classes: list[str]
    sample_rate: int
    dtype: str
    max_frames: int
    #: Per split: [(shard url, clips)], and every clip's id and class indices in shard order.
    shards: dict[str, list[tuple[str, int]]]
    ids: dict[str, list[str]]
    tags: dict[str, list[tuple[int, ...]]]

    def split_targets(self, name: str) -> AudioSplit:
        """The split's ids and labels without its audio (for checks, digests and reports)."""
        tags = self.tags[name]
        return AudioSplit(ids=list(self.ids[name]), labels=[t[0] for t in tags], waves=StreamedWaves(name, len(tags)),
                          tags=list(tags) if any(len(t) > 1 for t in tags) else None)


def read_index(url: str | Path) -> ShardIndex:
    """The checked `index.json` of the shards at `url` (a folder or a URL prefix)."""
    base = str(url).strip()
    if not base:
        raise DataConfigError("data.url is not set: point it at a folder of shards (genre-lab shards --output)")
    where = _join(base, INDEX)
    if not base.startswith(_REMOTE) and not Path(base.removeprefix("file://")).is_dir():
        raise DataConfigError(f"data.url={base} does not exist or is not a folder")
    try:
        with open_url(where) as stream:
            raw = _read_bounded(stream, MAX_INDEX_BYTES, where)
        data = json.loads(raw)
    except ShardError:
        raise
    except (OSError, ValueError, RecursionError) as err:  # RecursionError: JSON nested too deep
        raise ShardError(f"{where} cannot be read as a shard index: {err}") from None

    def need(ok: bool, what: str) -> None:
        if not ok:
            raise ShardError(f"{where}: {what}")

    need(isinstance(data, dict) and data.get("format") == FORMAT, f"not a {FORMAT} index")
    need(data.get("version") == VERSION, f"index version {data.get('version')!r}, this genre_lab reads {VERSION}")
    classes = data.get("classes")
    need(isinstance(classes, list) and classes and all(isinstance(c, str) and c for c in classes)
         and len(set(classes)) == len(classes), "classes must be a list of distinct names")
    rate, dtype, max_frames = data.get("sample_rate"), data.get("dtype"), data.get("max_frames")
    need(type(rate) is int and 4000 <= rate <= 384_000, "sample_rate must be an integer in [4000, 384000]")
    need(dtype in DTYPES, f"dtype must be one of {', '.join(DTYPES)}")
    # The index is untrusted too: one clip is at most what decoding accepts (4 h at its rate).
    need(type(max_frames) is int and 0 < max_frames <= MAX_CLIP_SECONDS * rate,
         f"max_frames must be a positive integer of at most {MAX_CLIP_SECONDS} s of samples")
    splits = data.get("splits")
    need(isinstance(splits, dict) and all(s in splits for s in SPLITS), f"splits must hold {', '.join(SPLITS)}")
    shards, ids, tags = {}, {}, {}
    for name in SPLITS:
        entry = splits[name]
        need(isinstance(entry, dict), f"split {name} must be a mapping")
        listed = entry.get("shards")
        need(isinstance(listed, list) and all(
            isinstance(s, dict) and isinstance(s.get("name"), str) and _SHARD_NAME.match(s["name"])
            and s["name"].startswith(f"{name}-") and type(s.get("clips")) is int and s["clips"] > 0 for s in listed),
            f"split {name}: shards must be [{{name: {name}-NNNNNN.tar, clips: N}}]")
        clip_ids, clip_tags = entry.get("ids"), entry.get("tags")
        need(isinstance(clip_ids, list) and all(isinstance(c, str) and 0 < len(c) <= 4096 for c in clip_ids),
             f"split {name}: ids must be a list of names")
        need(isinstance(clip_tags, list) and len(clip_tags) == len(clip_ids) == sum(s["clips"] for s in listed),
             f"split {name}: ids, tags and shard counts disagree")
        checked = [_labels(t, len(classes)) for t in clip_tags]
        need(all(t is not None for t in checked), f"split {name}: every clip needs labels among the {len(classes)} classes")
        shards[name] = [(_join(base, s["name"]), s["clips"]) for s in listed]
        ids[name], tags[name] = clip_ids, checked
    return ShardIndex(base, list(classes), rate, dtype, max_frames, shards, ids, tags)  # type: ignore[arg-type]


def _labels(value: Any, n_classes: int) -> tuple[int, ...] | None:
    if not isinstance(value, list) or not value or len(value) > n_classes:
        return None
    if not all(type(v) is int and 0 <= v < n_classes for v in value) or len(set(value)) != len(value):
        return None
    return tuple(value)


# --- reading -------------------------------------------------------------------------------------


@dataclass
class Clip:
    position: int  # within its split
    clip_id: str
    tags: tuple[int, ...]
    wave: np.ndarray


def read_shard(index: ShardIndex, split: str, shard: int) -> Iterator[Clip]:
    """The clips of shard number `shard` of `split`, each checked against the index."""
    url, count = index.shards[split][shard]
    first = sum(n for _, n in index.shards[split][:shard])
    npy_limit = index.max_frames * np.dtype(DTYPES[index.dtype]).itemsize + NPY_HEADER_BYTES
    pending: dict[str, Any] = {}
    seen = 0

    def fail(what: str) -> ShardError:
        return ShardError(f"corrupt shard {url}: {what}")

    try:
        with open_url(url) as stream, tarfile.open(fileobj=stream, mode="r|") as tar:
            for member in tar:
                match = _MEMBER_NAME.match(member.name)
                if not member.isreg() or not match or match.group(1) != split:
                    raise fail(f"member {member.name!r} is not a {split}-NNNNNNNN.npy/.json file")
                position, kind = int(match.group(2)), match.group(3)
                limit = npy_limit if kind == "npy" else MAX_META_BYTES
                if member.size > limit:
                    raise fail(f"member {member.name!r} has {member.size} bytes, more than {limit}")
                if pending and pending["position"] != position:
                    raise fail(f"clip {pending['position']} lacks its {'json' if 'wave' in pending else 'npy'} member")
                if position != first + seen:  # written in order: a repeated or missing clip is corrupt
                    raise fail(f"member {member.name!r} is not clip {first + seen}, the next of this shard's clips")
                handle = tar.extractfile(member)
                assert handle is not None
                data = handle.read()
                pending["position"] = position
                if ("wave" if kind == "npy" else "json") in pending:
                    raise fail(f"member {member.name!r} appears twice")
                if kind == "npy":
                    pending["wave"] = _wave(data, index, fail, member.name)
                else:
                    pending["json"] = _meta(data, index, split, position, fail, member.name)
                if "wave" in pending and "json" in pending:
                    clip_id, tags = pending["json"]
                    yield Clip(position, clip_id, tags, pending["wave"])
                    pending, seen = {}, seen + 1
    except ShardError:
        raise
    except (OSError, tarfile.TarError, EOFError) as err:
        raise ShardError(f"corrupt shard {url}: {err}") from None
    if pending or seen != count:
        raise ShardError(f"corrupt shard {url}: {seen} complete clips, the index lists {count}")


def _wave(data: bytes, index: ShardIndex, fail: Callable[[str], ShardError], name: str) -> np.ndarray:
    try:
        array = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise fail(f"member {name!r} is not a plain .npy array ({err})") from None
    if not isinstance(array, np.ndarray) or array.dtype != DTYPES[index.dtype] or array.ndim != 1 \
            or not 0 < array.size <= index.max_frames:
        shape = getattr(array, "shape", "?")
        raise fail(f"member {name!r} holds {getattr(array, 'dtype', '?')} {shape}, expected 1-D {index.dtype} "
                   f"of 1..{index.max_frames} samples")
    if index.dtype == "int16":
        return array.astype(np.float32) / 32768.0
    if not np.isfinite(array).all():
        raise fail(f"member {name!r} holds samples that are not finite")
    return array


def _meta(data: bytes, index: ShardIndex, split: str, position: int, fail: Callable[[str], ShardError],
          name: str) -> tuple[str, tuple[int, ...]]:
    try:
        meta = json.loads(data)
    except (ValueError, RecursionError) as err:
        raise fail(f"member {name!r} is not JSON ({err})") from None
    tags = _labels(meta.get("tags"), len(index.classes)) if isinstance(meta, dict) else None
    if tags is None or meta.get("label") != tags[0]:
        raise fail(f"member {name!r}: labels must be indices of the index's {len(index.classes)} classes")
    if meta.get("id") != index.ids[split][position] or tags != index.tags[split][position]:
        raise fail(f"member {name!r}: clip {meta.get('id')!r} differs from the index's clip at position {position}")
    return meta["id"], tags


def read_split(index: ShardIndex, split: str) -> AudioSplit:
    """A whole split in memory (validation, test, or `ShardSource.load`)."""
    ids, labels, waves, tags = [], [], [], []
    for shard in range(len(index.shards[split])):
        for clip in read_shard(index, split, shard):
            ids.append(clip.clip_id)
            labels.append(clip.tags[0])
            tags.append(clip.tags)
            waves.append(clip.wave)
    return AudioSplit(ids=ids, labels=labels, waves=waves, tags=tags if any(len(t) > 1 for t in tags) else None)


class StreamedWaves(Sequence):
    """The audio of a streamed split: its length is known, its clips are read by the training
    loader only (reading them here would hold the whole split in memory)."""

    def __init__(self, split: str, n: int) -> None:
        self.split, self.n = split, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: Any) -> Any:
        raise DataConfigError(f"the '{self.split}' split of data=shards is streamed during training; "
                              "evaluate and probe use data=shards' val or test split")


def rank_shards(n_shards: int, rank: int, world: int, epoch: int, seed: int, shuffle: bool) -> tuple[list[int], list[int]]:
    """(this rank's shards, the order every rank shares) for one epoch: the shards shuffled alike
    on every rank (seed + epoch), then dealt out round-robin, so ranks read disjoint shards."""
    order = list(range(n_shards))
    if shuffle:
        order = np.random.default_rng([seed, epoch]).permutation(n_shards).tolist()
    return order[rank::world], order


class StreamedChunks(IterableDataset):
    """Training windows from clips streamed out of this rank's shards.

    Every rank yields the same number of windows per epoch (`ceil(clips / world)` clips times
    `per_clip`; DDP's collective steps need equal batch counts): a rank whose shards hold fewer
    clips goes on with the other ranks' shards from the start of the shared order. When the
    shards divide evenly, each clip is read exactly once per epoch across the ranks. DataLoader
    workers split the rank's stream between them, shard by shard.
    """

    def __init__(self, index: ShardIndex, chunk: int, per_clip: int, multilabel: bool, rank: int = 0,
                 world: int = 1, seed: int = 0, buffer: int = 16, shuffle: bool = True) -> None:
        self.index, self.chunk, self.per_clip, self.multilabel = index, chunk, per_clip, multilabel
        self.rank, self.world, self.seed, self.buffer, self.shuffle = rank, world, seed, max(1, buffer), shuffle
        self.epoch = 0
        total = sum(n for _, n in index.shards["train"])
        self.clips_per_rank = math.ceil(total / world)

    def __len__(self) -> int:
        return self.clips_per_rank * self.per_clip

    def clips(self) -> Iterator[Clip]:
        """This worker's clips of this epoch, in shard order (before the shuffle buffer)."""
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        mine, order = rank_shards(len(self.index.shards["train"]), self.rank, self.world, self.epoch, self.seed,
                                  self.shuffle)
        quota = self.clips_per_rank // workers + (worker < self.clips_per_rank % workers)
        self.epoch += 1

        def sequence() -> Iterator[int]:
            yield from mine
            while True:
                yield from order

        given = 0
        for k, shard in enumerate(sequence()):
            if given >= quota:
                return
            if k % workers != worker:
                continue
            for clip in read_shard(self.index, "train", shard):
                if given >= quota:
                    return
                given += 1
                yield clip

    def __iter__(self) -> Iterator[tuple[torch.Tensor, Any]]:
        held: list[Clip] = []
        for clip in self.clips():
            held.append(clip)
            if len(held) >= self.buffer:
                yield from self._windows(held.pop(int(torch.randint(len(held), ()).item()) if self.shuffle else 0))
        while held:
            yield from self._windows(held.pop(int(torch.randint(len(held), ()).item()) if self.shuffle else 0))

    def _windows(self, clip: Clip) -> Iterator[tuple[torch.Tensor, Any]]:
        if self.multilabel:
            target: Any = torch.zeros(len(self.index.classes))
            target[list(clip.tags)] = 1.0
        else:
            target = clip.tags[0]
        for _ in range(self.per_clip):
            start = int(torch.randint(0, max(len(clip.wave) - self.chunk, 0) + 1, ()).item())
            yield window(clip.wave, start, self.chunk), target


# --- the dataset config ------------------------------------------------------------------------


class ShardSource(ClipSource):
    """The clips of a shard folder or URL (`data.url`); `load` reads every split into memory
    (what commands other than training use); training streams through `ShardDataModule`."""

    name = "shards"
    settings: ClassVar[tuple[str, ...]] = ("url", "shuffle_buffer", "shuffle_seed")

    def __init__(self, url: str | Path | None) -> None:
        if url is None or str(url).strip() in ("", "???"):
            raise DataConfigError("data.url is not set: point it at a folder of shards (genre-lab shards --output)")
        self.url = str(url)
        self._index: ShardIndex | None = None

    @property
    def index(self) -> ShardIndex:
        if self._index is None:
            self._index = read_index(self.url)
        return self._index

    @property
    def classes(self) -> list[str]:
        return list(self.index.classes)

    def check_rate(self, sample_rate: int) -> None:
        if sample_rate != self.index.sample_rate:
            raise DataConfigError(f"data.sample_rate={sample_rate} but the shards at data.url={self.url} hold "
                                  f"{self.index.sample_rate} Hz audio: set data.sample_rate={self.index.sample_rate}")

    def load(self, sample_rate: int, min_samples: int = 0) -> dict[str, AudioSplit]:
        self.check_rate(sample_rate)
        return {name: read_split(self.index, name) for name in SPLITS}


class ShardDataModule(GenreDataModule):
    """`data=shards`: validation and test in memory, training streamed per rank (see the module
    docstring); everything else (chunking, short clips, task, checks) as `GenreDataModule`."""

    def __init__(self, source: ShardSource, shuffle_buffer: int = 16, shuffle_seed: int = 0, **settings: Any) -> None:
        settings.pop("url", None)  # the source has it
        super().__init__(source, **settings)
        if int(shuffle_buffer) < 1:
            raise ValueError(f"data.shuffle_buffer must be >= 1, got {shuffle_buffer}")
        self.shuffle_buffer, self.shuffle_seed = int(shuffle_buffer), int(shuffle_seed)

    def setup(self, stage: str | None = None) -> None:
        if self.splits is not None:
            return
        source: ShardSource = self.source  # type: ignore[assignment]
        source.check_rate(self.sample_rate)
        splits = {"train": source.index.split_targets("train"),
                  **{name: self._handle_short(name, read_split(source.index, name)) for name in ("val", "test")}}
        for name, split in splits.items():
            if len(split) == 0:
                raise ValueError(f"dataset 'shards' at data.url={source.url} has no clips in split '{name}'")
        self._check_task(splits)
        self._check_classes(splits, sum(len(s.skipped) for s in splits.values()))
        self.splits = splits

    def train_dataloader(self) -> DataLoader:
        self.setup()
        source: ShardSource = self.source  # type: ignore[assignment]
        trainer = self.trainer
        rank, world = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        ds = StreamedChunks(source.index, self.chunk, self.train_chunks_per_clip, self.task == "multilabel",
                            rank, world, self.shuffle_seed, self.shuffle_buffer)
        return DataLoader(ds, batch_size=self.batch_size, num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0, drop_last=len(ds) > self.batch_size)


__all__ = ["ShardDataModule", "ShardError", "ShardSource", "read_index", "write_shards"]
