"""`python -m genre_lab.explain`: kept for the command line; the command lives in `genre_lab.cli.explain`."""

import sys

from genre_lab.cli.explain import main

if __name__ == "__main__":
    sys.exit(main())
