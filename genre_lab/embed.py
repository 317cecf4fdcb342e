"""`python -m genre_lab.embed`: kept for the command line; the command lives in `genre_lab.cli.embed`."""

import sys

from genre_lab.cli.embed import main

if __name__ == "__main__":
    sys.exit(main())
