"""`python -m genre_lab.evaluate`: kept for the command line; the command lives in `genre_lab.cli.evaluate`."""

import sys

from genre_lab.cli.evaluate import main
from genre_lab.cli.verbosity import take_verbose_flag

if __name__ == "__main__":
    sys.argv[1:] = take_verbose_flag(sys.argv[1:])
    main()
