"""`python -m genre_lab COMMAND [args]`: the same as the `genre-lab` command."""

import sys

from genre_lab.cli import main

sys.exit(main())
