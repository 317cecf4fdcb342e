"""The work behind `genre-lab predict`: expand paths, tag every file with a progress bar, write
the report, and turn the outcome into an exit status. Also the start that the song commands
share (`model_and_songs`: predict's model loading and path expansion for embed and explain).

Exit status: 0 when every file was tagged, 1 when some could not be (each has a row with its
error), 2 for usage errors (unloadable model, output file exists, nothing to tag). A file that
carries no music (`genre_lab.audio.content`) is tagged with a warning, or is a failed file with
`--min-content`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from genre_lab.audio.decode import AUDIO_EXTENSIONS, DEFAULT_MAX_SECONDS
from genre_lab.audio.windows import POOLINGS
from genre_lab.data.files import find_audio_entries
from genre_lab.inference.limits import MIN_SEGMENT_SECONDS
from genre_lab.models.loading import ModelSourceError
from genre_lab.inference.tag_output import FORMATS, write_report
from genre_lab.inference.tagger import Tagger, TagResult

EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(ValueError):
    """A problem with the command line itself, reported before any file is tagged."""


@dataclass
class PredictOptions:
    model: str
    paths: Sequence[str]
    top_k: int = 3
    segments: float | None = None
    hop: float | None = None
    format: str = "table"
    output: Path | None = None
    overwrite: bool = False
    workers: int = 2
    #: Worker processes tagging whole files (None/0/1: this process, with `workers` decoding
    #: threads). See `genre_lab.inference.workers`.
    processes: int | None = None
    batch_size: int = 16
    device: str | None = None
    tracking_uri: str | None = None
    progress: bool = True
    min_content: bool = False
    #: Files whose header declares more audio than this many seconds get an error row, before
    #: anything is decoded (`--max-seconds`; see `genre_lab.audio.decode.DEFAULT_MAX_SECONDS`).
    max_seconds: float = DEFAULT_MAX_SECONDS
    #: How window probabilities become a song's (`genre_lab.audio.windows.POOLINGS`).
    pooling: str | None = None  # None: the model's own (mean; a linear probe's: mean logits)
    #: Test-time augmentation: the window grid also shifted by hop/N, 2 hop/N, ... (1: none).
    tta_shifts: int = 1


def collect_audio_files(paths: Sequence[str | Path]) -> list[Path]:
    """Files as given (whatever their ending, so a named file always gets a row) and, for
    folders, every entry below them named like audio (sorted; hidden files and macOS `._x`
    resource forks skipped), whatever it is: a dangling link, a named pipe or a subfolder that
    cannot be listed gets its error row like a missing path, never dropped silently."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += find_audio_entries(p)
        else:
            out.append(p)
    return out


def model_and_songs(model: str | Path, paths: Sequence[str | Path], tracking_uri: str | None = None,
                    hop: float | None = None, *, one_model_for: str | None = None) -> tuple[Tagger, list[Path]]:
    """The model as a Tagger on the CPU (its windows, `hop` seconds apart when given, else its
    evaluation hop) and the audio files `paths` name (`collect_audio_files`): how embed and
    explain start. Raises ModelSourceError or UsageError (both ValueError) naming the model or
    `--hop`; `one_model_for` refuses an ensemble for a command that needs one network."""
    if hop is not None and not hop > 0:
        raise UsageError(f"--hop must be a positive number of seconds, got {hop}")
    tagger = Tagger.load(model, tracking_uri=tracking_uri, hop_seconds=hop, device="cpu", one_model_for=one_model_for)
    return tagger, collect_audio_files(paths)


def check_options(opts: PredictOptions) -> None:
    if opts.format not in FORMATS:
        raise UsageError(f"--format must be one of {', '.join(FORMATS)}, got '{opts.format}'")
    if opts.top_k < 1:
        raise UsageError(f"--top-k must be >= 1, got {opts.top_k}")
    if opts.batch_size < 1:
        raise UsageError(f"--batch-size must be >= 1, got {opts.batch_size}")
    if opts.hop is not None and opts.hop <= 0:
        raise UsageError(f"--hop must be a positive number of seconds, got {opts.hop}")
    # `not >=` also refuses NaN.
    if opts.segments is not None and not opts.segments >= MIN_SEGMENT_SECONDS:
        raise UsageError(f"--segments must be at least {MIN_SEGMENT_SECONDS} s, got {opts.segments}")
    if opts.pooling is not None and opts.pooling not in POOLINGS:
        raise UsageError(f"--pooling must be one of {', '.join(POOLINGS)}, got '{opts.pooling}'")
    if opts.tta_shifts < 1:
        raise UsageError(f"--tta-shifts must be an integer >= 1, got {opts.tta_shifts}")
    if not opts.max_seconds > 0:
        raise UsageError(f"--max-seconds must be a positive number of seconds, got {opts.max_seconds}")
    if opts.output is not None and opts.output.is_dir():
        raise UsageError(f"--output {opts.output} is a folder; give the path of the report file to write")
    if opts.output is not None and opts.output.exists() and not opts.overwrite:
        raise UsageError(f"output file {opts.output} exists; pass --overwrite to replace it")


def tag_with_progress(tagger: Tagger, files: Sequence[Path], opts: PredictOptions) -> list[TagResult]:
    stderr = Console(stderr=True)
    show = opts.progress and len(files) > 1
    with Progress(
        TextColumn("[bold]tagging"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TimeRemainingColumn(), TextColumn("{task.description}"), console=stderr, disable=not show,
    ) as progress:
        task = progress.add_task("", total=len(files))

        def advance(result: TagResult) -> None:
            mark = "" if result.ok else " [red](failed)"
            progress.update(task, advance=1, description=f"{Path(result.path or '').name}{mark}")

        return list(tagger.tag_files(files, opts.top_k, opts.segments, opts.workers, on_result=advance,
                                     min_content=opts.min_content, processes=processes_for(opts)))


def processes_for(opts: PredictOptions) -> int:
    """Worker processes for this run: `--processes` when given, else none (0). Not the default:
    on the 57 Debian songs (3.2 h) on an idle 2-core machine the whole command ran at 724 audio
    s/s with decoding threads against 617 with 2 worker processes, same JSON (`genre_lab.bench
    tag`, contenders predict_command*): each spawned worker imports torch and rebuilds the model."""
    return max(0, opts.processes) if opts.processes is not None else 0


def run_predict(opts: PredictOptions) -> int:
    """Tag `opts.paths` and write the report; returns the process exit status."""
    stderr = Console(stderr=True)
    try:
        check_options(opts)
        files = collect_audio_files(opts.paths)
        if not files:
            raise UsageError(f"no audio files ({', '.join(AUDIO_EXTENSIONS)}) under {', '.join(map(str, opts.paths))}")
        tagger = Tagger.load(opts.model, tracking_uri=opts.tracking_uri, hop_seconds=opts.hop,
                             batch_size=opts.batch_size, device=opts.device, max_seconds=opts.max_seconds,
                             pooling=opts.pooling, tta_shifts=opts.tta_shifts)
    except (UsageError, ModelSourceError) as err:
        # Paths and store text in the message are data: escaped, never read as rich markup.
        stderr.print(f"[red]error:[/red] {escape(' '.join(str(err).split()))}", highlight=False, soft_wrap=True)
        return EXIT_USAGE
    results = tag_with_progress(tagger, files, opts)
    write_report(results, opts.format, opts.top_k, opts.output, opts.overwrite)
    warned = sum(r.warning is not None for r in results)
    if warned:
        stderr.print(f"{warned} of {len(results)} file(s) carry no music to classify: their genres have a warning",
                     highlight=False)
    failed = [r for r in results if not r.ok]
    if failed:
        stderr.print(f"{len(failed)} of {len(results)} file(s) could not be tagged", highlight=False)
        return EXIT_SOME_FAILED
    return EXIT_OK
