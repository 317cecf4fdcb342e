"""Using trained models: tag songs and folders, evaluate runs, serve through MLflow pyfunc."""

from genre_lab.models.loading import LoadedModel, ModelSource, ModelSourceError, load_model, resolve
from genre_lab.inference.tagger import GenreScore, Segment, TaggingError, Tagger, TagResult

__all__ = [
    "GenreScore", "LoadedModel", "ModelSource", "ModelSourceError", "Segment", "TagResult", "Tagger",
    "TaggingError", "load_model", "resolve",
]
