"""Old home of the served model class: logged models written before `genre_lab.serving` import
`GenreTaggerModel` from here (their `pyfunc_model.py`)."""

from genre_lab.serving.pyfunc import GenreTaggerModel

__all__ = ["GenreTaggerModel"]
