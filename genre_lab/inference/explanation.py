"""Per-song explanation figures: the work behind `genre-lab explain`.

Per song, a PNG with the log-mel spectrogram, the attribution for the predicted genre (or a
chosen target) laid over it, and the genre timeline across the song. The model is anything
`load_model` takes, ensembles included; the methods are `genre_lab.inference.attribution`'s.
A song that cannot be explained is reported and the others go on.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from genre_lab.audio.content import rms_dbfs
from genre_lab.audio.decode import AudioDecodeError, resample
from genre_lab.audio.windows import windows
from genre_lab.inference.attribution import Explainer, stitch
from genre_lab.inference.tag_files import model_and_songs
from genre_lab.inference.tagger import Tagger, TaggingError


@dataclass
class Explanation:
    path: str
    label: str
    probability: float
    figure: Path
    #: (bins, frames) attribution over the whole song, on the reference model's grid.
    attribution: np.ndarray


@dataclass
class Failure:
    """A song that could not be explained, and why."""

    path: str
    reason: str


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


def explain_songs(model: str, paths: Sequence[str | Path], output: Path, method: str = "integrated_gradients",
                  target: str | None = None, steps: int = 16, hop: float | None = None,
                  tracking_uri: str | None = None) -> Iterator[Explanation | Failure]:
    """Explain every song `paths` name, one result per song as it is drawn. The model and
    method are checked (ValueError naming them) before the first song; a song that fails is a
    `Failure` and the others go on."""
    tagger, files = model_and_songs(model, paths, tracking_uri, hop)
    explainer = Explainer(tagger.model, method, steps)
    return _each(tagger, explainer, files, output, target)


def _each(tagger: Tagger, explainer: Explainer, files: Sequence[Path], output: Path,
          target: str | None) -> Iterator[Explanation | Failure]:
    for path in files:
        try:
            yield explain_song(tagger, explainer, path, output, target)
        except (AudioDecodeError, TaggingError, ValueError, RuntimeError) as error:
            yield Failure(str(path), str(getattr(error, "reason", error)))
