"""Opening a store that may not exist yet (MLflow's tracking database, Optuna's study
storage): one process at a time, on one machine or several.

Processes started together on a fresh sqlite file race to create its tables. Measured here:
of 3 processes opening a new MLflow store at once, 2 failed in MLflow's alembic migration
("expected to match one row when updating ... in 'alembic_version'", or "table
alembic_version already exists"); Optuna's `create_all` races the same way. Every command
(training, evaluation, sweeps, benchmarks) opens its stores inside `store_lock`.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from pathlib import Path

#: Key of the PostgreSQL advisory lock held while a store is opened (any constant bigint).
ADVISORY_KEY = 0x67656E72655F6C  # "genre_l"

# The OS locks below exclude other processes, but also a second acquisition by this very
# process (a new flock file description, a new database session), which would deadlock a
# nested `store_lock` (a sweep opens its stores, then the experiment inside). Threads of one
# process take turns at a re-entrant lock per target and only the outermost holder takes the
# OS lock.
_THREAD_LOCKS: defaultdict[str, threading.RLock] = defaultdict(threading.RLock)
_DEPTH: defaultdict[str, int] = defaultdict(int)
_REGISTRY_GUARD = threading.Lock()


def sqlite_file(url: str) -> Path | None:
    """The database file of a `sqlite:///path` URL (None for servers and in-memory databases)."""
    if url.startswith("sqlite:///") and url[len("sqlite:///"):] not in ("", ":memory:"):
        return Path(url[len("sqlite:///"):]).expanduser()
    return None


def is_postgresql(url: str) -> bool:
    return url.startswith(("postgresql:", "postgresql+", "postgres:"))


@contextmanager
def store_lock(*urls: str) -> Iterator[None]:
    """Hold while opening the stores at `urls`: other holders of the same store wait.

    sqlite: a lock file beside the database (`<db>-lock`, `fcntl.flock`, released by the OS if
    its holder dies). PostgreSQL, which workers on several machines share: a session advisory
    lock in that database (released when the session ends, also on a crash). An MLflow
    tracking server (`http://...`) creates its tables when it starts: nothing to lock. Windows
    lacks fcntl: no lock for sqlite there. Other URLs are left alone."""
    targets: list[tuple[str, Callable[[], AbstractContextManager[None]]]] = []
    for db in sorted({p.resolve() for p in map(sqlite_file, urls) if p is not None}):
        lock_file = db.with_name(db.name + "-lock")
        targets.append((f"file:{lock_file}", lambda f=lock_file: _file_lock(f)))
    for url in sorted({u for u in urls if is_postgresql(u)}):
        targets.append((f"pg:{url}", lambda u=url: _advisory_lock(u)))
    with ExitStack() as stack:
        for key, acquire in targets:
            stack.enter_context(_reentrant(key, acquire))
        yield


@contextmanager
def _reentrant(key: str, acquire: Callable[[], AbstractContextManager[None]]) -> Iterator[None]:
    with _REGISTRY_GUARD:
        local = _THREAD_LOCKS[key]
    with local:
        with ExitStack() as stack:
            if _DEPTH[key] == 0:
                stack.enter_context(acquire())
            _DEPTH[key] += 1
            try:
                yield
            finally:
                _DEPTH[key] -= 1


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # Windows
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def _advisory_lock(url: str) -> Iterator[None]:
    import sqlalchemy  # only for database servers

    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": ADVISORY_KEY})
            try:
                yield
            finally:
                conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": ADVISORY_KEY})
    finally:
        engine.dispose()
