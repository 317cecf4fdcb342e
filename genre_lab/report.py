"""`python -m genre_lab.report`: kept for the command line; the command lives in `genre_lab.cli.report`."""

import sys

from genre_lab.cli.report import main

if __name__ == "__main__":
    sys.exit(main())
