"""Serving a model through MLflow: export of a logged model, the pyfunc wrapper and request limits."""
