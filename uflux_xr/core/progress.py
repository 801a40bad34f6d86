"""Progress of long loops as log lines: done/total, elapsed and the time left, at most every few seconds.

The upscale shows dask's bar; validation folds and ensemble members are
loops of Python calls, so they log instead (a log line is also what a batch
job's output keeps).  Thread-safe: folds fitted in parallel threads call
:meth:`ProgressLog.step` from each.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator

#: Seconds between two progress lines (the last step always logs).
EVERY_S = 10.0


class ProgressLog:
    """Log ``<what>: <done>/<total> <unit>, <elapsed> s, about <left> s left`` as steps complete.

    Parameters
    ----------
    total : int
        Steps in all.
    what : str
        What is being done, e.g. ``"loso lightgbm GPP"``.
    logger : logging.Logger
        Where the lines go (INFO).
    unit : str
        Name of a step, e.g. ``"folds"``.
    every_s : float
        Seconds between two lines [s].
    """

    def __init__(self, total: int, what: str, logger: logging.Logger, unit: str = "steps", every_s: float = EVERY_S):
        self.total, self.what, self.log, self.unit, self.every_s = total, what, logger, unit, every_s
        self.done = 0
        self.start = self.last = time.perf_counter()
        self._lock = threading.Lock()

    def step(self, n: int = 1) -> None:
        """Count ``n`` finished steps; log when ``every_s`` has passed since the last line, or at the end."""
        with self._lock:
            self.done += n
            now = time.perf_counter()
            if now - self.last < self.every_s and self.done < self.total:
                return
            self.last = now
            elapsed = now - self.start
            left = elapsed / self.done * (self.total - self.done) if self.done else float("nan")
            tail = f", about {left:.0f} s left" if self.done < self.total else ""
            self.log.info("%s: %d/%d %s, %.0f s%s", self.what, self.done, self.total, self.unit, elapsed, tail)


@contextlib.contextmanager
def shown(enabled: bool = True) -> Iterator[None]:
    """Show uflux-xr's progress lines (INFO) on stderr for the duration, where nobody set up logging.

    A Python user of :func:`uflux_xr.run` sees what the command line shows without touching
    :mod:`logging`; where the application configured logging (a handler on the root or the
    ``uflux_xr`` logger, as the command line and pytest do), nothing is added.
    """
    package = logging.getLogger("uflux_xr")
    if not enabled or package.handlers or logging.getLogger().handlers:
        yield
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", datefmt="%H:%M:%S"))
    level = package.level
    package.addHandler(handler)
    package.setLevel(logging.INFO)
    try:
        yield
    finally:
        package.removeHandler(handler)
        package.setLevel(level)
