"""The code MLflow stores with every xfer model and runs when it loads one ("models from code").

Never imported by xferlib: `registry.runs` hands this file's path to MLflow, which saves it as text
in the model directory and executes it at `mlflow.pyfunc.load_model` (see `registry.pyfunc_model`).
"""

from mlflow.models import set_model

from xferlib.registry.pyfunc_model import XferPyfuncModel

set_model(XferPyfuncModel())
