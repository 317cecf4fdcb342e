"""Figures logged as MLflow artifacts.

Every label drawn here (class names, tags, params, file names) comes from a dataset or a
store and is drawn as plain text: `plain_text` turns off mathtext and TeX, so a name like
`$\\badcmd{$` is shown as typed instead of failing the figure (and the run) or being rendered.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import matplotlib

matplotlib.use("Agg")  # files only: runs on headless machines and inside workers
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.text import Text

#: Text is never parsed as mathtext (`$...$`) nor handed to TeX.
PLAIN_TEXT = {"text.usetex": False, "text.parse_math": False}

_Builder = TypeVar("_Builder", bound=Callable[..., Figure])


@contextmanager
def plain_text() -> Iterator[None]:
    """Matplotlib settings under which every text created or drawn is plain: wrap the drawing
    and the saving of any figure that shows untrusted text."""
    with matplotlib.rc_context(PLAIN_TEXT):
        yield


def freeze_plain_text(fig: Figure) -> Figure:
    """Mark every text already in `fig` plain, so drawing it later (outside `plain_text`,
    e.g. in `MlflowClient.log_figure`) cannot parse it either."""
    for text in fig.findobj(Text):
        text.set_usetex(False)
        text.set_parse_math(False)
    return fig


def plain_figure(builder: _Builder) -> _Builder:
    """Decorator for figure builders: built under `plain_text`, returned frozen plain."""

    @functools.wraps(builder)
    def build(*args, **kwargs) -> Figure:
        with plain_text():
            return freeze_plain_text(builder(*args, **kwargs))

    return build  # type: ignore[return-value]


@plain_figure
def confusion_matrix_figure(cm: np.ndarray, classes: list[str], title: str = "Confusion matrix (tracks)") -> Figure:
    """Row-normalised heat map with raw counts written in the cells."""
    cm = np.asarray(cm)
    rates = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(1.0 + 0.6 * len(classes), 0.8 + 0.6 * len(classes)))
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    for i in range(len(classes)):
        for j in range(len(classes)):
            if cm[i, j]:
                ax.text(j, i, int(cm[i, j]), ha="center", va="center", color="white" if rates[i, j] > 0.5 else "black", fontsize=8)
    fig.tight_layout()
    return fig


@plain_figure
def explanation_figure(
    spectrogram: np.ndarray, attribution: np.ndarray, taggram: np.ndarray, classes: list[str],
    seconds: float, title: str,
) -> Figure:
    """One song: its log-mel, the attribution for the explained genre laid over it, and the
    genre timeline (window probabilities over time, as musicnn's taggram)."""
    fig, axes = plt.subplots(3, 1, figsize=(12, 9), sharex=True, gridspec_kw={"height_ratios": [2, 2, 1.6]})
    extent = (0, seconds, 0, spectrogram.shape[0])
    axes[0].imshow(spectrogram, origin="lower", aspect="auto", cmap="magma", extent=extent)
    axes[0].set_ylabel("band")
    axes[0].set_title(title)
    axes[1].imshow(spectrogram, origin="lower", aspect="auto", cmap="gray", extent=extent)
    positive = np.clip(attribution, 0, None)
    # The 99th percentile, not the maximum: a few extreme cells would otherwise leave the rest
    # of a long song's map invisible.
    scale = float(np.percentile(positive, 99)) or float(positive.max()) or 1.0
    axes[1].imshow(np.clip(positive / scale, 0, 1), origin="lower", aspect="auto", cmap="inferno", alpha=0.6, extent=extent, vmin=0, vmax=1)
    axes[1].set_ylabel("band (attribution)")
    axes[2].imshow(taggram.T, origin="lower", aspect="auto", cmap="Blues", vmin=0, vmax=1,
                   extent=(0, seconds, -0.5, len(classes) - 0.5), interpolation="nearest")
    axes[2].set_yticks(range(len(classes)), classes, fontsize=7)
    axes[2].set_xlabel("seconds")
    fig.tight_layout()
    return fig


@plain_figure
def class_attribution_figure(mean_map: np.ndarray, label: str, tracks: int) -> Figure:
    """A genre's mean attribution over correctly classified tracks (band x frame within a
    window) and its frequency profile: which bands matter for this genre."""
    fig, (ax_map, ax_prof) = plt.subplots(1, 2, figsize=(10, 3.8), gridspec_kw={"width_ratios": [3, 1]}, sharey=True)
    ax_map.imshow(mean_map, origin="lower", aspect="auto", cmap="inferno")
    ax_map.set_xlabel("frame within window")
    ax_map.set_ylabel("band")
    ax_map.set_title(f"{label}: mean attribution over {tracks} correct track(s)")
    profile = mean_map.mean(axis=1)
    ax_prof.plot(profile, np.arange(len(profile)))
    ax_prof.axvline(0, color="gray", lw=0.5)
    ax_prof.set_xlabel("mean attribution")
    ax_prof.set_title("frequency profile")
    fig.tight_layout()
    return fig


@plain_figure
def degradation_figure(curves: dict[str, dict]) -> Figure:
    """One panel per perturbation kind: track accuracy (and macro-F1) against its levels, from
    none (left) to strongest (right). `curves` is `robustness.as_json`'s mapping."""
    kinds = list(curves)
    fig, axes = plt.subplots(1, len(kinds), figsize=(3.2 * len(kinds), 3.0), squeeze=False)
    for ax, kind in zip(axes[0], kinds):
        c = curves[kind]
        x = np.arange(len(c["levels"]))
        for key, style in (("track_acc", "o-"), ("track_f1", "s--")):
            if key in c:
                ax.plot(x, c[key], style, label=key.replace("_", " "))
        ax.set_xticks(x, c["levels"])
        ax.set_title(kind.replace("_", " "))
        ax.set_xlabel(c["unit"])
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("test score")
    axes[0][0].legend(fontsize="small")
    fig.tight_layout()
    return fig
