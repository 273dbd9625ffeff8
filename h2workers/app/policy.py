"""Gunicorn's request policy, for every protocol and application interface.

A client must not be able to forge over HTTP/2 anything it cannot forge over
HTTP/1.1, so the rules are Gunicorn's own, read from the same settings:
forwarded and scheme headers count only from ``forwarded_allow_ips``, header
names with underscores follow ``header_map`` (drop / refuse / dangerous)
unless a trusted ``forwarder_headers`` entry, the request-line and header
limits apply, and ``SCRIPT_NAME`` prefixes the path. The WSGI environ
(``app/wsgi/environ.py``) and the ASGI scope are formats over this one
policy; what is the same for every request of a connection is computed once
(a ``RequestPolicy`` per connection).
"""

from __future__ import annotations

import ipaddress
import os
from typing import Any

from h2workers.errors import RequestRejected
from h2workers.proto.headers import Header, RequestHead

Address = Any  # (host, port) tuple, or a str/bytes for unix sockets
TOO_LARGE = "Request Header Fields Too Large"


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


class RequestPolicy:
    """Gunicorn's rules for the requests of one connection."""

    def __init__(self, cfg: Any, peer: Address, secure: bool) -> None:
        self.secure = secure
        self.trusted = peer_is_trusted(cfg, peer)
        if self.trusted:  # names as received (lowercase bytes) to the value meaning https
            self.scheme_headers: dict[bytes, bytes] = {
                name.lower().encode("latin-1"): value.encode("latin-1")
                for name, value in cfg.secure_scheme_headers.items()
                if name == name.upper()  # Gunicorn compares upper-cased names: no other matches
            }
            self.forwarder_headers: list[str] = _forwarder_headers(cfg)
        else:
            self.scheme_headers, self.forwarder_headers = {}, []
        self.header_map: str = getattr(cfg, "header_map", "drop")
        self.script_name = os.environ.get("SCRIPT_NAME", "")
        self.line_limit: int = cfg.limit_request_line
        self.fields_limit: int = cfg.limit_request_fields
        self.field_size_limit: int = cfg.limit_request_field_size

    def accept(self, head: RequestHead) -> tuple[list[Header], str]:
        """The header fields the app may see (as received: lowercase bytes)
        and the request's scheme; raises RequestRejected."""
        if len(head.path) > self.line_limit > 0:
            raise RequestRejected(414, "URI Too Long", "request path too long")
        if len(head.headers) > self.fields_limit > 0:
            raise RequestRejected(431, TOO_LARGE, "too many headers")
        scheme = "https" if self.secure else "http"
        if not self.secure and self.trusted and head.scheme == b"https":
            scheme = "https"  # a trusted TLS-terminating proxy speaking h2c
        from_header: str | None = None
        size_limit, scheme_headers = self.field_size_limit, self.scheme_headers
        accepted: list[Header] = []
        for pair in head.headers:
            name, value = pair
            if len(name) + len(value) + 2 > size_limit > 0:
                raise RequestRejected(431, TOO_LARGE, "header too large")
            if name in scheme_headers:
                said = "https" if value == scheme_headers[name] else "http"
                if from_header not in (None, said):
                    raise RequestRejected(400, "Bad Request", "contradictory scheme headers")
                from_header = said
            if b"_" in name and not self._underscore_allowed(name.decode("latin-1").upper()):
                continue
            accepted.append(pair)
        return accepted, from_header or scheme

    def _underscore_allowed(self, name: str) -> bool:
        if name in self.forwarder_headers or "*" in self.forwarder_headers:
            return True
        if self.header_map == "dangerous":
            return True
        if self.header_map == "drop":
            return False
        raise RequestRejected(400, "Bad Request", f"invalid header name {name!r}")

    def split_script(self, path: str, from_header: str | None) -> tuple[str, str]:
        """(SCRIPT_NAME, the rest of the path): a ``SCRIPT_NAME`` header (if
        the app's headers kept it) wins over the environment variable."""
        script_name = self.script_name if from_header is None else from_header
        if script_name:
            if not path.startswith(script_name):
                raise RequestRejected(
                    400, "Bad Request", f"path {path!r} is not under SCRIPT_NAME {script_name!r}"
                )
            path = path[len(script_name) :]
        return script_name, path


def _forwarder_headers(cfg: Any) -> list[str]:
    value = getattr(cfg, "forwarder_headers", [])
    names: list[str] = value if isinstance(value, list) else str(value).split(",")
    return [n.strip().upper() for n in names if n.strip()]
