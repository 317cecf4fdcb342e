"""`genre-lab bench [features|train|tag|gpu|quant|frozen|pooling|probe|zoo|scale ...] [--quick]`: run benchmarks, print
tables, log each suite as a run in the MLflow experiment `benchmarks`."""

from __future__ import annotations

import argparse

from genre_lab.bench.suites import DEFAULT_SUITES, SUITES, run_suite


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m genre_lab.bench", description=__doc__)
    parser.add_argument("suites", nargs="*", metavar="SUITE", help=f"any of {', '.join(SUITES)} (default: {' '.join(DEFAULT_SUITES)})")
    parser.add_argument("--quick", action="store_true", help="tiny inputs, one repeat (for tests)")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats per contender")
    parser.add_argument("--songs", default=None, help="folder of songs for `tag` (default: installed Debian music)")
    parser.add_argument("--max-songs", type=int, default=None, help="use at most this many songs in `tag`")
    parser.add_argument("--serve-requests", type=int, default=None,
                        help="requests per client (4 clients) in the `tag` serving load test")
    parser.add_argument("--tf-python", default=None,
                        help="Python of a side venv with TensorFlow + musicnn: `tag` adds the original musicnn tagger "
                             "against the port (default: $GENRE_LAB_TF_PYTHON)")
    parser.add_argument("--sizes", default=None, help="file counts for `scale`, e.g. 1000,10000 (default 1000,10000,100000)")
    parser.add_argument("--musicnn-songs", type=int, default=4, help="songs the two musicnn taggers tag (default 4)")
    args = parser.parse_args(argv)
    unknown = [s for s in args.suites if s not in SUITES]
    if unknown:
        parser.error(f"unknown suite(s) {unknown}; choose from {list(SUITES)}")
    for suite in args.suites or list(DEFAULT_SUITES):
        run_suite(suite, quick=args.quick, repeats=args.repeats, songs=args.songs, max_songs=args.max_songs,
                  serve_requests=args.serve_requests, tf_python=args.tf_python, musicnn_songs=args.musicnn_songs,
                  sizes=args.sizes)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
