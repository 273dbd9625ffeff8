"""Running a WSGI application on one HTTP/2 stream.

Driver-neutral: the application's thread (pool thread, greenlet) talks to the
connection through a ``Channel`` whose methods block in whatever way that
driver blocks. The runner maps WSGI onto it: ``start_response`` and the
response iterable become a response head, body frames and END_STREAM;
``wsgi.input`` reads the request body as it arrives; ``wsgi.early_hints``
and ``gunicorn.http2.send_trailers`` carry the names Gunicorn 25+ defined.
"""

from __future__ import annotations

import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

from h2.errors import ErrorCodes

from h2workers.app.push import preload, promise_block
from h2workers.app.request import RequestInfo, ResponseInfo
from h2workers.app.response import InvalidResponse, encode_headers, has_no_body, parse_status
from h2workers.errors import RequestRejected, StreamClosed
from h2workers.proto.headers import Header, RequestHead

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class Channel(Protocol):
    """One stream as the application's thread sees it."""

    stream_id: int

    def read_chunk(self, want: int = 0, ahead: int = 0) -> bytes:
        """Next piece of request body; b"" at its end. Raises StreamClosed.

        ``want``: how many more bytes the caller's read still needs (0 if
        not known): the driver need not wake the caller for less. ``ahead``
        (0, or at least ``want``): how many bytes past those already taken
        the caller expects to read soon (the rest of its read, and one more
        read of the same size); the driver may reopen that much
        flow-control window as they arrive, instead of once they are read.
        """

    def send_head(self, status: int, headers: list[Header], body: bytes, end: bool) -> None:
        """Response head, optionally with the first body bytes and END_STREAM."""

    def send_body(self, data: bytes, end: bool) -> None:
        """More body; blocks while too much is queued. Raises StreamClosed."""

    def send_informational(self, status: int, headers: list[Header]) -> None:
        """A 1xx response ahead of the final one."""

    def send_trailers(self, headers: list[Header]) -> None:
        """Trailers; they end the stream."""

    def reset(self, error_code: ErrorCodes) -> None:
        """Abandon the stream with RST_STREAM."""

    @property
    def can_push(self) -> bool:
        """The client takes server push now (HTTP/2 only)."""

    def push(self, block: list[Header]) -> bool:
        """PUSH_PROMISE the request ``block``; its app runs on the promised stream."""


_WHOLE_BODY = 1 << 62  # read() with no size wants everything
# A response ready in one piece (a 405 or 413 to an upload) first reads and
# drops up to this much of the request body still coming. RFC 9113 8.1 lets
# the server answer at once and reset the upload with RST_STREAM(NO_ERROR),
# but curl 7.88 stops uploading once it sees the response and reports that
# reset as a failed transfer (6 times in 10 for a small upload, before this).
DRAIN_LIMIT = 1 << 20


class RequestBody:
    """``wsgi.input``: the request body, read as the client sends it.

    Reading is what reopens the stream's flow-control window, so a client
    can never make the server hold more than one window of body per stream.
    ``read(n)`` returns ``n`` bytes unless the body ends first, as Gunicorn's
    HTTP/1.1 body does.
    """

    def __init__(self, channel: Channel, on_first_read: Callable[[], None] | None = None) -> None:
        self._channel = channel
        self._chunks: deque[bytes] = deque()  # kept as received: read() copies once
        self._size = 0
        self._eof = False
        self._on_first_read = on_first_read

    def _fill(self, want: int = 0, ahead: int = 0) -> bool:
        if self._eof:
            return False
        if self._on_first_read is not None:
            self._on_first_read()
            self._on_first_read = None
        chunk = self._channel.read_chunk(want, ahead)
        if not chunk:
            self._eof = True
            return False
        self._chunks.append(chunk)
        self._size += len(chunk)
        return True

    def _take(self, size: int) -> bytes:
        """The first ``size`` buffered bytes (at most one copy)."""
        chunks = self._chunks
        if size <= 0 or not chunks:
            return b""
        self._size -= size
        first = chunks[0]
        if len(first) >= size:
            if len(first) == size:
                return chunks.popleft()
            chunks[0] = first[size:]
            return first[:size]
        parts = []
        while size:
            chunk = chunks.popleft()
            if len(chunk) > size:
                chunks.appendleft(chunk[size:])
                chunk = chunk[:size]
            parts.append(chunk)
            size -= len(chunk)
        return b"".join(parts)

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            while self._fill(_WHOLE_BODY, _WHOLE_BODY):
                pass
            size = self._size
        # An app reading n bytes at a time asks for the next n as soon as
        # this read returns: letting their window reopen on arrival too
        # keeps the client sending between two reads (the window would
        # otherwise close at every read's end).
        ahead = 2 * size - self._size  # the rest of this read, and the next
        while self._size < size and self._fill(size - self._size, ahead):
            ahead = 0  # asked once per read: the horizon stays where it was
        return self._take(min(size, self._size))

    def drain(self, limit: int) -> None:
        """Read and drop the rest of the body, up to ``limit`` bytes; not when
        ``Expect: 100-continue`` was never answered (the app refused the
        body: the client must not be asked for it)."""
        if self._on_first_read is not None:
            return
        self._chunks.clear()
        self._size = 0
        while limit > 0 and self._fill(limit, limit):
            limit -= self._size
            self._chunks.clear()
            self._size = 0

    def readline(self, size: int | None = -1) -> bytes:
        limit = size if size is not None and size >= 0 else sys.maxsize
        start = 0
        while True:
            if len(self._chunks) > 1:  # a line may span chunks: search one buffer
                joined = b"".join(self._chunks)
                self._chunks.clear()
                self._chunks.append(joined)
            buf = self._chunks[0] if self._chunks else b""
            end = buf.find(b"\n", start, limit)
            if end >= 0:
                return self._take(end + 1)
            if len(buf) >= limit:
                return self._take(limit)
            start = len(buf)
            if not self._fill():
                return self._take(min(len(buf), limit))

    def readlines(self, hint: int = -1) -> list[bytes]:
        lines: list[bytes] = []
        total = 0
        for line in self:
            lines.append(line)
            total += len(line)
            if 0 < hint <= total:
                break
        return lines

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        line = self.readline()
        if not line:
            raise StopIteration
        return line


class WSGIStream:
    """Serves one stream: call the app, send what it returns."""

    def __init__(
        self,
        app: WSGIApp,
        channel: Channel,
        environ: dict[str, Any],
        req: RequestInfo,
        head: RequestHead | None = None,
    ) -> None:
        self.app = app
        self.channel = channel
        # Dropped by run(): the environ holds our bound methods, and a cycle
        # would keep every request's objects until the garbage collector runs.
        self.environ: dict[str, Any] | None = environ
        self.req = req
        self.info = ResponseInfo()
        self._block: list[Header] = []
        self._length: int | None = None
        self._no_body = False
        self._head_sent = False
        self._ended = False  # the stream's end (END_STREAM or trailers) was handed over
        self._trailers: list[Header] | None = None
        self.error: BaseException | None = None  # what _fail() caught, for the error log
        expect = environ.get("HTTP_EXPECT", "").lower() == "100-continue"
        # Kept here too: middleware may replace environ["wsgi.input"].
        self._input = RequestBody(channel, self._continue if expect else None)
        environ["wsgi.input"] = self._input
        environ["wsgi.early_hints"] = self.early_hints
        environ["gunicorn.http2.send_trailers"] = self.send_trailers
        self._head = head  # an HTTP/2 request's, for the promises it makes
        if head is not None:
            environ["gunicorn.http2.push"] = self.push
        environ["h2workers.preload"] = self.preload

    # -- the WSGI callables --------------------------------------------------

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: Any = None
    ) -> Callable[[bytes], None]:
        if exc_info:
            try:
                if self._head_sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.info.status is not None:
            raise AssertionError("start_response() called twice without exc_info")
        code = parse_status(status)
        self._block, self._length = encode_headers(headers)
        self.info.status, self.info.status_code = status, code
        self.info.headers = list(headers)
        self._no_body = has_no_body(self.req.method, code)
        return self.write

    def write(self, data: bytes) -> None:
        if self.info.status_code is None:
            raise AssertionError("write() before start_response()")
        data = self._within_length(data)
        if not data:
            return
        if self._head_sent:
            self.channel.send_body(data, False)
        else:
            self._head_sent = True
            self.channel.send_head(self.info.status_code, self._block, data, False)
        self.info.sent += len(data)

    def early_hints(self, headers: list[tuple[str, str]]) -> None:
        """``wsgi.early_hints``: a 103 ahead of the response, ignored once it started."""
        if not self._head_sent:
            self.channel.send_informational(103, encode_headers(headers)[0])

    def push(self, path: str, headers: Iterable[tuple[str, str]] = ()) -> bool:
        """``gunicorn.http2.push``: PUSH_PROMISE a GET of ``path`` (see
        app/push.py); False, and nothing promised, when the client takes no
        push, a cap is reached, or the response has ended."""
        head = self._head
        if head is None or self._ended or not self.channel.can_push:
            return False
        extra = encode_headers(list(headers))[0]
        scheme, authority = head.scheme or b"", head.authority or b""
        return self.channel.push(promise_block(scheme, authority, head.headers, path, extra))

    def preload(self, links: Iterable[str]) -> str:
        """``h2workers.preload``: push the links, or send them as 103."""
        can_push = self._head is not None and not self._ended and self.channel.can_push
        return preload(links, self.push if can_push else None, self.early_hints)

    def _continue(self) -> None:
        """RFC 9110 10.1.1: ``Expect: 100-continue`` is answered when the app
        first reads the body, so an app that refuses the request never
        receives it."""
        if not self._head_sent:
            self.channel.send_informational(100, [])

    def send_trailers(self, headers: list[tuple[str, str]]) -> None:
        """``gunicorn.http2.send_trailers``: sent after the last body frame."""
        block = encode_headers(headers)[0]
        if any(name.startswith(b":") for name, _ in block):
            raise InvalidResponse("trailers must not contain pseudo-headers")
        self._trailers = block

    # -- running -------------------------------------------------------------

    def run(self) -> None:
        """Call the app and send its response; never raises."""
        try:
            environ, self.environ = self.environ, None
            assert environ is not None, "run() serves a stream once"
            result = self.app(environ, self.start_response)
            try:
                self._send_result(result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        except StreamClosed:
            pass  # reset by the client, timed out, or the connection went away
        except Exception:
            self._fail()

    def _send_result(self, result: Iterable[bytes]) -> None:
        if isinstance(result, (list, tuple)) and len(result) <= 1 and not self._head_sent:
            if self.info.status_code is None:
                raise AssertionError("the application returned before start_response()")
            body = self._within_length(result[0]) if result else b""
            self.info.sent += len(body)
            self._complete(body)
            return
        for chunk in result:
            self.write(chunk)
            if self._no_body or (self._length is not None and self.info.sent >= self._length):
                break  # PEP 3333: nothing more can be sent; stop the iterable
        self._complete(b"")

    def _complete(self, body: bytes) -> None:
        """Send whatever ends the stream: head and/or END_STREAM or trailers."""
        code = self.info.status_code
        if code is None:
            raise AssertionError("the application returned before start_response()")
        if self._length is not None and self.info.sent < self._length and not self._no_body:
            raise InvalidResponse(
                f"response shorter ({self.info.sent}) than its content-length ({self._length})"
            )
        trailers = self._trailers
        if not self._head_sent:
            self._input.drain(DRAIN_LIMIT)
            self._head_sent = True
            self.channel.send_head(code, self._block, body, trailers is None)
        elif trailers is None:
            self.channel.send_body(b"", True)
        if trailers is not None:
            self.channel.send_trailers(trailers)
        self._ended = True

    def _within_length(self, data: bytes) -> bytes:
        """Drop body bytes that must not be sent (HEAD, 204/304, past content-length)."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"response body items must be bytes, got {type(data).__name__}")
        if self._no_body:
            return b""
        if self._length is not None:
            room = self._length - self.info.sent
            if len(data) > room:
                data = data[: max(room, 0)]
        return bytes(data)

    def _fail(self) -> None:
        """The app (or its response) failed: 500 if we still can, else reset."""
        self.error = sys.exc_info()[1]
        if self._ended:  # e.g. close() raised: the response is whole, only logged
            return
        if self._head_sent:
            self.channel.reset(ErrorCodes.INTERNAL_ERROR)
            return
        self._head_sent = True
        try:
            _send_plain(
                self.channel, self.info, 500, "Internal Server Error", b"Internal Server Error"
            )
        except StreamClosed:
            pass


def reject(channel: Channel, exc: RequestRejected) -> ResponseInfo:
    """Answer a request Gunicorn's policy refuses (414, 431, 400...)."""
    info = ResponseInfo()
    _send_plain(channel, info, exc.status, exc.reason, f"{exc.status} {exc.reason}\n".encode())
    return info


def _send_plain(
    channel: Channel, info: ResponseInfo, status: int, reason: str, body: bytes
) -> None:
    """A whole text/plain response from the server itself, noted in ``info``
    for the access log."""
    length = str(len(body))
    info.status, info.status_code, info.sent = f"{status} {reason}", status, len(body)
    info.headers = [("Content-Type", "text/plain"), ("Content-Length", length)]
    block = [(b"content-type", b"text/plain"), (b"content-length", length.encode())]
    channel.send_head(status, block, body, True)
