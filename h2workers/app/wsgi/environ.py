"""Mapping an HTTP/2 request stream to a WSGI environ.

The rules (trusted peers, scheme headers, ``header_map``, limits,
``SCRIPT_NAME``) are Gunicorn's, applied by ``app/policy.py``; this module
is only the WSGI format over them. What is the same for every request of a
connection is computed once per connection (``connection_environ``).
"""

from __future__ import annotations

from typing import Any

from gunicorn import SERVER_SOFTWARE, util
from gunicorn.http.wsgi import FileWrapper, WSGIErrorsWrapper

from h2workers.app.policy import Address, RequestPolicy
from h2workers.app.request import RequestInfo
from h2workers.errors import RequestRejected
from h2workers.proto.headers import RequestHead

__all__ = [
    "EnvironBuilder",
    "RequestInfo",
    "RequestRejected",
    "connection_environ",
    "worker_environ",
]


def worker_environ(cfg: Any) -> dict[str, Any]:
    """The environ keys that are the same for every request of a worker."""
    return {
        "wsgi.errors": WSGIErrorsWrapper(cfg),
        "wsgi.version": (1, 0),
        "wsgi.multithread": True,
        "wsgi.multiprocess": cfg.workers > 1,
        "wsgi.run_once": False,
        "wsgi.file_wrapper": FileWrapper,
        "wsgi.input_terminated": True,
        # Over HTTP/2 the socket carries every stream of the connection and
        # belongs to the I/O thread (an SSL socket must not be used from two
        # threads): an app writing to it would corrupt the connection, so
        # apps see None here (Gunicorn's own HTTP/1.1 path sets the socket).
        "gunicorn.socket": None,
        "SERVER_SOFTWARE": SERVER_SOFTWARE,
        "SERVER_PROTOCOL": "HTTP/2.0",
    }


def connection_environ(
    base: dict[str, Any], peer: Address, server: Address, secure: bool
) -> dict[str, Any]:
    """The environ keys that are the same for every stream of a connection."""
    environ = dict(base)
    environ["wsgi.url_scheme"] = "https" if secure else "http"
    if isinstance(peer, tuple):
        environ["REMOTE_ADDR"] = peer[0]
        environ["REMOTE_PORT"] = str(peer[1])
    else:
        environ["REMOTE_ADDR"] = peer.decode() if isinstance(peer, bytes) else str(peer)
    if isinstance(server, tuple):
        environ["SERVER_NAME"] = str(server[0])
        environ["SERVER_PORT"] = str(server[1])
    else:
        environ["SERVER_NAME"], environ["SERVER_PORT"] = str(server), ""
    return environ


class EnvironBuilder:
    """Builds the environ of one stream; one instance per connection."""

    def __init__(
        self, cfg: Any, base: dict[str, Any], peer: Address, server: Address, secure: bool
    ) -> None:
        self.policy = RequestPolicy(cfg, peer, secure)
        self.base = connection_environ(base, peer, server, secure)
        self.unix_server = not isinstance(server, tuple)

    def build(self, stream_id: int, head: RequestHead) -> tuple[dict[str, Any], RequestInfo]:
        """Environ and request for a stream; raises RequestRejected."""
        raw_headers, scheme = self.policy.accept(head)
        environ = self.base.copy()
        req = RequestInfo(stream_id, head, scheme, raw_headers)
        headers = req.headers
        for name, value in headers:
            _put_header(environ, name, value)
        environ["wsgi.url_scheme"] = scheme
        environ["REQUEST_METHOD"] = req.method
        environ["RAW_URI"] = req.uri
        environ["QUERY_STRING"] = req.query
        environ["HTTP_VERSION"] = "2"
        if head.authority is not None:
            host = head.authority.decode("latin-1")
            if "HTTP_HOST" not in environ:  # the access log's %({host}i)s, as over HTTP/1.1
                headers.append(("HOST", host))
            environ["HTTP_HOST"] = host
        if self.unix_server and "HTTP_HOST" in environ:
            _server_from_host(environ, scheme)
        script_name, path = self.policy.split_script(req.path, environ.get("HTTP_SCRIPT_NAME"))
        # as Gunicorn does for HTTP/1.1; a plain ASCII path maps to itself
        plain = path.isascii() and "%" not in path
        environ["PATH_INFO"] = path if plain else util.unquote_to_wsgi_str(path)
        environ["SCRIPT_NAME"] = script_name
        return environ, req


def _put_header(environ: dict[str, Any], name: str, value: str) -> None:
    if name == "CONTENT-TYPE":
        environ["CONTENT_TYPE"] = value
    elif name == "CONTENT-LENGTH":
        environ["CONTENT_LENGTH"] = value
    elif name != "HOST":  # RFC 9113 8.3.1: :authority names the target; see build()
        key = "HTTP_" + name.replace("-", "_")
        previous = environ.get(key)
        environ[key] = value if previous is None else f"{previous},{value}"


def _server_from_host(environ: dict[str, Any], scheme: str) -> None:
    host, _, port = environ["HTTP_HOST"].partition(":")
    environ["SERVER_NAME"] = host
    environ["SERVER_PORT"] = port or ("443" if scheme == "https" else "80")
