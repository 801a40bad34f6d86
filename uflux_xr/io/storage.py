"""Where data live: local paths and fsspec URLs (``s3://bucket/key``, ``gs://``, ``az://``, ``memory://``).

A path with a protocol other than ``file://`` is a URL and is reached through
`fsspec <https://filesystem-spec.readthedocs.io>`_; its backend package must be
installed (``s3fs`` for ``s3://``: ``pip install "uflux-xr[cloud]"``).
Credentials and the endpoint come from fsspec's usual places: the
``storage_options`` a caller passes (a configuration's ``storage_options``,
e.g. ``{"endpoint_url": "http://127.0.0.1:9000"}``) and the environment
variables the backend reads (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
``AWS_ENDPOINT_URL``, ``GOOGLE_APPLICATION_CREDENTIALS``...).  They are never
written into products or logs: :func:`redact` is what a log line or an
attribute shows of a URL.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

#: Protocols that mean "this machine's disk".
LOCAL_PROTOCOLS = ("", "file", "local")


class StorageError(OSError):
    """A URL cannot be reached: no backend installed for its protocol, or a bad address."""


def protocol(path: str | os.PathLike) -> str:
    """The protocol of ``path`` (``"s3"`` for ``s3://bucket/key``), ``""`` for a plain local path."""
    text = os.fspath(path)
    return text.split("://", 1)[0].lower() if "://" in text else ""


def is_url(path: str | os.PathLike) -> bool:
    """True when ``path`` names a place fsspec reaches other than the local disk."""
    return protocol(path) not in LOCAL_PROTOCOLS


def local_path(path: str | os.PathLike) -> str:
    """The local path of ``path`` (a ``file://`` URL loses its protocol)."""
    text = os.fspath(path)
    return text.split("://", 1)[1] if protocol(text) in ("file", "local") else text


def join(base: str | os.PathLike, *parts: str) -> str:
    """``base`` and ``parts`` joined by ``/`` (for URLs and local paths alike)."""
    text = os.fspath(base).rstrip("/")
    return "/".join([text, *(p.strip("/") for p in parts)])


def redact(path: str | os.PathLike) -> str:
    """``path`` as a log line or an attribute may show it: without user, password or query string."""
    text = os.fspath(path)
    if not is_url(text):
        return text
    parts = urlsplit(text)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def filesystem(path: str | os.PathLike, storage_options: Mapping[str, Any] | None = None):
    """The fsspec file system of ``path`` and the path inside it.

    Parameters
    ----------
    path : str or path-like
        Local path or URL.
    storage_options : mapping, optional
        Keyword arguments of the backend (``endpoint_url``, ``anon``, ``key``...).

    Returns
    -------
    (fsspec.AbstractFileSystem, str)

    Raises
    ------
    StorageError
        No backend for the protocol is installed.
    """
    import fsspec

    text = os.fspath(path)
    if not is_url(text):
        return fsspec.filesystem("file"), os.path.abspath(local_path(text))
    try:
        return fsspec.core.url_to_fs(text, **dict(storage_options or {}))
    except ImportError as err:
        raise StorageError(
            f"{redact(text)}: reading and writing {protocol(text)}:// needs its fsspec backend ({err}); "
            f'install it, e.g. pip install "uflux-xr[cloud]" for s3://'
        ) from None
    except ValueError as err:
        raise StorageError(f"{redact(text)}: not a URL fsspec knows ({err})") from None


def zarr_store(path: str | os.PathLike, storage_options: Mapping[str, Any] | None = None, *, read_only: bool = False):
    """A Zarr store for ``path``: the local path itself, or a :class:`zarr.storage.FsspecStore` for a URL."""
    if not is_url(path):
        return local_path(path)
    from zarr.storage import FsspecStore

    filesystem(path, storage_options)  # a clear error where the backend is missing
    store = FsspecStore.from_url(os.fspath(path), storage_options=dict(storage_options or {}), read_only=read_only)
    # fsspec shares one file system instance per set of options, with its listings cached: a key another
    # instance (or process) wrote since would look absent
    store.fs.invalidate_cache()
    return store


def local_copy(path: str | os.PathLike, storage_options: Mapping[str, Any] | None = None) -> str:
    """A local file with the contents of ``path``: the path itself, or for a URL a copy in fsspec's
    ``simplecache`` (for readers that need a real file, such as NetCDF-4 and GeoTIFF)."""
    if not is_url(path):
        return local_path(path)
    import fsspec

    text = os.fspath(path)
    filesystem(text, storage_options)  # a clear error where the backend is missing
    try:
        return fsspec.open_local(f"simplecache::{text}", **{protocol(text): dict(storage_options or {})})
    except FileNotFoundError:
        raise FileNotFoundError(f"{redact(text)}: not found") from None
