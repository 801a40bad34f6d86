"""Models behind one interface: train, predict, save and load.

Kinds: ``deepforest`` (the DF21 cascade forest, default), ``xgboost``,
``lightgbm``, ``random_forest``.  See :mod:`uflux_xr.models.fluxmodel` for the
model file format.
"""

from uflux_xr.models.cascade import CascadeForestRegressor
from uflux_xr.models.fluxmodel import FluxModel, load_model, train
from uflux_xr.models.registry import ModelKind, available_models, get_kind, register_model

__all__ = [
    "CascadeForestRegressor",
    "FluxModel",
    "ModelKind",
    "available_models",
    "get_kind",
    "load_model",
    "register_model",
    "train",
]
