"""Turning an application's response head into an HTTP/2 header block.

Shared by the WSGI mapping (``str`` headers, ``encode_headers``) and the
ASGI one (``bytes`` headers, ``check_headers``): the same checks Gunicorn
applies to HTTP/1.1 responses (token names, no CR/LF/NUL in values),
lowercase names as HTTP/2 requires, and no connection-specific fields, which
RFC 9113 8.2.2 forbids in HTTP/2.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from h2workers.errors import InvalidResponse
from h2workers.proto.headers import FieldMemo, Header

__all__ = ["InvalidResponse", "check_headers", "encode_headers", "has_no_body", "parse_status"]

_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_VALUE = re.compile(rb"[ \t\x21-\x7e\x80-\xff]*")
_STATUS = re.compile(r"([1-9][0-9]{2})(?: [ \t\x21-\x7e\x80-\xff]*)?")
_CONNECTION_SPECIFIC = frozenset(
    (b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade", b"te")
)


def parse_status(status: str) -> int:
    """``"200 OK"`` -> 200, as WSGI's start_response receives it."""
    if not isinstance(status, str):
        raise InvalidResponse(f"status {status!r} is not a string")
    match = _STATUS.fullmatch(status)
    if match is None:
        raise InvalidResponse(f"invalid status {status!r}")
    return int(match.group(1))


def encode_headers(headers: Iterable[tuple[str, str]]) -> tuple[list[Header], int | None]:
    """WSGI's ``str`` headers checked and encoded; see ``check_headers``."""
    raw: list[tuple[bytes, bytes]] = []
    for name, value in headers:
        if not isinstance(name, str) or not isinstance(value, str):
            raise InvalidResponse(f"header {name!r} is not a pair of strings")
        try:
            raw.append((name.encode("latin-1"), value.encode("latin-1")))
        except UnicodeEncodeError:
            raise InvalidResponse(f"header {name!r} is not latin-1") from None
    return check_headers(raw)


def check_headers(headers: Iterable[Any]) -> tuple[list[Header], int | None]:
    """Check response headers given as bytes; returns (block, content-length).

    Names are lowercased, values stripped of edge whitespace, and
    connection-specific fields dropped. Raises InvalidResponse for a name
    that is not a token or a value with control characters (response
    splitting), as Gunicorn does for HTTP/1.1. A pair seen before is not
    checked again (``_CHECKED``).
    """
    block: list[Header] = []
    length: int | None = None
    known = _CHECKED.known
    for pair in headers:
        try:
            checked = known.get(pair)
        except TypeError:  # a list, or a bytearray in it: checked (and refused) below
            checked = None
        if checked is None:
            checked = _checked_pair(pair)
        if checked is _DROPPED:
            continue
        if checked[0] == b"content-length":
            length = int(checked[1])
        block.append(checked)
    return block, length


_DROPPED: Header = (b"", b"")  # a connection-specific field: not sent over HTTP/2
_CHECKED = FieldMemo()  # response pairs already checked, to what they became


def _checked_pair(pair: Any) -> Header:
    name, value = pair
    if not isinstance(name, bytes) or not _TOKEN.fullmatch(name):
        raise InvalidResponse(f"invalid header name {name!r}")
    if not isinstance(value, bytes) or not _VALUE.fullmatch(value):
        raise InvalidResponse(f"invalid value for header {name!r}")
    lname = name.lower()
    value = value.strip(b" \t")
    checked = _DROPPED if lname in _CONNECTION_SPECIFIC else (lname, value)
    if lname == b"content-length" and not value.isdigit():
        raise InvalidResponse(f"invalid content-length {value!r}")
    if type(pair) is tuple and type(name) is bytes and type(pair[1]) is bytes:
        _CHECKED.remember(pair, lname, value, checked)
    return checked


def has_no_body(method: str, status: int) -> bool:
    """RFC 9110: HEAD responses and 1xx/204/304 carry no content."""
    return method == "HEAD" or status in (204, 304) or 100 <= status < 200
