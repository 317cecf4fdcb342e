"""`python -m genre_lab.ensemble`: kept for the command line; the command lives in `genre_lab.cli.ensemble`."""

import sys

from genre_lab.cli.ensemble import main

if __name__ == "__main__":
    sys.exit(main())
