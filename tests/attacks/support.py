"""Shared by tests/attacks and tests/faults: a raw frame connection, frame
builders (any frame, including the ones h2 refuses to produce), worker
measurements from /proc and the "is the worker still fine" check.

``RawConn`` is the raw client of tests/sockets.py: it writes bytes it
builds itself (tests/frames.py's builders and its own HPACK encoder) and
reads what the server sends frame by frame, so an attack is neither helped
nor hindered by h2.
"""

from __future__ import annotations

import os
import ssl
import struct
import time
from collections.abc import Callable, Iterable

import hpack
from h2.errors import ErrorCodes
from hyperframe.frame import Frame, GoAwayFrame, HeadersFrame, RstStreamFrame

from tests import frames
from tests.e2e.util import (
    PREFACE,
    FrameReader,
    H2Client,
    h1_request,
    rss_kib,
    summary,
    wait_for_file,
)
from tests.frames import raw_frame
from tests.sockets import FrameSocket

__all__ = [
    "EYC",
    "PREFACE",
    "FrameReader",
    "H2Client",
    "RawConn",
    "assert_logged_once",
    "assert_serves",
    "config",
    "continuation",
    "fd_count",
    "goaway_code",
    "h1_request",
    "headers_frame",
    "ping",
    "raw_frame",
    "responses",
    "rss_kib",
    "rst",
    "settings",
    "summary",
    "thread_count",
    "wait_for_file",
    "window_update",
]

Header = tuple[bytes, bytes]
EYC = ErrorCodes.ENHANCE_YOUR_CALM


def config(**values: object) -> str:
    """gunicorn.conf.py text assigning ``values`` (h2workers reads it on every Gunicorn)."""
    return "".join(f"{name} = {value!r}\n" for name, value in values.items())


# -- frames (tests/frames.py's builders, under the names these suites use) -------


def ping(n: int = 0) -> bytes:
    """A PING whose payload is the number ``n``."""
    return frames.ping(struct.pack(">Q", n))


settings = frames.settings
rst = frames.rst_stream  # CANCEL unless told otherwise
window_update = frames.window_update
headers_frame = frames.headers  # END_STREAM and END_HEADERS unless told otherwise


def continuation(stream_id: int, fragment: bytes, *, end_headers: bool = False) -> bytes:
    """A CONTINUATION frame; mid-block unless told otherwise (floods send many)."""
    return frames.continuation(stream_id, fragment, end_headers=end_headers)


def goaway_code(frame: GoAwayFrame) -> str:
    try:
        return ErrorCodes(frame.error_code).name
    except ValueError:
        return str(frame.error_code)


# -- a raw connection -------------------------------------------------------------


class RawConn(FrameSocket):
    """The raw client, speaking first (preface and SETTINGS) unless told not to."""

    def __init__(
        self,
        port: int,
        context: ssl.SSLContext | None = None,
        *,
        timeout: float = 10.0,
        preface: bool = True,
        client_settings: Iterable[tuple[int, int]] = (),
        rcvbuf: int | None = None,
    ) -> None:
        super().__init__(port, context, timeout=timeout, rcvbuf=rcvbuf)
        if preface:
            self.send(PREFACE + settings(*client_settings))

    def block(
        self, path: str = "/hello", method: str = "GET", extra: Iterable[Header] = ()
    ) -> bytes:
        """An HPACK block for a request, encoded with this connection's table."""
        headers = [
            (b":method", method.encode()),
            (b":scheme", self.scheme),
            (b":authority", self.authority),
            (b":path", path.encode()),
            *extra,
        ]
        return self.encoder.encode(headers)

    def request(self, stream_id: int, path: str = "/hello", **kwargs: object) -> bytes:
        """A complete GET (HEADERS with END_STREAM) as bytes, not sent."""
        return headers_frame(stream_id, self.block(path, **kwargs))  # type: ignore[arg-type]

    # -- receiving ----------------------------------------------------------------

    def wait(self, predicate: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
        if not self._poll(predicate, timeout, 0.2):
            raise AssertionError(
                f"timed out waiting for {what}: closed={self.closed} "
                f"frames={[summary(f) for f in self.frames][-12:]}"
            )

    def wait_closed(self, timeout: float = 10.0) -> float:
        """Read (and keep) everything until the server closes; when it did."""
        deadline = time.monotonic() + timeout
        while not self.closed:
            assert time.monotonic() < deadline, "the server did not close the connection"
            self.pump(0.2)
        assert self.closed_at is not None
        return self.closed_at

    def goaways(self) -> list[GoAwayFrame]:
        return [f for f in self.frames if isinstance(f, GoAwayFrame)]

    def resets(self) -> dict[int, int]:
        return {f.stream_id: f.error_code for f in self.frames if isinstance(f, RstStreamFrame)}

    def count(self, kind: type[Frame], flag: str | None = None) -> int:
        return sum(
            1 for f in self.frames if isinstance(f, kind) and (flag is None or flag in f.flags)
        )


def responses(frames: Iterable[Frame]) -> dict[int, int]:
    """:status of every response HEADERS in ``frames``, decoded in order."""
    decoder = hpack.Decoder()
    found: dict[int, int] = {}
    for frame in frames:
        if isinstance(frame, HeadersFrame):
            headers = dict(decoder.decode(frame.data, raw=True))
            status = headers.get(b":status")
            if status is not None and not status.startswith(b"1"):
                found.setdefault(frame.stream_id, int(status))
    return found


# -- the worker, seen from outside ------------------------------------------------


def thread_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def assert_serves(srv, worker: int, tls_files=None) -> None:
    """The same worker answers a normal request on a new connection, over
    HTTP/2 and HTTP/1.1 (``tls_files`` for a TLS server)."""
    h2_context = h1_context = None
    if srv.tls:
        h2_context = tls_files.client_context()
        h1_context = tls_files.client_context(alpn=("http/1.1",))
    with H2Client(srv.port, h2_context, timeout=10) as client:
        response = client.get("/pid")
        assert response.status == 200, response
        assert int(bytes(response.data)) == worker, "the worker was replaced"
    answer = h1_request(srv.port, "/pid", context=h1_context)
    assert answer.status == 200 and int(answer.body) == worker
    assert srv.worker_pid() == worker


def assert_logged_once(srv, start: int, *needles: str, at_most: int = 3) -> str:
    """The log written since ``start`` (a length of srv.log()) names the
    attack: a line holding every needle, present once-ish (not per frame)."""
    deadline = time.monotonic() + 5
    while True:
        text = srv.log()[start:]
        lines = [ln for ln in text.splitlines() if all(n in ln for n in needles)]
        if lines or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert lines, f"no log line with {needles} in:\n{text[-3000:]}"
    assert len(lines) <= at_most, f"{len(lines)} log lines for one attack:\n{lines[:5]}"
    return lines[0]
