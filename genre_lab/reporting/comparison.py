"""Seed statistics of compared configurations: mean and spread per group, and a paired
comparison between groups over matching seeds or folds; rendered as Markdown and LaTeX.

Pure numbers in, numbers and text out: `genre_lab.reporting.experiment_report` feeds it runs read from MLflow.
Group values come from run tags and params anyone with write access to the store can set, so
every label is escaped for its format (`_md`, `_tex`) and kept on one line.
The paired test is Student's paired t-test (scipy) with its 95% confidence interval of the
mean difference; without scipy, a percentile bootstrap interval (numpy) and no p-value.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

#: Resamples of the bootstrap interval used when scipy is missing.
BOOTSTRAP_RESAMPLES = 10_000


@dataclass(frozen=True)
class Observation:
    """One run's value of one metric: its group (e.g. ("crnn", "logmel")) and the pairing
    key (e.g. ("seed=1",)) that matches it with runs of other groups."""

    group: tuple[str, ...]
    pair: tuple[str, ...]
    value: float


@dataclass(frozen=True)
class Summary:
    group: tuple[str, ...]
    n: int
    mean: float
    std: float  # sample standard deviation (ddof=1); nan for a single run
    values: dict[tuple[str, ...], float]  # by pairing key


@dataclass(frozen=True)
class PairedComparison:
    a: tuple[str, ...]
    b: tuple[str, ...]
    n: int  # pairing keys both groups share
    mean_diff: float  # mean of a - b over the shared keys
    ci_low: float
    ci_high: float
    p_value: float | None  # None without scipy (bootstrap interval) or with fewer than 2 pairs
    method: str


def summarise(observations: Sequence[Observation]) -> list[Summary]:
    """Per group, in sorted order: n, mean and sample std over its runs."""
    by_group: dict[tuple[str, ...], dict[tuple[str, ...], float]] = {}
    for o in observations:
        by_group.setdefault(o.group, {})[o.pair] = float(o.value)
    out = []
    for group, values in sorted(by_group.items()):
        x = np.array(list(values.values()), dtype=np.float64)
        std = float(x.std(ddof=1)) if x.size > 1 else float("nan")
        out.append(Summary(group, int(x.size), float(x.mean()), std, values))
    return out


def paired(a: Summary, b: Summary, rng_seed: int = 0) -> PairedComparison:
    """a - b over the pairing keys (seeds, folds) both groups ran."""
    keys = [k for k in a.values if k in b.values]
    d = np.array([a.values[k] - b.values[k] for k in keys], dtype=np.float64)
    n = int(d.size)
    if n == 0:
        return PairedComparison(a.group, b.group, 0, float("nan"), float("nan"), float("nan"), None, "no shared seeds")
    mean = float(d.mean())
    if n == 1:
        return PairedComparison(a.group, b.group, 1, mean, float("nan"), float("nan"), None, "one pair")
    try:
        from scipy import stats
    except ImportError:
        return _bootstrap(a.group, b.group, d, rng_seed)
    sd = float(d.std(ddof=1))
    if sd == 0.0:  # identical differences: no spread to test against
        return PairedComparison(a.group, b.group, n, mean, mean, mean, 0.0 if mean else 1.0, "paired t-test")
    half = float(stats.t.ppf(0.975, n - 1)) * sd / np.sqrt(n)
    p = float(stats.ttest_rel([a.values[k] for k in keys], [b.values[k] for k in keys]).pvalue)
    return PairedComparison(a.group, b.group, n, mean, mean - half, mean + half, p, "paired t-test")


def _bootstrap(a: tuple[str, ...], b: tuple[str, ...], d: np.ndarray, rng_seed: int) -> PairedComparison:
    rng = np.random.default_rng(rng_seed)
    means = d[rng.integers(0, d.size, size=(BOOTSTRAP_RESAMPLES, d.size))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return PairedComparison(a, b, int(d.size), float(d.mean()), float(low), float(high), None, "bootstrap 95% CI")


def all_pairs(summaries: Sequence[Summary]) -> list[PairedComparison]:
    return [paired(a, b) for a, b in itertools.combinations(summaries, 2)]


# ------------------------------------------------------------------------------ rendering


def _num(x: float, digits: int = 3) -> str:
    return "—" if x is None or not np.isfinite(x) else f"{x:.{digits}f}"


def _p(p: float | None) -> str:
    if p is None or not np.isfinite(p):
        return "—"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _mean_std(s: Summary) -> str:
    return _num(s.mean) if s.n < 2 else f"{_num(s.mean)} ± {_num(s.std)}"


#: Runs of whitespace and control characters (newlines included): one space in a table cell.
_SPACE = re.compile(r"[\s\x00-\x1f\x7f-\x9f]+")
#: `&`, `<` and `>` as entities: no HTML, comment or report marker can be written.
_MD_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
#: Backslash-escaped everywhere: escapes, code spans, emphasis, links, cell separators,
#: strikethrough and GitHub's `$` math.
_MD_ESCAPED = frozenset("\\`*[]|~$")
#: A metric name shown in a code span as it is.
_MD_CODE_SAFE = re.compile(r"[\w./:@=+-]+")


def _plain(text: object) -> str:
    """A label on one line: newlines and control characters become single spaces."""
    return _SPACE.sub(" ", str(text)).strip()


def _md(text: object) -> str:
    """A label from a store (tag, param, group name) as literal text in one Markdown table cell:
    it cannot end the cell or row, add rows, open HTML or comments, or format anything. `_`
    is escaped only where it could open or close emphasis (`test/track_acc` stays readable)."""
    flat = _plain(text)
    out = []
    for i, ch in enumerate(flat):
        if ch in _MD_ENTITIES:
            out.append(_MD_ENTITIES[ch])
        elif ch in _MD_ESCAPED:
            out.append("\\" + ch)
        elif ch == "_" and not (0 < i < len(flat) - 1 and flat[i - 1].isalnum() and flat[i + 1].isalnum()):
            out.append("\\_")
        else:
            out.append(ch)
    return "".join(out)


def _md_code(text: str) -> str:
    """A metric name in a code span when it is a plain name, else escaped text."""
    return f"`{text}`" if _MD_CODE_SAFE.fullmatch(text) else _md(text)


def markdown(
    group_by: Sequence[str], tables: Mapping[str, list[Summary]], comparisons: Mapping[str, list[PairedComparison]],
) -> str:
    """One table of mean ± std (n runs) per group and metric, then the paired comparisons.
    Group values, keys and metric names are escaped (`_md`): one line per row, whatever a
    store holds."""
    metrics = list(tables)
    first = tables[metrics[0]]
    header = [_md(x) for x in (*group_by, "n", *metrics)]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(["---"] * len(group_by) + ["---:"] * (1 + len(metrics))) + " |"]
    for row in first:
        cells = [*map(_md, row.group), str(row.n)]
        for m in metrics:
            match = next((s for s in tables[m] if s.group == row.group), None)
            cells.append(_mean_std(match) if match else "—")
        lines.append("| " + " | ".join(cells) + " |")
    out = ["\n".join(lines)]
    for m, rows in comparisons.items():
        if not rows:
            continue
        table = [f"Paired differences of {_md_code(m)} (A − B over shared seeds/folds):", "",
                 "| A | B | pairs | mean A − B | 95% CI | p | test |", "| --- | --- | ---: | ---: | --- | ---: | --- |"]
        for c in rows:
            table.append(f"| {' / '.join(map(_md, c.a))} | {' / '.join(map(_md, c.b))} | {c.n} | {_num(c.mean_diff)} | "
                         f"[{_num(c.ci_low)}, {_num(c.ci_high)}] | {_p(c.p_value)} | {c.method} |")
        out.append("\n".join(table))
    return "\n\n".join(out) + "\n"


_TEX_ESCAPES = {"\\": r"\textbackslash{}", "_": r"\_", "&": r"\&", "%": r"\%", "#": r"\#", "$": r"\$",
                "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\^{}",
                # Not special, but wrong glyphs in OT1, or read by the `\\` ending the row above.
                "<": r"\textless{}", ">": r"\textgreater{}", "|": r"\textbar{}", "[": "{[}", "]": "{]}", "*": "{*}"}


def _tex(text: object) -> str:
    """A label as literal LaTeX text on one line (a blank line would end the tabular)."""
    return "".join(_TEX_ESCAPES.get(ch, ch) for ch in _plain(text))


def latex(group_by: Sequence[str], tables: Mapping[str, list[Summary]]) -> str:
    """A booktabs tabular of mean $\\pm$ std per group and metric, best mean in bold."""
    metrics = list(tables)
    best = {m: max(s.mean for s in tables[m]) for m in metrics}
    cols = "l" * len(group_by) + "r" * (1 + len(metrics))
    lines = [rf"\begin{{tabular}}{{{cols}}}", r"\toprule",
             " & ".join([*map(_tex, group_by), "$n$", *map(_tex, metrics)]) + r" \\", r"\midrule"]
    for row in tables[metrics[0]]:
        cells = [*map(_tex, row.group), str(row.n)]
        for m in metrics:
            s = next((x for x in tables[m] if x.group == row.group), None)
            if s is None:
                cells.append("--")
                continue
            value = _num(s.mean) if s.n < 2 else rf"{_num(s.mean)} \pm {_num(s.std)}"
            cells.append(rf"$\mathbf{{{value}}}$" if s.mean == best[m] else f"${value}$")
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"
