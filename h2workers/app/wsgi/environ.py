"""Mapping an HTTP/2 request stream to a WSGI environ, by Gunicorn's rules.

A client must not be able to forge over HTTP/2 anything it cannot forge over
HTTP/1.1, so the header policy is Gunicorn's own, read from the same
settings: forwarded/scheme headers count only from ``forwarded_allow_ips``,
header names with underscores follow ``header_map`` (drop / refuse /
dangerous) unless a trusted ``forwarder_headers`` entry, and the request
line and header limits apply. What is the same for every request of a
connection is computed once per connection (``connection_environ``).
"""

from __future__ import annotations

import ipaddress
import os
from typing import Any

from gunicorn import SERVER_SOFTWARE, util
from gunicorn.http.wsgi import FileWrapper, WSGIErrorsWrapper

from h2workers.proto.headers import RequestHead

Address = Any  # (host, port) tuple, or a str/bytes for unix sockets


class RequestRejected(Exception):
    """The request breaks a Gunicorn limit or policy: answer with ``status``."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


class H2Request:
    """The request as Gunicorn's hooks and access log expect to see it."""

    __slots__ = (
        "fragment",
        "headers",
        "method",
        "path",
        "priority_depends_on",
        "priority_weight",
        "query",
        "scheme",
        "stream_id",
        "uri",
        "version",
    )

    def __init__(self, stream_id: int, head: RequestHead, scheme: str) -> None:
        self.stream_id = stream_id
        self.method = head.method.decode("latin-1")
        self.uri = head.path.decode("latin-1")
        self.version = (2, 0)
        self.scheme = scheme
        self.headers: list[tuple[str, str]] = []
        self.priority_weight = head.priority_weight
        self.priority_depends_on = head.priority_depends_on
        uri = self.uri
        if uri.startswith("//") or "#" in uri:  # rare: let Gunicorn's splitter decide
            parts = util.split_request_uri(uri)
            self.path, self.query, self.fragment = parts.path or "", parts.query, parts.fragment
        else:  # origin-form (or "*"): what urlsplit would give, without its cost
            self.path, _, self.query = uri.partition("?")
            self.fragment = ""

    def should_close(self) -> bool:
        return False


def peer_is_trusted(cfg: Any, peer: Address) -> bool:
    """Whether ``forwarded_allow_ips`` lets this peer set forwarded headers."""
    if not isinstance(peer, tuple):
        return True  # unix socket: trusted, as Gunicorn does
    allowed = cfg.forwarded_allow_ips
    if "*" in allowed:
        return True
    try:
        address = ipaddress.ip_address(peer[0])
    except ValueError:
        return peer[0] in allowed
    for entry in allowed:
        try:
            if address in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


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
        self.cfg = cfg
        self.secure = secure
        self.trusted = peer_is_trusted(cfg, peer)
        self.base = connection_environ(base, peer, server, secure)
        self.unix_server = not isinstance(server, tuple)
        if self.trusted:
            self.scheme_headers: dict[str, str] = dict(cfg.secure_scheme_headers)
            self.forwarder_headers: list[str] = list(_forwarder_headers(cfg))
        else:
            self.scheme_headers, self.forwarder_headers = {}, []
        self.header_map: str = getattr(cfg, "header_map", "drop")
        self.script_name = os.environ.get("SCRIPT_NAME", "")

    def build(self, stream_id: int, head: RequestHead) -> tuple[dict[str, Any], H2Request]:
        """Environ and request for a stream; raises RequestRejected."""
        cfg = self.cfg
        if len(head.path) > cfg.limit_request_line > 0:
            raise RequestRejected(414, "URI Too Long", "request path too long")
        environ = self.base.copy()
        scheme = environ["wsgi.url_scheme"]
        if not self.secure and self.trusted and head.scheme == b"https":
            scheme = "https"  # a trusted TLS-terminating proxy speaking h2c
        req = H2Request(stream_id, head, scheme)
        scheme = self._add_headers(environ, req, head)
        req.scheme = environ["wsgi.url_scheme"] = scheme
        environ["REQUEST_METHOD"] = req.method
        environ["RAW_URI"] = req.uri
        environ["QUERY_STRING"] = req.query
        environ["HTTP_VERSION"] = "2"
        if head.authority is not None:
            host = head.authority.decode("latin-1")
            if "HTTP_HOST" not in environ:  # the access log's %({host}i)s, as over HTTP/1.1
                req.headers.append(("HOST", host))
            environ["HTTP_HOST"] = host
        if self.unix_server and "HTTP_HOST" in environ:
            self._server_from_host(environ, scheme)
        self._set_paths(environ, req.path)
        return environ, req

    def _add_headers(self, environ: dict[str, Any], req: H2Request, head: RequestHead) -> str:
        cfg = self.cfg
        scheme = req.scheme
        scheme_from_header: str | None = None
        if len(head.headers) > cfg.limit_request_fields > 0:
            raise RequestRejected(431, "Request Header Fields Too Large", "too many headers")
        field_limit = cfg.limit_request_field_size
        headers = req.headers
        for raw_name, raw_value in head.headers:
            if len(raw_name) + len(raw_value) + 2 > field_limit > 0:
                raise RequestRejected(431, "Request Header Fields Too Large", "header too large")
            name = raw_name.decode("latin-1").upper()
            value = raw_value.decode("latin-1")
            if name in self.scheme_headers:
                secure = "https" if value == self.scheme_headers[name] else "http"
                if scheme_from_header not in (None, secure):
                    raise RequestRejected(400, "Bad Request", "contradictory scheme headers")
                scheme_from_header = secure
            if "_" in name and not self._underscore_allowed(name):
                continue
            headers.append((name, value))
            self._put_header(environ, name, value)
        return scheme_from_header or scheme

    def _underscore_allowed(self, name: str) -> bool:
        if name in self.forwarder_headers or "*" in self.forwarder_headers:
            return True
        if self.header_map == "dangerous":
            return True
        if self.header_map == "drop":
            return False
        raise RequestRejected(400, "Bad Request", f"invalid header name {name!r}")

    def _put_header(self, environ: dict[str, Any], name: str, value: str) -> None:
        if name == "CONTENT-TYPE":
            environ["CONTENT_TYPE"] = value
            return
        if name == "CONTENT-LENGTH":
            environ["CONTENT_LENGTH"] = value
            return
        if name == "HOST":
            return  # RFC 9113 8.3.1: :authority names the target; see build()
        key = "HTTP_" + name.replace("-", "_")
        previous = environ.get(key)
        environ[key] = value if previous is None else f"{previous},{value}"

    def _set_paths(self, environ: dict[str, Any], path: str) -> None:
        script_name = environ.get("HTTP_SCRIPT_NAME", self.script_name)
        if script_name:
            if not path.startswith(script_name):
                raise RequestRejected(
                    400, "Bad Request", f"path {path!r} is not under SCRIPT_NAME {script_name!r}"
                )
            path = path[len(script_name) :]
        # as Gunicorn does for HTTP/1.1; a plain ASCII path maps to itself
        plain = path.isascii() and "%" not in path
        environ["PATH_INFO"] = path if plain else util.unquote_to_wsgi_str(path)
        environ["SCRIPT_NAME"] = script_name

    @staticmethod
    def _server_from_host(environ: dict[str, Any], scheme: str) -> None:
        host, _, port = environ["HTTP_HOST"].partition(":")
        environ["SERVER_NAME"] = host
        environ["SERVER_PORT"] = port or ("443" if scheme == "https" else "80")


def _forwarder_headers(cfg: Any) -> list[str]:
    value = getattr(cfg, "forwarder_headers", [])
    names: list[str] = value if isinstance(value, list) else str(value).split(",")
    return [n.strip().upper() for n in names if n.strip()]
