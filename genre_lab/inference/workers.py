"""Tagging files in worker processes: each process decodes a whole file and runs the model on it.

Why processes: one single-threaded tagger per core, each on its own files, keeps every core
busy with no hand-off of decoded audio and no shared interpreter lock. Measured, it does not
pay against the decode threads of `Tagger.tag_files` (which give the model the cores they
leave over): on the 57 Debian songs on an idle 2-core machine 570 audio s/s against 819, the
pool's start-up (each spawned worker imports torch and rebuilds the model) inside the timing
(`python -m genre_lab.bench tag`: contenders `tag_processes` vs `tag_overlap`); hence opt-in.

Workers are started with `spawn` (never `fork`: forking a process whose OpenMP pool already ran
can deadlock the child). Each receives the Tagger itself once, pickled in memory by this
process (our own object, never read from a file or received from outside). Results come back in input order, at most
`2 * processes` files in flight, so memory stays at one decoded song per worker. A worker that
dies (a decoder crash) never stops the folder: the files it held are retried one at a time in
a fresh pool, and a file that kills a worker again gets an error row naming it.
"""

from __future__ import annotations

import multiprocessing
import pickle
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from genre_lab.inference.tagger import Tagger, TagResult

_TAGGER: Tagger | None = None


def _start(tagger: bytes, threads: int) -> None:
    global _TAGGER
    torch.set_num_threads(threads)
    # Bytes this parent process pickled from its own in-memory Tagger a moment ago, never a
    # file or anything received from outside.
    _TAGGER = pickle.loads(tagger)  # noqa: S301


def _tag_one(path: str, k: int, segment_seconds: float | None, min_content: bool) -> TagResult:
    assert _TAGGER is not None, "worker not initialised"
    return _TAGGER._tag_decoded(path, _TAGGER._decode_caught(path), k, segment_seconds, min_content)


def tag_in_processes(
    tagger: Tagger,
    paths: Sequence[str],
    k: int,
    segment_seconds: float | None,
    processes: int,
    min_content: bool = False,
    on_result: Callable[[TagResult], None] | None = None,
) -> Iterator[TagResult]:
    """Tag `paths` in `processes` worker processes; one result per path, in order."""
    from genre_lab.inference.tagger import TagResult

    threads = max(1, torch.get_num_threads() // processes)
    # Plain pickle, by value: multiprocessing's own pickler would share tensors through file
    # descriptors, which failed to spawn for an int8-quantized model ("bad value(s) in fds_to_keep").
    state = pickle.dumps(tagger)
    todo = deque(paths)
    suspects: deque[str] = deque()  # files in flight when a worker died: retried one at a time
    while todo or suspects:
        pool = ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_start, initargs=(state, threads))
        pending: deque[tuple[str, Future]] = deque()
        try:
            while todo or suspects or pending:
                # Suspects go alone, so a crash among them names exactly one file.
                while suspects and not pending:
                    path = suspects.popleft()
                    pending.append((path, pool.submit(_tag_one, path, k, segment_seconds, min_content)))
                    try:
                        pending[0][1].result()
                    except BrokenProcessPool:
                        pending.clear()
                        result = TagResult(path=path, error="the decoder or model crashed the worker process "
                                                             "tagging this file")
                        if on_result:
                            on_result(result)
                        yield result
                        raise
                while not suspects and todo and len(pending) < 2 * processes:
                    path = todo.popleft()
                    pending.append((path, pool.submit(_tag_one, path, k, segment_seconds, min_content)))
                if not pending:
                    continue
                path, future = pending[0]
                try:
                    result = future.result()
                except BrokenProcessPool:
                    suspects.extend(p for p, _ in pending)
                    pending.clear()
                    raise
                pending.popleft()
                if on_result:
                    on_result(result)
                yield result
        except BrokenProcessPool:
            continue  # a fresh pool for the rest
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
