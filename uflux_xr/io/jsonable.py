"""JSON-safe copies of metadata: numpy scalars to Python, tuples to lists, NaN to null."""

from __future__ import annotations

import numpy as np


def to_jsonable(value):
    """``value`` with numpy scalars, tuples and non-finite floats made JSON-safe (NaN and inf become None)."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value
