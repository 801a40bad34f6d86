"""Where data live: local paths and fsspec URLs (``s3://bucket/key``, ``gs://``, ``az://``, ``memory://``).

A path with a protocol other than ``file://`` is a URL and is reached through
`fsspec <https://filesystem-spec.readthedocs.io>`_; its backend package must be
installed (``s3fs`` for ``s3://``: ``pip install "uflux-xr[cloud]"``).
Credentials and the endpoint come from fsspec's usual places: the
``storage_options`` a caller passes (``{"endpoint_url": "http://127.0.0.1:9000"}``),
fsspec's defaults per protocol (a run configuration's ``storage_options``,
applied by :func:`fsspec_defaults` here and on dask workers; fsspec's own
configuration files and ``FSSPEC_<PROTOCOL>_<OPTION>`` variables) and the
environment variables the backend reads (``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_ENDPOINT_URL``,
``GOOGLE_APPLICATION_CREDENTIALS``...).  They are never written into products
or logs: :func:`redact` is what a log line or an attribute shows of a URL.

On object storage nothing is renamed, so a Zarr store is written in place with
its root metadata held back (:class:`HeldRootStore`): it opens only when it is
complete.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import shutil
import tempfile
from collections.abc import AsyncGenerator, Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from zarr.abc.store import ByteRequest
from zarr.core.buffer import Buffer, BufferPrototype
from zarr.storage import WrapperStore

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
    """A local file with the contents of ``path``: the path itself, or for a URL a fresh download into a
    temporary folder removed when the process ends (for readers that need a real file: NetCDF-4, GeoTIFF).

    Downloaded on every call: a cache keyed by the URL would serve an object that was replaced since.
    """
    if not is_url(path):
        return local_path(path)
    fs, inside = filesystem(path, storage_options)
    name = inside.rstrip("/").rsplit("/", 1)[-1]
    target = os.path.join(tempfile.mkdtemp(prefix="uflux-xr-", dir=_download_root()), name)
    try:
        fs.get_file(inside, target)
    except FileNotFoundError:
        raise FileNotFoundError(f"{redact(path)}: not found") from None
    return target


_DOWNLOADS: list[str] = []


def _download_root() -> str:
    if not _DOWNLOADS:
        _DOWNLOADS.append(tempfile.mkdtemp(prefix="uflux-xr-downloads-"))
        atexit.register(shutil.rmtree, _DOWNLOADS[0], True)
    return _DOWNLOADS[0]


def read_bytes(path: str | os.PathLike, storage_options: Mapping[str, Any] | None = None) -> bytes:
    """The contents of a local file or of the object at a URL."""
    fs, inside = filesystem(path, storage_options)
    try:
        return fs.cat_file(inside)
    except FileNotFoundError:
        raise FileNotFoundError(f"{redact(path)}: not found") from None


def exists(path: str | os.PathLike, storage_options: Mapping[str, Any] | None = None) -> bool:
    """Whether a file, folder, object or prefix is at ``path`` (listings re-read, not cached)."""
    fs, inside = filesystem(path, storage_options)
    fs.invalidate_cache()
    return bool(fs.exists(inside))


def remove(path: str | os.PathLike, storage_options: Mapping[str, Any] | None = None) -> None:
    """Remove a file, folder, object or prefix (recursively) where it exists."""
    fs, inside = filesystem(path, storage_options)
    fs.invalidate_cache()
    if fs.exists(inside):
        fs.rm(inside, recursive=True)


def upload_folder(folder: str | os.PathLike, url: str, storage_options: Mapping[str, Any] | None = None) -> None:
    """Copy every file under the local ``folder`` to the same relative keys under ``url``."""
    fs, inside = filesystem(url, storage_options)
    base = Path(folder)
    for file in sorted(p for p in base.rglob("*") if p.is_file()):
        fs.put_file(str(file), f"{inside.rstrip('/')}/{file.relative_to(base).as_posix()}")


#: The key of a Zarr v3 store's root metadata: without it, nothing opens at the store's address.
ROOT_METADATA = "zarr.json"


class HeldRootStore(WrapperStore):
    """A Zarr store whose root metadata lives in another store until the write is finished.

    Every key but the root's ``zarr.json`` goes to the destination; the root's
    goes to ``side``.  So the destination holds the arrays and their chunks but
    no group, and does not open, until :func:`publish_held_root` copies the root
    metadata there.
    """

    def __init__(self, store, side) -> None:
        super().__init__(store)
        self._side = side

    def _with_store(self, store):
        return type(self)(store, self._side)

    def with_read_only(self, read_only: bool = False):
        return type(self)(self._store.with_read_only(read_only), self._side.with_read_only(read_only))

    def _for(self, key: str):
        return self._side if key == ROOT_METADATA else self._store

    async def _ensure_open(self) -> None:
        await self._store._ensure_open()
        await self._side._ensure_open()

    async def get(self, key: str, prototype: BufferPrototype, byte_range: ByteRequest | None = None) -> Buffer | None:
        return await self._for(key).get(key, prototype, byte_range)

    async def get_partial_values(
        self, prototype: BufferPrototype, key_ranges: Iterable[tuple[str, ByteRequest | None]]
    ) -> list[Buffer | None]:
        return list(await asyncio.gather(*(self.get(key, prototype, byte_range) for key, byte_range in key_ranges)))

    async def _get_many(
        self, requests: Iterable[tuple[str, BufferPrototype, ByteRequest | None]]
    ) -> AsyncGenerator[tuple[str, Buffer | None], None]:
        asked = list(requests)
        values = await asyncio.gather(*(self.get(key, prototype, byte_range) for key, prototype, byte_range in asked))
        for (key, _, _), value in zip(asked, values, strict=True):
            yield key, value

    async def exists(self, key: str) -> bool:
        return await self._for(key).exists(key)

    async def set(self, key: str, value: Buffer) -> None:
        await self._for(key).set(key, value)

    async def set_if_not_exists(self, key: str, value: Buffer) -> None:
        await self._for(key).set_if_not_exists(key, value)

    async def _set_many(self, values: Iterable[tuple[str, Buffer]]) -> None:
        await asyncio.gather(*(self.set(key, value) for key, value in values))

    async def delete(self, key: str) -> None:
        await self._for(key).delete(key)

    async def delete_dir(self, prefix: str) -> None:
        await self._store.delete_dir(prefix)
        if prefix in ("", "/"):
            await self._side.delete(ROOT_METADATA)

    def __eq__(self, value: object) -> bool:
        return isinstance(value, HeldRootStore) and (self._store, self._side) == (value._store, value._side)

    def __repr__(self) -> str:
        return f"HeldRootStore({self._store!r}, root metadata in {self._side!r})"


def held_root_store(url: str, storage_options: Mapping[str, Any] | None = None) -> HeldRootStore:
    """A store that writes a Zarr product at ``url`` with its root metadata held in ``<url>.partial/``."""
    return HeldRootStore(zarr_store(url, storage_options), zarr_store(url.rstrip("/") + ".partial", storage_options))


def publish_held_root(url: str, storage_options: Mapping[str, Any] | None = None) -> None:
    """Copy the held root metadata of :func:`held_root_store` to ``url`` (one request: the store opens from
    then on) and remove ``<url>.partial/``."""
    fs, root = filesystem(url, storage_options)
    side = root.rstrip("/") + ".partial"
    fs.pipe_file(f"{root.rstrip('/')}/{ROOT_METADATA}", fs.cat_file(f"{side}/{ROOT_METADATA}"))
    fs.rm(side, recursive=True)


#: Option names that hold secrets: a configuration copied into run.json must not carry them.
SECRET_OPTIONS = (
    "key",
    "secret",
    "password",
    "token",
    "session_token",
    "client_secret",
    "account_key",
    "sas_token",
    "connection_string",
    "aws_access_key_id",
    "aws_secret_access_key",
    "aws_session_token",
)


def secret_options(options: Mapping[str, Any]) -> list[str]:
    """The names in ``options`` (nested mappings included) that hold credentials (:data:`SECRET_OPTIONS`);
    ``token: anon`` (a public bucket) is not a secret."""
    found = []
    for name, value in options.items():
        if isinstance(value, Mapping):
            found += [f"{name}.{inner}" for inner in secret_options(value)]
        elif name.lower() in SECRET_OPTIONS and not (name.lower() == "token" and value == "anon"):
            found.append(name)
    return found


@contextlib.contextmanager
def fsspec_defaults(options: Mapping[str, Mapping[str, Any]] | None):
    """Within the block, every fsspec file system of a protocol gets ``options[protocol]`` as defaults
    (``fsspec.config.conf``), here and on the workers of an active dask distributed client.

    Parameters
    ----------
    options : mapping of protocol to mapping, optional
        E.g. ``{"s3": {"endpoint_url": "http://minio:9000"}}``.
    """
    if not options:
        yield
        return
    import fsspec.config

    saved = {p: dict(fsspec.config.conf[p]) for p in options if p in fsspec.config.conf}
    _set_fsspec_defaults(options)
    _defaults_on_workers(options)
    try:
        yield
    finally:
        for protocol_name in options:
            if protocol_name in saved:
                fsspec.config.conf[protocol_name] = saved[protocol_name]
            else:
                fsspec.config.conf.pop(protocol_name, None)


def _set_fsspec_defaults(options: Mapping[str, Mapping[str, Any]]) -> None:
    import fsspec.config

    for protocol_name, values in options.items():
        fsspec.config.conf.setdefault(protocol_name, {}).update(values)


def _defaults_on_workers(options: Mapping[str, Mapping[str, Any]]) -> None:
    """The same defaults on every worker of the active distributed client, and on workers that join later."""
    try:
        from distributed import default_client
        from distributed.diagnostics.plugin import WorkerPlugin
    except ImportError:
        return
    try:
        client = default_client()
    except ValueError:  # no distributed client: the threads of this process share its configuration
        return

    class FsspecDefaults(WorkerPlugin):
        name = "uflux-xr-fsspec-defaults"

        def setup(self, worker) -> None:
            _set_fsspec_defaults(options)

    client.register_plugin(FsspecDefaults())
