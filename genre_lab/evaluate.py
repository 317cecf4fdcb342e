"""`python -m genre_lab.evaluate`: kept for the command line; the command lives in `genre_lab.cli.evaluate`."""

from genre_lab.cli.evaluate import main

if __name__ == "__main__":
    raise SystemExit(main())
