"""`python -m genre_lab.train`: kept for the command line; the command lives in `genre_lab.cli.train`."""

from genre_lab.cli.train import main

if __name__ == "__main__":
    raise SystemExit(main())
