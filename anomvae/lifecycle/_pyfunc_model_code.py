"""Model code MLflow runs when it loads an anomvae model ("models from code").

Not imported by anomvae itself: :func:`anomvae.lifecycle.pyfunc.log_model` copies this
file into every logged model, so loading a model builds the Python object
from code instead of unpickling it.
"""

import mlflow

from anomvae.lifecycle.pyfunc import AnomalyDetectorModel

mlflow.models.set_model(AnomalyDetectorModel())
