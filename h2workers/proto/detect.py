"""Telling HTTP/2 from HTTP/1.1 on a cleartext connection (RFC 9113 3.4).

An h2c client with prior knowledge starts with the 24-octet connection
preface; anything else is HTTP/1.1 (which may still ask to upgrade). The
verdict needs at most 24 bytes and no I/O: a driver feeds what it read.
"""

from __future__ import annotations

import enum

from h2.errors import ErrorCodes
from hyperframe.frame import GoAwayFrame

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


class Protocol(enum.Enum):
    H2 = "h2"  # the preface arrived whole
    H1 = "http/1.1"  # not the preface
    MORE = "more"  # a prefix of the preface: read on


def sniff(head: bytes) -> Protocol:
    """The verdict on the first bytes of a cleartext connection."""
    if head == PREFACE:
        return Protocol.H2
    if PREFACE.startswith(head):
        return Protocol.MORE
    return Protocol.H1


def bad_preface_goaway() -> bytes:
    """RFC 9113 3.4: an invalid preface is a connection error; what an
    HTTP/2-only server answers before it closes."""
    return GoAwayFrame(0, last_stream_id=0, error_code=ErrorCodes.PROTOCOL_ERROR).serialize()
