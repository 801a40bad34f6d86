"""Atomic small-file writes: a temporary file in the target's folder, renamed over it.

A reader sees the old file or the new one, never half of one; a failed write
leaves no temporary behind.  Files get the mode a plain ``open`` would give
(``mkstemp`` makes them 0600).  At a URL (object storage) the file is made in
memory and put in one request, which object stores make visible whole or not
at all.
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO


def _file_mode() -> int:
    """Mode of a new file under this process's umask (read once, at import: os.umask is process-wide)."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


FILE_MODE = _file_mode()


def write_atomic(path: str | os.PathLike, fill: Callable[[IO[bytes]], None]) -> Path:
    """Write ``path`` (a local path or a URL) through ``fill(binary_file)`` atomically; returns the path
    (a URL as a :class:`pathlib.PurePosixPath`-free string is returned unchanged)."""
    from uflux_xr.io.storage import filesystem, is_url

    if is_url(path):
        buffer = io.BytesIO()
        fill(buffer)
        fs, inside = filesystem(path)
        fs.pipe_file(inside, buffer.getvalue())
        return path  # type: ignore[return-value]  # a URL stays the caller's string
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            fill(f)
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns the path."""
    data = text.encode("utf-8")

    def fill(f: IO[bytes]) -> None:
        f.write(data)

    return write_atomic(path, fill)
