"""`python -m genre_lab.predict`: kept for the command line; the command lives in `genre_lab.cli.predict`."""

import sys

from genre_lab.cli.predict import main

if __name__ == "__main__":
    from genre_lab.cli.predict import exit_now

    exit_now(main())
