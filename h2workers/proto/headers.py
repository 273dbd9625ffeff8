"""Checks on request header blocks (RFC 9113 section 8) in one pass.

h2's own inbound validation is switched off (see core.py): it costs about a
quarter of h2's per-request time and turns every malformed request into a
connection error, which would drop the other streams of the connection. This
module performs the same checks and reports a malformed request as a
StreamViolation, which the core answers with RST_STREAM(PROTOCOL_ERROR) on
that stream alone, as RFC 9113 section 8.1.1 asks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from h2workers.errors import StreamViolation
from h2workers.proto.priority import DEFAULT_PRIORITY, StreamPriority

Header = tuple[bytes, bytes]

# RFC 9110 token characters, lowercase only (RFC 9113 8.2.1: uppercase is malformed).
_TOKEN_CHARS = b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz"
_FORBIDDEN_IN_VALUE = re.compile(rb"[\x00\r\n]")
_URI_FORBIDDEN = re.compile(rb"[\x00-\x20\x7f]")
_WHITESPACE = (b" ", b"\t")
_CONNECTION_SPECIFIC = frozenset(
    (b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade")
)
_REQUEST_PSEUDO = frozenset((b":method", b":scheme", b":path", b":authority"))
_EXTENDED_PSEUDO = _REQUEST_PSEUDO | {b":protocol"}


@dataclass(slots=True)
class RequestHead:
    """A request's header block, checked and split into its parts."""

    method: bytes
    scheme: bytes | None
    authority: bytes | None
    path: bytes
    headers: list[Header]
    content_length: int | None = None
    list_size: int = 0  # RFC 9113 6.5.2 size: names + values + 32 octets a field
    # what the app sees of its priority (both schemes; the core fills it in)
    priority: StreamPriority = DEFAULT_PRIORITY
    priority_field: bytes | None = None  # the RFC 9218 ``priority`` header, joined
    protocol: bytes | None = None  # RFC 8441 extended CONNECT's :protocol (b"websocket")


def _check_name(name: bytes) -> None:
    if not name or name.translate(None, _TOKEN_CHARS):
        raise StreamViolation(f"invalid header name {name!r}")


def _check_value(name: bytes, value: bytes) -> None:
    if _FORBIDDEN_IN_VALUE.search(value):
        raise StreamViolation(f"forbidden character in value of {name!r}")
    if value[:1] in _WHITESPACE or value[-1:] in _WHITESPACE:
        raise StreamViolation(f"value of {name!r} starts or ends with whitespace")


def _check_regular(name: bytes, value: bytes) -> None:
    _check_name(name)
    _check_value(name, value)
    if name in _CONNECTION_SPECIFIC:
        raise StreamViolation(f"connection-specific header {name!r}")
    if name == b"te" and value != b"trailers":
        raise StreamViolation("te header other than 'trailers'")


SECRET_FIELDS = frozenset((b"authorization", b"proxy-authorization", b"cookie", b"set-cookie"))


class FieldMemo:
    """Header fields that passed their checks, and what each became: a
    client sends the same few fields on every request, an app on every
    response, so each is checked once. Bounded (a peer whose values vary
    fills it, and from then on fields are checked every time); credentials
    are never kept past their request or response."""

    MAX_FIELDS, MAX_VALUE = 1024, 256

    def __init__(self) -> None:
        self.known: dict[Any, Any] = {}  # the field as given -> what it became

    def remember(self, given: Any, name: bytes, value: bytes, became: Any) -> None:
        if len(value) > self.MAX_VALUE or len(self.known) >= self.MAX_FIELDS:
            return
        if name not in SECRET_FIELDS:
            self.known[given] = became


# Fields that passed RFC 9113 8's checks: a pseudo-header's value, or a regular field whole
_CHECKED = FieldMemo()


def _parse_content_length(value: bytes, current: int | None) -> int:
    if not value.isdigit():
        raise StreamViolation(f"invalid content-length {value!r}")
    length = int(value)
    if current is not None and current != length:
        raise StreamViolation("conflicting content-length values")
    return length


# Request blocks seen whole before (a client repeating a request): the
# head they made, copied for each request. Bounded like FieldMemo; never a
# block with credentials, nor one over MAX_HEAD_SIZE.
_HEADS: dict[tuple[Any, ...], RequestHead] = {}
MAX_HEADS, MAX_HEAD_SIZE = 256, 2048


def _copy(head: RequestHead) -> RequestHead:
    """A head of its own (the core sets its priority, a driver may extend
    its header list)."""
    copy = RequestHead(
        head.method, head.scheme, head.authority, head.path, list(head.headers),
        head.content_length, head.list_size,
    )  # fmt: skip
    copy.priority_field, copy.protocol = head.priority_field, head.protocol
    return copy


def parse_request(block: list[Header], extended_connect: bool = False) -> RequestHead:
    """``check_request``, remembering the heads of blocks seen whole before."""
    key = (extended_connect, *block)
    try:
        known = _HEADS.get(key)
    except TypeError:  # a field that is not a tuple (a pushed request's, from an app)
        return check_request(block, extended_connect)
    if known is not None:
        return _copy(known)
    head = check_request(block, extended_connect)
    if (
        len(_HEADS) < MAX_HEADS
        and head.list_size <= MAX_HEAD_SIZE
        and not any(name in SECRET_FIELDS for name, _ in head.headers)
    ):
        _HEADS[key] = _copy(head)
    return head


def check_request(block: list[Header], extended_connect: bool = False) -> RequestHead:
    """Validate a request header block and split it into a RequestHead.

    Raises StreamViolation (PROTOCOL_ERROR) for anything RFC 9113 calls
    malformed: bad or repeated pseudo-headers, pseudo-headers after regular
    ones, uppercase or non-token names, CR/LF/NUL or edge whitespace in
    values, connection-specific headers, a ``te`` other than ``trailers``, a
    ``:path`` that is neither origin-form nor ``*`` for OPTIONS.
    ``:protocol`` (RFC 8441) is a pseudo-header only when the server sent
    SETTINGS_ENABLE_CONNECT_PROTOCOL (``extended_connect``).
    """
    known = _EXTENDED_PSEUDO if extended_connect else _REQUEST_PSEUDO
    pseudo: dict[bytes, bytes] = {}
    headers: list[Header] = []
    cookies: list[bytes] = []
    content_length: int | None = None
    priority: bytes | None = None
    list_size = 32 * len(block)
    checked = _CHECKED.known
    for pair in block:
        name, value = pair
        list_size += len(name) + len(value)
        if name[:1] == b":":
            if headers or cookies:
                raise StreamViolation("pseudo-header after regular header")
            if name not in known:
                raise StreamViolation(f"unknown pseudo-header {name!r}")
            if name in pseudo:
                raise StreamViolation(f"repeated pseudo-header {name!r}")
            if pair not in checked:
                _check_value(name, value)
                _CHECKED.remember(pair, name, value, True)
            pseudo[name] = value
            continue
        if pair not in checked:
            _check_regular(name, value)
            _CHECKED.remember(pair, name, value, True)
        if name == b"cookie":  # RFC 9113 8.2.3: rejoin split cookie fields
            cookies.append(value)
            continue
        if name == b"content-length":
            content_length = _parse_content_length(value, content_length)
        elif name == b"priority":  # RFC 8941: a dictionary split over fields joins
            priority = value if priority is None else priority + b"," + value
        elif name == b"host":
            if b":host" in pseudo:
                raise StreamViolation("repeated host header")
            pseudo[b":host"] = value  # compared with :authority below
        headers.append((name, value))
    if cookies:
        headers.append((b"cookie", b"; ".join(cookies)))
    head = _head_from_pseudo(pseudo, headers, content_length)
    head.list_size = list_size
    head.priority_field = priority
    return head


def _head_from_pseudo(
    pseudo: dict[bytes, bytes], headers: list[Header], content_length: int | None
) -> RequestHead:
    method = pseudo.get(b":method")
    if not method:
        raise StreamViolation("missing :method")
    _check_name(method.lower())
    authority = pseudo.get(b":authority")
    host = pseudo.get(b":host")
    if host is not None:  # RFC 9113 8.3.1: Host must name what :authority names
        if authority is None:
            authority = host
        elif host.lower() != authority.lower():
            raise StreamViolation("host header differs from :authority")
    protocol = pseudo.get(b":protocol")
    if protocol is not None and method != b"CONNECT":
        raise StreamViolation(":protocol outside a CONNECT request")
    if method == b"CONNECT" and protocol is None:
        if b":scheme" in pseudo or b":path" in pseudo or not authority:
            raise StreamViolation("CONNECT needs :authority and no :scheme or :path")
        return RequestHead(method, None, authority, b"", headers, content_length)
    scheme = pseudo.get(b":scheme")
    path = pseudo.get(b":path")
    if protocol is not None and not authority:  # RFC 8441 4: all four, and :protocol
        raise StreamViolation("extended CONNECT needs :authority, :scheme and :path")
    if not scheme or not path:
        raise StreamViolation("missing :scheme or :path")
    if path[:1] != b"/" and not (path == b"*" and method == b"OPTIONS"):
        raise StreamViolation(f"invalid :path {path[:64]!r}")
    if _URI_FORBIDDEN.search(path):  # whitespace and controls are never part of a URI
        raise StreamViolation(f"invalid character in :path {path[:64]!r}")
    head = RequestHead(method, scheme, authority, path, headers, content_length)
    head.protocol = protocol
    return head


def parse_trailers(block: list[Header]) -> list[Header]:
    """Validate a trailer block: regular fields only (RFC 9113 8.1)."""
    for name, value in block:
        if name[:1] == b":":
            raise StreamViolation("pseudo-header in trailers")
        _check_regular(name, value)
    return block
