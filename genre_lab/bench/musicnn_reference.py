"""The musicnn port against the original TensorFlow musicnn tagger, on the same songs.

`musicnn_tf`: `musicnn.tagger.top_tags(song, model="MSD_musicnn", topN=3)` per song, the way the
original package tags a library, run by a Python of a separate virtual environment that has
TensorFlow and `musicnn` (never a genre_lab dependency: `musicnn` pins numpy<1.17). The timing is
taken inside that process around the per-song calls, so its start-up and TensorFlow's import are
left out. `musicnn_port`: genre_lab's `pretrained:musicnn-msd` through the Tagger, in this
process, with the model already loaded. Both report audio seconds per wall-second and their top-3
tags; the port's ratio is against `musicnn_tf`, and `top3_agreement` is the share of songs whose
top-3 tag sets are equal.

The side environment (as used for the parity fixture):
`python -m venv tfvenv && tfvenv/bin/pip install tensorflow-cpu==2.15.1 numpy==1.26.4
librosa==0.10.2 && tfvenv/bin/pip install --no-deps musicnn==0.1.0`; give its Python with
`--tf-python` or `GENRE_LAB_TF_PYTHON`.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import soundfile as sf

from genre_lab.inference.tagger import Tagger
from genre_lab.bench.common import Result

ENV = "GENRE_LAB_TF_PYTHON"

#: Run by the side environment's Python: one JSON line with the per-song top tags and the time.
_TF_SCRIPT = """
import json, sys, time, warnings
warnings.filterwarnings("ignore")
from musicnn.tagger import top_tags
songs = sys.argv[1:]
top_tags(songs[0], model="MSD_musicnn", topN=3, print_tags=False)  # warm-up, untimed
t0 = time.perf_counter()
tags = [top_tags(s, model="MSD_musicnn", topN=3, print_tags=False) for s in songs]
print(json.dumps({"seconds": time.perf_counter() - t0, "tags": tags}))
"""


class SideEnvError(RuntimeError):
    """The TensorFlow environment is missing or failed; the message names its Python."""


def tf_python(explicit: str | None = None) -> str | None:
    """The side environment's Python: `explicit`, else `$GENRE_LAB_TF_PYTHON`, else None."""
    return explicit or os.environ.get(ENV) or None


def _tf_run(python: str, songs: Sequence[str]) -> tuple[float, list[list[str]]]:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONWARNINGS": "ignore"}
    env.pop("PYTHONPATH", None)  # the side environment must not see this project's packages
    proc = subprocess.run([python, "-c", _TF_SCRIPT, *songs], capture_output=True, text=True, env=env,
                          timeout=3600)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise SideEnvError(f"the TensorFlow musicnn tagger ({python}) failed: {proc.stderr[-2000:]}")
    out = json.loads(lines[-1])
    return float(out["seconds"]), [list(t) for t in out["tags"]]


def run(songs: Sequence[Path], python: str) -> list[Result]:
    """Both taggers on `songs`; raises `SideEnvError` when the side environment cannot run."""
    if not Path(python).is_file():
        raise SideEnvError(f"--tf-python {python}: no such file")
    paths = [str(p) for p in songs]
    total = sum(sf.info(p).duration for p in paths)
    tf_seconds, tf_tags = _tf_run(python, paths)
    tagger = Tagger.load("pretrained:musicnn-msd")
    tagger.tag(paths[0])  # warm-up, untimed, like the original's
    t0 = time.perf_counter()
    port = list(tagger.tag_files(paths, k=3))
    port_seconds = time.perf_counter() - t0
    failed = [r.path for r in port if not r.ok]
    if failed:
        raise RuntimeError(f"the musicnn port could not tag {failed}")
    port_tags = [[g.label for g in r.genres] for r in port]
    agree = sum(set(a) == set(b) for a, b in zip(port_tags, tf_tags)) / len(paths)
    extra = {"songs": len(paths), "audio_s": total, "top3_agreement": agree}
    return [Result("musicnn_tf", total / tf_seconds, "audio s/s", extra={**extra, "seconds": tf_seconds}),
            Result("musicnn_port", total / port_seconds, "audio s/s", "musicnn_tf",
                   {**extra, "seconds": port_seconds})]
