"""Model code for MLflow's models-from-code logging: `mlflow.pyfunc.save_model` copies this file
into the model directory and runs it at load time, so the logged model holds no pickled object."""

import mlflow.models

from genre_lab.serving.pyfunc import GenreTaggerModel

mlflow.models.set_model(GenreTaggerModel())
