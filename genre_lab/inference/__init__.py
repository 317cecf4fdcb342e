"""Using trained models: tag songs and folders, evaluate runs, serve through MLflow pyfunc."""

from .loading import ModelSource, ModelSourceError, load_classifier, resolve
from .tagger import GenreScore, Segment, TaggingError, Tagger, TagResult

__all__ = [
    "GenreScore", "ModelSource", "ModelSourceError", "Segment", "TagResult", "Tagger",
    "TaggingError", "load_classifier", "resolve",
]
