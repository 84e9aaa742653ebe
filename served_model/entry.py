"""The model-from-code file logged with every version: MLflow runs it to build the served model.

It only imports the reviewed class from this repository (served_model/model.py); nothing
executable is pickled into the artifact store.
"""

from mlflow.models import set_model

from served_model.model import FlightDelayModel

set_model(FlightDelayModel())
