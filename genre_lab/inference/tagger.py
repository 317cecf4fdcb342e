"""Tag whole songs with a trained model: `Tagger.load(model)`, then `.tag(...)` or `.tag_files(...)`.

A song of any length is decoded at the model's sample rate and cut into windows of the training
chunk length, by default as far apart as the model's validation and test windows
(`data.eval_hop_seconds` at training, else one chunk), the last one aligned to the song's end;
the softmax of every window is averaged (or pooled by `pooling`, with `tta_shifts` shifted
windows added: `genre_lab.audio.windows`) into the song's genre distribution (a multi-label
model's sigmoids into independent tag probabilities, whose top k are the song's tags). Windows and averaging
are the ones `genre-lab evaluate` uses (`genre_lab.audio.windows`), so a
file gets the same distribution from both. Optionally the windows are also grouped into
fixed-length segments for a timeline. Songs shorter than one window are zero-padded to one window.

Before the model runs, a song must not be silent and is measured for music content (DC only,
near-silence, mostly padding, a constant tone: `genre_lab.audio.content`): without it the result carries
a `warning`, or is an error when `min_content` is asked for. The model's probabilities must be
finite (damaged weights answer NaN): otherwise the song gets an error, never NaN genres.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genre_lab.audio.decode import DEFAULT_MAX_SECONDS, AudioDecodeError, load_audio, resample
from genre_lab.audio.content import SILENCE_DBFS, measure_content
from genre_lab.machine import cores
from genre_lab.audio.windows import check_pooling, own_pooling, pool_windows, samples, shifted_starts, window
from genre_lab.models.loading import ModelSourceError, load_model
from genre_lab.models.network import GenreNet, for_inference
from genre_lab.inference.limits import LimitError, check_sample_rate, check_segment_seconds



class TaggingError(ValueError):
    """Audio that decodes but cannot be tagged (silence, wrong shape); names the input."""

    def __init__(self, source: str, reason: str) -> None:
        self.source, self.reason = source, reason
        super().__init__(f"cannot tag {source}: {reason}")


@dataclass(frozen=True)
class GenreScore:
    label: str
    probability: float

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "probability": self.probability}


@dataclass(frozen=True)
class Segment:
    """Seconds [start, end) of a song and the genres of the windows overlapping it."""

    start: float
    end: float
    genres: list[GenreScore]

    def to_dict(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "genres": [g.to_dict() for g in self.genres]}


@dataclass
class TagResult:
    """One tagged input. `error` is None when tagged; otherwise `genres` is empty. `warning`
    says why the genres are not to be trusted (the audio carries no music, see
    `genre_lab.audio.content`), None when they are."""

    path: str | None
    genres: list[GenreScore] = field(default_factory=list)
    #: The full track distribution, class -> probability (empty on error).
    distribution: dict[str, float] = field(default_factory=dict)
    segments: list[Segment] | None = None
    duration: float | None = None
    error: str | None = None
    warning: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path, "duration": self.duration,
                               "genres": [g.to_dict() for g in self.genres]}
        if self.segments is not None:
            out["segments"] = [s.to_dict() for s in self.segments]
        out["error"] = self.error
        out["warning"] = self.warning
        return out


def inference_device(device: str | torch.device | None) -> torch.device:
    """`device`, else CUDA when there is one, else the CPU."""
    return torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))


def top_k(probs: torch.Tensor, classes: list[str], k: int) -> list[GenreScore]:
    values, idx = probs.topk(min(k, len(classes)))
    return [GenreScore(classes[int(i)], float(v)) for v, i in zip(values, idx)]


class Tagger:
    """A trained model (a GenreNet, or training's GenreClassifier, which holds one and reads
    its parts through it) wrapped for inference on songs, files and folders."""

    def __init__(
        self,
        model: GenreNet,
        hop_seconds: float | None = None,
        batch_size: int = 16,
        device: str | torch.device | None = None,
        silence_dbfs: float = SILENCE_DBFS,
        source: str | None = None,
        max_seconds: float | None = DEFAULT_MAX_SECONDS,
        pooling: str | None = None,
        tta_shifts: int = 1,
    ) -> None:
        try:
            spec = model.spec
        except ValueError as err:
            owner = f"model '{source}'" if source else "the model"
            raise ModelSourceError(f"{owner}: {err}") from err
        if hop_seconds is not None and hop_seconds <= 0:
            raise ValueError(f"hop_seconds must be positive, got {hop_seconds}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        #: How window probabilities become the song's (None: the model's own, `own_pooling`:
        #: their mean, or for a linear probe's network the softmax of the mean logits), and the
        #: shifted window grids added.
        self.pooling = own_pooling(spec) if pooling is None else check_pooling(pooling)
        if isinstance(tta_shifts, bool) or not isinstance(tta_shifts, int) or tta_shifts < 1:
            raise ValueError(f"tta_shifts must be an integer >= 1, got {tta_shifts!r}")
        self.tta_shifts = tta_shifts
        if max_seconds is not None and not max_seconds > 0:
            raise ValueError(f"max_seconds must be a positive number of seconds, got {max_seconds}")
        #: Files whose header declares more audio than this are refused before decoding.
        self.max_seconds = None if max_seconds is None else float(max_seconds)
        self.device = inference_device(device)
        #: The model prepared for inference (`genre_lab.models.network.for_inference`): on CPU a copy
        #: with batch norms folded into the convolutions, whose state dict is not a checkpoint's.
        self.model = for_inference(model, self.device)
        self.classes: list[str] = list(model.classes)
        #: Tags (independent probabilities, `task=multilabel`) rather than one genre distribution.
        self.multilabel = bool(getattr(spec, "multilabel", False))
        self.sample_rate = spec.sample_rate
        self.chunk_seconds = spec.chunk_seconds
        self.chunk = samples(self.chunk_seconds, self.sample_rate)
        # Default hop = the one the model was validated and tested with, so tagging a file
        # and evaluating it give the same numbers (older specs without it: one chunk).
        self.hop_seconds = float(hop_seconds or spec.eval_hop_seconds)
        self.hop = max(1, samples(self.hop_seconds, self.sample_rate))
        self.batch_size = int(batch_size)
        self.silence_dbfs = float(silence_dbfs)
        #: Where the weights came from (a path, run id or URI), when known.
        self.source = source
        self.run_id: str | None = None

    # -- loading ----------------------------------------------------------------------------
    @classmethod
    def load(cls, model: str | Path, tracking_uri: str | None = None, *, one_model_for: str | None = None,
             **kwargs: Any) -> Tagger:
        """The one way to get a Tagger: from anything `genre_lab.models.loading.load_model` takes
        (a model file, a pyfunc model folder, an MLflow run id, a `models:/` / `runs:/` URI or a
        `pretrained:` name), weights-only and validated. `one_model_for` names the command that
        needs a single network: an ensemble is then refused naming it (`load_model`)."""
        device = inference_device(kwargs.pop("device", None))
        loaded = load_model(model, tracking_uri, device, one_model_for=one_model_for)
        tagger = cls(loaded.network, source=loaded.source.spec, device=device, **kwargs)
        tagger.run_id = loaded.source.run_id
        return tagger

    # -- tagging ----------------------------------------------------------------------------
    def decode(self, path: str | Path) -> torch.Tensor:
        """The file as mono audio at the model's rate (raises AudioDecodeError naming it);
        longer than `max_seconds` by its header is refused before decoding."""
        return load_audio(path, self.sample_rate, max_seconds=getattr(self, "max_seconds", DEFAULT_MAX_SECONDS))

    @torch.inference_mode()
    def window_probabilities(self, wave: torch.Tensor) -> tuple[torch.Tensor, list[int]]:
        """(windows, classes) softmax of every window (a multi-label model: the sigmoid of every
        tag, each independent) and the windows' start samples."""
        # A short song: one zero-padded window.
        starts = shifted_starts(len(wave), self.chunk, self.hop, self.tta_shifts)
        scale = torch.sigmoid if self.multilabel else (lambda logits: logits.softmax(1))
        # One batch of windows at a time: all windows of a 2-hour song stacked at once took
        # 0.9 GB (twice the song, windows overlapping by half).
        probs = [scale(self.model(torch.stack([window(wave, s, self.chunk) for s in part]).to(self.device)).float()).cpu()
                 for part in (starts[i : i + self.batch_size] for i in range(0, len(starts), self.batch_size))]
        return torch.cat(probs), starts

    def tag_wave(
        self,
        wave: torch.Tensor | np.ndarray,
        sample_rate: int | None = None,
        k: int = 3,
        segment_seconds: float | None = None,
        name: str = "<waveform>",
        min_content: bool = False,
    ) -> TagResult:
        """Tag a mono (samples,) or multichannel waveform.

        A 2-D waveform may be (channels, samples), as torchaudio returns it, or
        (samples, channels), as `soundfile.read` does: the shorter axis is taken as the
        channels and averaged to mono. `sample_rate` must be a whole number of Hz from 1 kHz
        to 384 kHz, `segment_seconds` None/0 (no timeline) or at least 0.5 s. Audio that
        carries no music (`genre_lab.audio.content`) is tagged with a `warning`, or refused with
        `min_content`.
        """
        if k < 1:
            raise ValueError(f"top-k must be >= 1, got {k}")
        segment_seconds = check_segment_seconds(segment_seconds, "segment seconds")
        if sample_rate is not None:
            try:
                sample_rate = check_sample_rate(sample_rate)
            except LimitError as err:
                raise TaggingError(name, str(err)) from None
        x = torch.as_tensor(wave, dtype=torch.float32)
        if x.dim() == 2:
            x = x.mean(int(x.shape[0] > x.shape[1]))
        if x.dim() != 1 or x.numel() == 0:
            raise TaggingError(name, f"expected a non-empty 1-D or 2-D (channels and samples) waveform, got shape {tuple(x.shape)}")
        if sample_rate is not None and sample_rate != self.sample_rate:
            x = resample(x, sample_rate, self.sample_rate)
        # Measured on the song itself, before a short one is padded to one window.
        stats = measure_content(x, self.sample_rate)
        if not stats.finite:
            raise TaggingError(name, "waveform contains NaN or infinite samples")
        level = stats.rms_level_dbfs
        if level < self.silence_dbfs:
            raise TaggingError(name, f"silent audio (RMS {level:.0f} dBFS, threshold {self.silence_dbfs:.0f} dBFS)")
        warning = stats.problem()
        if warning and min_content:
            raise TaggingError(name, f"no music to classify: {warning}")
        probs, starts = self.window_probabilities(x)
        broken = int((~torch.isfinite(probs).all(1)).sum())
        if broken:
            # Damaged weights (NaN) answer every input with NaN: an error, never NaN genres.
            raise TaggingError(name, f"the model returned NaN or infinite probabilities for {broken} of "
                                     f"{len(probs)} window(s): its weights are damaged")
        duration = len(x) / self.sample_rate
        segments = self._segments(probs, starts, len(x), segment_seconds, k) if segment_seconds else None
        # The song is one clip: its window probabilities pooled as evaluation's
        # `track_probabilities` pools them per clip.
        one = torch.zeros(len(probs), dtype=torch.long)
        track = pool_windows(probs, one, 1, self.pooling, not self.multilabel)[0]
        return TagResult(
            path=None if name == "<waveform>" else name,
            genres=top_k(track, self.classes, k),
            distribution={c: float(p) for c, p in zip(self.classes, track)},
            segments=segments,
            duration=duration,
            warning=warning,
        )

    def tag(
        self,
        audio: str | Path | torch.Tensor | np.ndarray,
        sample_rate: int | None = None,
        k: int = 3,
        segment_seconds: float | None = None,
        min_content: bool = False,
    ) -> TagResult:
        """Tag a file path or a waveform (give `sample_rate` when it differs from the model's).

        Raises AudioDecodeError / TaggingError naming the input when it cannot be tagged;
        `tag_files` turns the same errors into rows instead. Audio without music content gets
        a `warning`, or a TaggingError with `min_content`.
        """
        if isinstance(audio, (str, Path)):
            return self.tag_wave(self.decode(audio), None, k, segment_seconds, name=str(audio), min_content=min_content)
        return self.tag_wave(audio, sample_rate, k, segment_seconds, min_content=min_content)

    def tag_files(
        self,
        paths: Iterable[str | Path],
        k: int = 3,
        segment_seconds: float | None = None,
        workers: int = 2,
        on_result: Callable[[TagResult], None] | None = None,
        min_content: bool = False,
        processes: int = 0,
    ) -> Iterator[TagResult]:
        """Tag files in order, one result each, never raising for a bad file (with
        `min_content`, a file without music content is an error row too).

        `workers` threads decode (and resample) the next files while the model runs on the
        current one, on CPU with the cores left over (`_threads_beside`): libsndfile, soxr and
        torch release the GIL, so they overlap. 0 decodes inline. `processes` > 1 (on a CPU
        model) instead tags whole files in that many worker processes
        (`genre_lab.inference.workers`); slower than the threads (measured in `genre_lab.bench tag`).
        """
        paths = [str(p) for p in paths]
        if processes > 1 and self.device.type == "cpu" and len(paths) > 1:
            from genre_lab.inference.workers import tag_in_processes

            yield from tag_in_processes(self, paths, k, segment_seconds, processes, min_content, on_result)
            return
        if workers <= 0:
            for path in paths:
                result = self._tag_decoded(path, self._decode_caught(path), k, segment_seconds, min_content)
                if on_result:
                    on_result(result)
                yield result
            return
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decode") as pool:
            # Bounded read-ahead: at most workers + 1 decoded songs held in memory at once.
            pending: deque[tuple[str, Future]] = deque()
            todo = iter(paths)
            for path in todo:
                pending.append((path, pool.submit(self._decode_caught, path)))
                if len(pending) > workers:
                    break
            while pending:
                path, future = pending.popleft()
                nxt = next(todo, None)
                if nxt is not None:
                    pending.append((nxt, pool.submit(self._decode_caught, nxt)))
                decoded = future.result()
                # Set per song, never across a `yield` (the caller's own torch work between
                # results keeps the thread count it had); the last song gets every core.
                with self._threads_beside(min(len(pending), workers)):
                    result = self._tag_decoded(path, decoded, k, segment_seconds, min_content)
                if on_result:
                    on_result(result)
                yield result

    # -- helpers ----------------------------------------------------------------------------
    @contextmanager
    def _threads_beside(self, decoders: int) -> Iterator[None]:
        """On CPU, the model's torch threads while `decoders` threads decode: the cores left
        over, at least one and never more than it had, restored afterwards (torch's thread
        count is the process's: two taggers tagging at once in one process may leave it
        lowered). With torch's default (one thread per core) the two pools fought over the
        cores: on 8 Debian songs on 2 cores, 2 decoding threads and 1 torch thread tagged at
        715 audio s/s against 390 with 2 torch threads."""
        before = torch.get_num_threads()
        wanted = max(1, min(before, cores() - decoders))
        if self.device.type != "cpu" or wanted == before:
            yield
            return
        torch.set_num_threads(wanted)
        try:
            yield
        finally:
            torch.set_num_threads(before)

    def _decode_caught(self, path: str) -> torch.Tensor | str:
        try:
            return self.decode(path)
        except AudioDecodeError as err:
            return err.reason
        except Exception as err:  # one odd file must never stop a folder
            return f"{type(err).__name__}: {err}"

    def _tag_decoded(
        self, path: str, decoded: torch.Tensor | str, k: int, segment_seconds: float | None, min_content: bool = False
    ) -> TagResult:
        if isinstance(decoded, str):
            return TagResult(path=path, error=decoded)
        try:
            return self.tag_wave(decoded, None, k, segment_seconds, name=path, min_content=min_content)
        except TaggingError as err:
            return TagResult(path=path, duration=len(decoded) / self.sample_rate, error=err.reason)
        except Exception as err:
            return TagResult(path=path, duration=len(decoded) / self.sample_rate, error=f"{type(err).__name__}: {err}")

    def _segments(self, probs: torch.Tensor, starts: list[int], length: int, seconds: float, k: int) -> list[Segment]:
        """Average the windows overlapping each `seconds`-long span of the song."""
        sr, span = self.sample_rate, int(round(seconds * self.sample_rate))
        begin = torch.tensor(starts)
        end = begin + self.chunk
        out = []
        for a in range(0, length, span):
            b = min(a + span, length)
            hit = (begin < b) & (end > a)
            pooled = pool_windows(probs[hit], torch.zeros(int(hit.sum()), dtype=torch.long), 1, self.pooling,
                                  not self.multilabel)[0]
            out.append(Segment(a / sr, b / sr, top_k(pooled, self.classes, k)))
        return out
