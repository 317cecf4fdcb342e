"""Which runs of an experiment a report counts, and in which cell of its table each one lands.

A cell is one configuration (a group, e.g. `model=crnn`) at one pairing key (e.g. `seed=2`).
The runs of one cell must share every setting but the group and pairing keys, or the table
would average (or silently swap) different experiments:

- A setting is a param of the run: training logs its whole resolved config flattened
  (`trainer.max_epochs`, `model.optimizer.lr`, ...). Bookkeeping params that differ between
  runs of one configuration without changing what is learned (`IGNORED_SETTINGS`: output
  folders, run names and ids, the tracking URI, progress display, heartbeats, timing, resume,
  data loader workers) are not compared; `--ignore` adds more.
- A setting that equals a pairing key in every run of a group is a copy of it (the dataset's
  `data.source.fold` is `${data.fold}`), not another setting.
- When the runs of one group differ in other settings, the group is split by them: each such
  setting becomes a column and each of its values a row of its own (`strict=True` refuses
  instead, naming the settings and example values).
- Two runs with the same settings at the same pairing key (a rerun) are refused unless
  `latest=True`, which keeps the newer and lists the other as skipped, with why.
- Only training runs count: sweep trials, ensembles and evaluations only when included,
  sweep parents, reports and pruned trials never (`genre_lab.tracking.run_kinds`).

Everything read here comes from a store anyone with write access can fill: values are only
compared and carried as text; in messages they are shortened and shown `repr`-escaped when
not printable.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from mlflow import MlflowClient
from mlflow.entities import Run
from mlflow.exceptions import MlflowException

from genre_lab.reporting.comparison import Observation
from genre_lab.tracking.run_kinds import (
    AUDIT, ENSEMBLE, EVALUATION, REPORT, STATE_TAG, SWEEP, SWEEP_TRIAL, TRAINING, run_kind,
)

#: Params not compared between runs of one cell (a name, or a prefix ending at a `.`): where a
#: run writes (`paths`, the checkpoint folder), how it is tracked (`logger.mlflow`: tracking URI,
#: run name and id, experiment), what it shows or times (progress bar, model summary, logging
#: interval, heartbeat, front-end throughput), `resume` (the run id continued), `log_model`
#: (whether the servable model is logged) and `data.num_workers` (loader processes).
IGNORED_SETTINGS: tuple[str, ...] = (
    "paths", "logger.mlflow", "callbacks.model_checkpoint.dirpath", "callbacks.progress_bar",
    "trainer.enable_progress_bar", "trainer.enable_model_summary", "trainer.log_every_n_steps",
    "heartbeat_seconds", "throughput_seconds", "resume", "log_model", "data.num_workers",
)
#: `--include` names -> the run kinds they add to the training runs.
INCLUDABLE: dict[str, str] = {"sweep-trials": SWEEP_TRIAL, "ensembles": ENSEMBLE, "evaluations": EVALUATION}
#: Kinds never counted: they hold no result of a compared model.
NEVER_COUNTED = frozenset({SWEEP, REPORT, AUDIT})
#: The value shown for a setting or key a run did not record.
UNRECORDED = "—"


@dataclass
class Collected:
    observations: dict[str, list[Observation]]  # by metric
    #: The table's label columns: the group keys, then the settings the groups were split by.
    columns: list[str]
    split_by: list[str] = field(default_factory=list)
    runs: int = 0
    #: (run id, reason) of finished runs left out: not a training run, missing a metric, replaced.
    skipped: list[tuple[str, str]] = field(default_factory=list)
    #: One line per group split because its runs differ in other settings.
    notes: list[str] = field(default_factory=list)


def shown(text: object, limit: int = 40) -> str:
    """A store's text for a one-line message: shortened, and `repr`-escaped unless printable."""
    text = str(text)
    short = text if len(text) <= limit else text[:limit] + "…"
    return short if short.isprintable() else repr(short)


def include_kinds(names: Iterable[str]) -> frozenset[str]:
    """The run kinds counted: training runs and the `--include` names (`INCLUDABLE`)."""
    names = list(names)
    unknown = [n for n in names if n not in INCLUDABLE]
    if unknown:
        raise ValueError(f"--include {','.join(map(shown, unknown))}: not a kind of run; choose from {', '.join(INCLUDABLE)}")
    return frozenset({TRAINING, *(INCLUDABLE[n] for n in names)})


def _left_out(kind: str, run: Run) -> str | None:
    """Why a run of a kind not counted is left out (None: not worth listing)."""
    if kind in NEVER_COUNTED:
        return None
    option = next((name for name, k in INCLUDABLE.items() if k == kind), None)
    if option:
        return f"{kind} run, not counted (--include {option} counts it)"
    return f"run_type={shown(run.data.tags.get('run_type', kind))} is not a training run"


def finished_runs(client: MlflowClient, experiment_id: str, filter_string: str = "",
                  kinds: frozenset[str] = frozenset({TRAINING})) -> tuple[list[Run], list[tuple[str, str]]]:
    """FINISHED runs of the experiment of the counted `kinds`, oldest first, and (run id,
    reason) of the finished runs left out for their kind. Pruned trials stopped before their
    budget: never counted."""
    query = "attributes.status = 'FINISHED'" + (f" and {filter_string}" if filter_string else "")
    parents: dict[str, Mapping[str, str] | None] = {}

    def parent_tags(run_id: str) -> Mapping[str, str] | None:
        if run_id not in parents:
            try:
                parents[run_id] = client.get_run(run_id).data.tags
            except MlflowException:  # deleted, or another store's id
                parents[run_id] = None
        return parents[run_id]

    runs: list[Run] = []
    left_out: list[tuple[str, str]] = []
    token = None
    while True:
        page = client.search_runs([experiment_id], query, max_results=1000, page_token=token,
                                  order_by=["attributes.start_time ASC"])
        for run in page:
            kind = run_kind(run.data.tags, parent_tags)
            if run.data.tags.get(STATE_TAG) == "PRUNED":
                left_out.append((run.info.run_id, "pruned sweep trial (stopped before its budget)"))
            elif kind in kinds:
                runs.append(run)
            elif (why := _left_out(kind, run)) is not None:
                left_out.append((run.info.run_id, why))
        token = page.token
        if not token:
            return runs, left_out


def _key(run: Run, key: str, missing: Mapping[str, str]) -> str | None:
    """A group or pairing key of a run: its tag, else its param, else `missing`'s value."""
    if key in run.data.tags:
        return run.data.tags[key]
    return run.data.params.get(key, missing.get(key))


def ignored(key: str, ignore: Iterable[str]) -> bool:
    """Whether param `key` is bookkeeping: a name in `ignore`, or below one (`paths.output_dir`)."""
    return any(key == name or key.startswith(name + ".") for name in ignore)


def _label(keys: Sequence[str], values: Sequence[str]) -> str:
    return ", ".join(f"{shown(k)}={shown(v)}" for k, v in zip(keys, values)) or "all runs"


@dataclass
class _Row:
    run: Run
    group: tuple[str, ...]
    pair: tuple[str, ...]
    settings: dict[str, str]


def collect(runs: Sequence[Run], metrics: Sequence[str], group_by: Sequence[str], pair_by: Sequence[str],
            missing: Mapping[str, str] | None = None, *, ignore: Iterable[str] = (), strict: bool = False,
            latest: bool = False) -> Collected:
    """Observations per metric, one per cell and metric (`runs` oldest first). `missing` gives
    the value of a key or setting for runs that did not record it (logged before the setting
    existed); otherwise it reads `—`. `ignore` adds to `IGNORED_SETTINGS`. Raises ValueError
    (one line) for settings that differ under `strict`, and for reruns without `latest`."""
    missing = dict(missing or {})
    ignore = (*IGNORED_SETTINGS, *ignore)
    keys = set(group_by) | set(pair_by)
    rows = [
        _Row(run,
             tuple(_key(run, k, missing) or UNRECORDED for k in group_by),
             tuple(f"{k}={v}" for k in pair_by if (v := _key(run, k, missing)) is not None),
             {k: v for k, v in run.data.params.items() if k not in keys and not ignored(k, ignore)})
        for run in runs
    ]

    def setting(row: _Row, key: str) -> str:
        return row.settings.get(key, missing.get(key, UNRECORDED))

    def copies_a_pairing_key(key: str, members: list[_Row]) -> bool:
        """A setting that equals a pairing key in every run is that key under another name
        (`data.source.fold` is `${data.fold}`): it differs between runs because the key does."""
        return any(all(row.settings.get(key) == _key(row.run, p, missing) for row in members) for p in pair_by)

    by_group: dict[tuple[str, ...], list[_Row]] = {}
    for row in rows:
        by_group.setdefault(row.group, []).append(row)
    differing: dict[tuple[str, ...], dict[str, list[str]]] = {}
    for group, members in by_group.items():
        for key in sorted({k for row in members for k in row.settings}):
            values = list(dict.fromkeys(setting(row, key) for row in members))
            if len(values) > 1 and not copies_a_pairing_key(key, members):
                differing.setdefault(group, {})[key] = values
    split_by = sorted({k for found in differing.values() for k in found})
    described = [f"{_label(group_by, group)} differ in " + ", ".join(
                     f"{shown(k)} ({', '.join(shown(v) for v in values[:3])}{', …' if len(values) > 3 else ''})"
                     for k, values in found.items())
                 for group, found in sorted(differing.items())]
    if strict and described:
        raise ValueError("--strict: the runs of " + "; of ".join(described)
                         + " (pick one configuration with --filter, or leave out --strict to give each its own row)")
    out = Collected({m: [] for m in metrics}, [*group_by, *split_by], split_by)
    out.notes = [f"split: the runs of {d}; each is its own row (--strict refuses instead)" for d in described]

    cells: dict[tuple[tuple[str, ...], tuple[str, ...]], list[_Row]] = {}
    for row in rows:
        cells.setdefault((row.group + tuple(setting(row, k) for k in split_by), row.pair), []).append(row)
    for (group, pair), members in cells.items():
        keep = members[-1]
        if len(members) > 1:
            where = _label(out.columns, group) + (f", {', '.join(map(shown, pair))}" if pair else ", no seed or fold recorded")
            if not latest:
                more = f" (and {len(members) - 2} more)" if len(members) > 2 else ""
                raise ValueError(f"runs {members[-2].run.info.run_id} and {keep.run.info.run_id}{more} are both {where} "
                                 f"with the same settings: keep the newest with --latest, or choose with --filter")
            for row in members[:-1]:
                out.skipped.append((row.run.info.run_id, f"replaced by the later run {keep.run.info.run_id} "
                                                         f"with the same settings ({where}; --latest)"))
        out.runs += 1
        for m in metrics:
            if m in keep.run.data.metrics:
                out.observations[m].append(Observation(group, pair, float(keep.run.data.metrics[m])))
            else:
                out.skipped.append((keep.run.info.run_id, f"no metric {m}"))
    return out
