"""`python -m genre_lab.pretrained`: kept for the command line; the command lives in `genre_lab.cli.pretrained`."""

import sys

from genre_lab.cli.pretrained import main

if __name__ == "__main__":
    sys.exit(main())
