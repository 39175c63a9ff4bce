"""Backbone registry, Classifier and model I/O.

Importing this package registers the builders (cheap: torchvision and timm are imported only
when a backbone is built).
"""

from xferlib.models import lite0, tiny, tv  # noqa: F401  (registers the builders)
from xferlib.models.backbones import (
    Backbone,
    create_backbone,
    list_backbones,
    register_backbone,
)
from xferlib.models.classifier import Classifier
from xferlib.models.io import ModelIntegrityError, load_model, read_meta, save_model
from xferlib.models.weights import WeightsNotFoundError

__all__ = [
    "Backbone",
    "Classifier",
    "ModelIntegrityError",
    "WeightsNotFoundError",
    "create_backbone",
    "list_backbones",
    "load_model",
    "read_meta",
    "register_backbone",
    "save_model",
]
