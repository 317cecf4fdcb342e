"""genre_lab: music genre classification from raw audio."""

__version__ = "0.1.0"
