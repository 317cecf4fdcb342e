"""Fitting a model: the LightningModule, metrics, freezing, transfer, evaluation, resume.

The package itself imports nothing: `genre_lab.training.fit` brings Lightning and MLflow."""
