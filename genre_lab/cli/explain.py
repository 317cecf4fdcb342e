"""`python -m genre_lab.explain MODEL SONG... --output DIR`: why a model hears a genre.

Per song, a PNG with the log-mel spectrogram, the attribution for the predicted genre (or
`--target LABEL`) laid over it, and the genre timeline across the song. MODEL is anything
`genre_lab.cli.predict` takes, ensembles included. Methods: `integrated_gradients` (default),
`occlusion`, `gradcam` (see `genre_lab.inference.attribution`). A song that cannot be
explained is reported and the others go on; the exit status is 1 if any failed.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from rich.console import Console
from rich.markup import escape

from genre_lab.audio.decode import AudioDecodeError, resample
from genre_lab.cli.options import add_tracking_uri_option
from genre_lab.audio.content import rms_dbfs
from genre_lab.inference.attribution import METHODS, Explainer, stitch
from genre_lab.inference.tag_files import collect_audio_files
from genre_lab.models.loading import ModelSourceError
from genre_lab.inference.tagger import Tagger, TaggingError
from genre_lab.audio.windows import windows


@dataclass
class Explanation:
    path: str
    label: str
    probability: float
    figure: Path
    #: (bins, frames) attribution over the whole song, on the reference model's grid.
    attribution: np.ndarray


def explain_song(tagger: Tagger, explainer: Explainer, path: str | Path, output: Path,
                 target: str | None = None, batch: int = 8) -> Explanation:
    """Attribute one song's windows, stitch them over the song, and draw the figure."""
    from genre_lab.reporting.plots import explanation_figure, plain_text

    import matplotlib.pyplot as plt

    if target is not None and target not in tagger.classes:
        raise ValueError(f"--target '{target}' is not one of the model's classes {tagger.classes}")
    wave = tagger.decode(path)
    level = rms_dbfs(wave)
    if level < tagger.silence_dbfs:  # the tagger's silence rule, without tagging the song twice
        raise TaggingError(str(path), f"silent audio (RMS {level:.0f} dBFS)")
    if len(wave) < tagger.chunk:  # drawn over one whole (zero-padded) window
        wave = F.pad(wave, (0, tagger.chunk - len(wave)))
    probs, starts = tagger.window_probabilities(wave)
    if not torch.isfinite(probs).all():
        raise TaggingError(str(path), "model output is not finite")
    track = probs.mean(0)
    index = tagger.classes.index(target) if target else int(track.argmax())
    batch_windows, _ = windows(wave, tagger.chunk, tagger.hop)
    maps = torch.cat([explainer.attribute(part, index) for part in batch_windows.split(batch)])
    ref = explainer.reference
    ref_rate = ref.spec.sample_rate
    ref_wave = wave if ref_rate == tagger.sample_rate else resample(wave, tagger.sample_rate, ref_rate)
    with torch.no_grad():
        spectrogram = ref.frontend.spectrogram(ref_wave[None])[0]
    ref_starts = [int(round(s * ref_rate / tagger.sample_rate)) for s in starts]
    song_map = stitch(maps, ref_starts, ref.frontend.hop_length, spectrogram.shape[-1])
    label = tagger.classes[index]
    seconds = len(wave) / tagger.sample_rate
    fig = explanation_figure(spectrogram.numpy(), song_map.numpy(), probs.numpy(), tagger.classes, seconds,
                             f"{Path(path).name}: {label} ({float(track[index]):.2f}), {explainer.method}")
    output.mkdir(parents=True, exist_ok=True)
    figure = output / f"{Path(path).stem}.png"
    with plain_text():  # the title holds the file name and a class name: plain text
        fig.savefig(figure, dpi=100)
    plt.close(fig)
    return Explanation(str(path), label, float(track[index]), figure, song_map.numpy())


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m genre_lab.explain", description=__doc__.splitlines()[0])
    p.add_argument("model", help="checkpoint, MLflow run id, models:/ or runs:/ URI (ensembles too)")
    p.add_argument("paths", nargs="+", metavar="SONG", help="audio files or folders")
    p.add_argument("--output", type=Path, required=True, metavar="DIR", help="where the PNGs go")
    p.add_argument("--method", choices=METHODS, default="integrated_gradients")
    p.add_argument("--target", metavar="LABEL", help="explain this genre instead of the predicted one")
    p.add_argument("--steps", type=int, default=16, help="integration steps of integrated_gradients")
    p.add_argument("--hop", type=float, metavar="SECONDS", help="window hop (default: the model's evaluation hop)")
    add_tracking_uri_option(p)
    return p


def main(argv: list[str] | None = None) -> int:
    a = parser().parse_args(argv)
    err = Console(stderr=True)
    try:
        tagger = Tagger.load(a.model, tracking_uri=a.tracking_uri, hop_seconds=a.hop, device="cpu")
        explainer = Explainer(tagger.model, a.method, a.steps)
        files = collect_audio_files(a.paths)
    except (ModelSourceError, ValueError) as error:
        err.print(f"[red]error:[/red] {escape(str(error))}", highlight=False)
        return 2
    failed = 0
    for path in files:
        try:
            result = explain_song(tagger, explainer, path, a.output, a.target)
        except (AudioDecodeError, TaggingError, ValueError, RuntimeError) as error:
            failed += 1
            err.print(f"[red]{escape(str(path))}:[/red] {escape(str(getattr(error, 'reason', error)))}", highlight=False)
            continue
        # Paths and class names are data: printed as typed, never read as rich markup.
        Console().print(escape(f"{path}: {result.label} ({result.probability:.2f}) -> {result.figure}"), highlight=False)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
