"""`python -m genre_lab.sweep`: kept for the command line (the Makefile, scripts users wrote);
the command lives in `genre_lab.cli.sweep`."""

from genre_lab.cli.sweep import main

if __name__ == "__main__":
    main()
