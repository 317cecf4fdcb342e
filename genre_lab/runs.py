"""`python -m genre_lab.runs`: kept for the command line; the command lives in `genre_lab.cli.runs`."""

import sys

from genre_lab.cli.runs import main

if __name__ == "__main__":
    sys.exit(main())
