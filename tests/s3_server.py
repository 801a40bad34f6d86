"""An S3-compatible server on 127.0.0.1 for the tests (moto's S3 in a thread), counting what it is asked.

No test reaches any other address: the server listens on a free local port, the
credentials are dummies set only for the server's lifetime, and every client is
pointed at it through ``storage_options={"endpoint_url": ...}`` (and
``AWS_ENDPOINT_URL`` for subprocesses and dask workers).
"""

from __future__ import annotations

import os
import socket
import threading
from collections import Counter
from contextlib import contextmanager

#: What the tests' clients authenticate with (moto accepts anything).
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class CountingServer:
    """moto's S3 behind a WSGI layer that records each request's method and path."""

    def __init__(self) -> None:
        from moto.server import DomainDispatcherApplication, create_backend_app
        from werkzeug.serving import WSGIRequestHandler, make_server

        class Quiet(WSGIRequestHandler):
            def log_request(self, *args, **kwargs) -> None:  # one line per request would drown the test output
                pass

        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        app = DomainDispatcherApplication(create_backend_app)

        def counting(environ, start_response):
            with self._lock:
                self.requests.append((environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")))
            return app(environ, start_response)

        self.port = _free_port()
        self._server = make_server("127.0.0.1", self.port, counting, threaded=True, request_handler=Quiet)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self.endpoint = f"http://127.0.0.1:{self.port}"

    def start(self) -> CountingServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join()

    @property
    def storage_options(self) -> dict:
        """What an s3fs client needs to reach this server."""
        return {"endpoint_url": self.endpoint}

    def reset_counts(self) -> None:
        with self._lock:
            self.requests.clear()

    def gets(self, under: str = "") -> Counter:
        """GET requests per path, for paths that start with ``under`` (``/bucket/key...``)."""
        with self._lock:
            return Counter(path for method, path in self.requests if method == "GET" and path.startswith(under))

    def make_bucket(self, name: str) -> str:
        import s3fs

        s3fs.S3FileSystem(client_kwargs={"endpoint_url": self.endpoint}).mkdir(name)
        s3fs.S3FileSystem.clear_instance_cache()
        return name


@contextmanager
def s3_environment(endpoint: str):
    """Dummy credentials and the endpoint in the environment (children and dask workers inherit them)."""
    saved = {k: os.environ.get(k) for k in (*CREDENTIALS, "AWS_ENDPOINT_URL")}
    os.environ.update({**CREDENTIALS, "AWS_ENDPOINT_URL": endpoint})
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


if __name__ == "__main__":  # a server in its own process (benchmarks/object_storage.py): prints its endpoint
    server = CountingServer()
    print(server.endpoint, flush=True)
    server._server.serve_forever()
