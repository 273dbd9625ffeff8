"""HTTP/1.1 ``Upgrade: h2c`` (RFC 7540 3.2), whoever parsed the request.

A request is given as Gunicorn's parser gives it (``method``, ``uri``,
``version`` and ``headers`` as upper-case names): the WSGI workers pass
Gunicorn's own request, the asyncio worker an h11 request in that shape.
Deciding whether a request is a valid upgrade and turning it into stream 1's
header block is the same for both; reading its body and writing the 101 is
the driver's.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from h2workers.proto.headers import Header

UPGRADE_BODY_LIMIT = 65536
SWITCHING_PROTOCOLS = (
    b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
)
_NOT_FORWARDED = frozenset(
    (
        "CONNECTION",
        "UPGRADE",
        "HTTP2-SETTINGS",
        "KEEP-ALIVE",
        "PROXY-CONNECTION",
        "TRANSFER-ENCODING",
        "HOST",
    )
)


def upgrade_settings(req: Any) -> bytes | None:
    """The HTTP2-Settings payload if ``req`` is a well-formed h2c upgrade."""
    upgrade, connection, settings = "", "", []
    for name, value in req.headers:
        if name == "UPGRADE":
            upgrade = value.strip().lower()
        elif name == "CONNECTION":
            connection = value.lower()
        elif name == "HTTP2-SETTINGS":
            settings.append(value.strip())
    tokens = {t.strip() for t in connection.split(",")}
    if upgrade != "h2c" or len(settings) != 1 or not {"upgrade", "http2-settings"} <= tokens:
        return None
    if req.version < (1, 1) or _declared_length(req) > UPGRADE_BODY_LIMIT:
        return None
    payload = settings[0].encode("latin-1")
    try:
        raw = base64.urlsafe_b64decode(payload + b"=" * (-len(payload) % 4))
    except (binascii.Error, ValueError):
        return None
    return payload if len(raw) % 6 == 0 else None


def _declared_length(req: Any) -> int:
    for name, value in req.headers:
        if name == "CONTENT-LENGTH":
            return int(value) if value.isdigit() else UPGRADE_BODY_LIMIT + 1
        if name == "TRANSFER-ENCODING":
            return UPGRADE_BODY_LIMIT + 1
    return 0


def upgrade_block(req: Any) -> list[Header]:
    """Stream 1's header block, from the upgrade request."""
    block: list[Header] = [
        (b":method", req.method.encode("latin-1")),
        (b":scheme", b"http"),
        (b":path", req.uri.encode("latin-1")),
    ]
    host = next((v for n, v in req.headers if n == "HOST"), None)
    if host is not None:
        block.insert(1, (b":authority", host.encode("latin-1")))
    for name, value in req.headers:
        if name in _NOT_FORWARDED or (name == "TE" and value.strip().lower() != "trailers"):
            continue
        block.append((name.lower().encode("latin-1"), value.encode("latin-1")))
    return block
