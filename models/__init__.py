"""Model manifests (data) and their resolution to local weights, offline."""

from models.manifest import ModelManifest, ModelRegistry, ModelSource
from models.resolve import ModelNotFound, WeightsMissing, model_location, resolve_weights

__all__ = [
    "ModelManifest",
    "ModelNotFound",
    "ModelRegistry",
    "ModelSource",
    "WeightsMissing",
    "model_location",
    "resolve_weights",
]
