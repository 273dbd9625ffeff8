"""Error codes and reasons as the peer sent them, in an operator's words."""

from __future__ import annotations

import re

from h2.errors import ErrorCodes

_STATE_ERROR = re.compile(
    r"Invalid input (?:Connection|Stream)Inputs\.RECV_(\w+) in state "
    r"(?:Connection|Stream)State\.(\w+)"
)
_STATES = {
    "IDLE": "a stream it never opened",
    "CLOSED": "a closed stream",
    "HALF_CLOSED_REMOTE": "a stream it had already ended",
}


def plain_reason(exc: Exception) -> str:
    """What the peer did, in an operator's words: h2 words a frame that the
    stream's state forbids as its state machine's input ("Invalid input
    ConnectionInputs.RECV_RST_STREAM in state ConnectionState.IDLE")."""
    text = str(exc)
    match = _STATE_ERROR.search(text)
    if match is None:
        return text
    where = _STATES.get(match[2], f"a stream in state {match[2].lower().replace('_', ' ')}")
    return f"the client sent {match[1]} on {where}"  # the input is named after the frame


def received_code(code: int | None, default: ErrorCodes) -> ErrorCodes:
    """A received error code; unknown ones count as INTERNAL_ERROR (RFC 9113 7)."""
    if code is None:
        return default
    try:
        return ErrorCodes(code)
    except ValueError:
        return ErrorCodes.INTERNAL_ERROR
