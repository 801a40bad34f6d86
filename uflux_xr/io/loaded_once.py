"""Files loaded once per process: model files and DI references that every dask task of a worker shares."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class LoadedOnce(Generic[T]):
    """``loader(path)`` called once per path and process; later calls return the same object.

    The lock makes concurrent dask threads wait for the first load instead of
    each reading the file (and building its caches) at the same time.
    """

    def __init__(self, loader: Callable[[str], T]) -> None:
        self._loader = loader
        self._loaded: dict[str, T] = {}
        self._lock = threading.Lock()

    def __call__(self, path: str) -> T:
        with self._lock:
            if path not in self._loaded:
                self._loaded[path] = self._loader(path)
            return self._loaded[path]
