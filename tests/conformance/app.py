"""The WSGI application of the conformance suite's real servers.

``tests.apps:app`` plus one route whose response head carries what HTTP/2
forbids on the wire (RFC 9113 8.2): connection-specific fields and
mixed-case names, which the server must drop or lowercase.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from tests.apps import app as base_app

HOP_BY_HOP = [
    ("Connection", "keep-alive"),
    ("Keep-Alive", "timeout=5"),
    ("Proxy-Connection", "keep-alive"),
    ("Transfer-Encoding", "identity"),
    ("Upgrade", "h2c"),
    ("TE", "trailers"),
    ("X-Mixed-Case", "Value"),
    ("Content-Length", "2"),
]


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    if environ.get("PATH_INFO") == "/hop-by-hop":
        start_response("200 OK", HOP_BY_HOP)
        return [b"ok"]
    return base_app(environ, start_response)
