"""genre_lab: music genre classification from raw audio."""

__version__ = "0.1.0"

__all__ = ["Tagger", "__version__"]


def __getattr__(name: str):
    # Lazy: `import genre_lab` stays light; torch and MLflow load on first use of the Tagger.
    if name == "Tagger":
        from genre_lab.inference.tagger import Tagger

        return Tagger
    raise AttributeError(f"module 'genre_lab' has no attribute '{name}'")
