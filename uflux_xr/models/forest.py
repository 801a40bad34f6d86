"""Random forest kind (scikit-learn), stored as plain tree arrays.

scikit-learn only offers pickle for persistence, and loading a pickle runs
whatever code the file names.  We store each tree's node table (children,
split feature, threshold, leaf values) as numpy arrays in an ``.npz`` read
with ``allow_pickle=False``, and rebuild the estimator from them.  The same
helpers serve any estimator made of scikit-learn regression trees.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from sklearn.ensemble import RandomForestRegressor
from sklearn.tree._tree import Tree

from uflux_xr.models.dedup import sklearn_trees_coder
from uflux_xr.models.registry import ModelKind, register_model

RANDOM_FOREST_DEFAULTS = {
    "n_estimators": 200,
    "min_samples_leaf": 3,
    "max_features": 0.6,
    "n_jobs": -1,
}

# Node fields every supported scikit-learn version has; others are filled with zeros.
_REQUIRED_FIELDS = ("left_child", "right_child", "feature", "threshold")


def trees_to_npz(trees: list[Tree]) -> bytes:
    """Serialise scikit-learn ``Tree`` objects (single-output regression) to npz bytes."""
    states = [t.__getstate__() for t in trees]
    nodes = np.concatenate([s["nodes"] for s in states])
    # Any: numpy's stubs type savez's keyword arrays like its allow_pickle flag
    arrays: dict[str, Any] = {f"node_{name}": np.ascontiguousarray(nodes[name]) for name in nodes.dtype.names or ()}
    arrays["values"] = np.concatenate([s["values"][:, 0, 0] for s in states]).astype(np.float64)
    arrays["node_counts"] = np.array([s["node_count"] for s in states], dtype=np.int64)
    arrays["max_depths"] = np.array([s["max_depth"] for s in states], dtype=np.int64)
    arrays["n_features"] = np.array([trees[0].n_features], dtype=np.int64)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def trees_from_npz(blob: bytes) -> list[Tree]:
    """Rebuild scikit-learn ``Tree`` objects from :func:`trees_to_npz` bytes (no pickle)."""
    with np.load(io.BytesIO(blob), allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    n_features = int(arrays["n_features"][0])
    template = Tree(n_features, np.array([1], dtype=np.intp), 1)
    node_dtype = template.__getstate__()["nodes"].dtype
    missing = [f for f in _REQUIRED_FIELDS if f"node_{f}" not in arrays]
    if missing:
        raise ValueError(f"forest archive lacks node fields {missing}")
    bounds = np.concatenate([[0], np.cumsum(arrays["node_counts"])])
    trees = []
    for i, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
        nodes = np.zeros(hi - lo, dtype=node_dtype)
        for name in node_dtype.names:
            if f"node_{name}" in arrays:
                nodes[name] = arrays[f"node_{name}"][lo:hi]
        tree = Tree(n_features, np.array([1], dtype=np.intp), 1)
        tree.__setstate__(
            {
                "max_depth": int(arrays["max_depths"][i]),
                "node_count": int(hi - lo),
                "nodes": nodes,
                "values": arrays["values"][lo:hi].reshape(-1, 1, 1).copy(),
            }
        )
        trees.append(tree)
    return trees


def _tree_predict(tree: Tree, X: np.ndarray) -> np.ndarray:
    return tree.predict(X).reshape(X.shape[0], -1)[:, 0]


class ForestRuntime:
    """Averages a list of regression trees; thread-safe (trees are read-only)."""

    def __init__(self, trees: list[Tree]):
        self.trees = trees

    def predict(self, X, n_threads=None):
        X = np.ascontiguousarray(X, dtype=np.float32)
        if n_threads == 1 or len(self.trees) < 8:
            total = np.zeros(X.shape[0])
            for tree in self.trees:
                total += _tree_predict(tree, X)
            return total / len(self.trees)
        from joblib import Parallel, delayed

        parts = Parallel(n_jobs=n_threads or -1, prefer="threads")(delayed(_tree_predict)(t, X) for t in self.trees)
        return np.mean(parts, axis=0)


def _freeze(est) -> ForestRuntime:
    trees = [t.tree_ for t in est.estimators_] if hasattr(est, "estimators_") else [est.tree_]
    return ForestRuntime(trees)


register_model(
    ModelKind(
        name="random_forest",
        build=lambda random_state=0, **params: RandomForestRegressor(random_state=random_state, **params),
        freeze=_freeze,
        dump=lambda rt: {"forest.npz": trees_to_npz(rt.trees)},
        load=lambda files: ForestRuntime(trees_from_npz(files["forest.npz"])),
        predict=lambda rt, X, n_threads=None: rt.predict(X, n_threads),
        defaults=RANDOM_FOREST_DEFAULTS,
        coder=lambda rt, n_features: sklearn_trees_coder(rt.trees, n_features),
        parameters=lambda: RandomForestRegressor().get_params().keys(),
    )
)

__all__ = ["ForestRuntime", "trees_to_npz", "trees_from_npz"]
