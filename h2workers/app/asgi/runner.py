"""Running an ASGI application on one request (an HTTP/2 stream or an
HTTP/1.1 exchange).

Driver-neutral: the application's task talks to the connection through an
``AsyncChannel`` (``session/channel.py`` for HTTP/2, the h11 connection for
HTTP/1.1). ``ASGIStream`` turns ``receive()`` into body chunks read under
flow control and ``send()`` messages into a response head, body, trailers
and 1xx responses, checking their order as the ASGI spec asks. A message out
of order raises ``RuntimeError`` in the app; an app that fails gets a 500 if
its head is not out yet, else the stream is reset; the other streams go on.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Protocol

from h2.errors import ErrorCodes

from h2workers.app.push import promise_block
from h2workers.app.request import ResponseInfo
from h2workers.app.response import check_headers, has_no_body
from h2workers.errors import InvalidResponse, RequestRejected, StreamClosed
from h2workers.proto.headers import Header

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

PATHSEND_BLOCK = 256 * 1024
# As the WSGI runner's: a response that ends while the request body is still
# coming first reads and drops up to this much of it. RFC 9113 8.1 allows
# answering at once and resetting the upload with RST_STREAM(NO_ERROR), but
# curl 7.88 reports that reset as a failed transfer.
DRAIN_LIMIT = 1 << 20
EARLY_HINT = 103


class AsyncChannel(Protocol):
    """One request as the application's task sees it."""

    stream_id: int

    async def read_chunk(self, want: int = 0, ahead: int = 0) -> bytes:
        """Next piece of request body; b"" at its end. Raises StreamClosed."""

    def body_ended(self) -> bool:
        """No body byte is left to read (all read, and the end seen)."""

    async def send_head(self, status: int, headers: list[Header], body: bytes, end: bool) -> None:
        """Response head, with the first body bytes and perhaps the end."""

    async def send_body(self, data: bytes, end: bool) -> None:
        """More body; waits while too much is queued. Raises StreamClosed."""

    def send_informational(self, status: int, headers: list[Header]) -> None: ...

    def send_trailers(self, headers: list[Header]) -> None:
        """Trailers; they end the response."""

    def reset(self, error_code: ErrorCodes) -> None:
        """Abandon the response (RST_STREAM, or closing an HTTP/1.1 connection)."""

    async def wait_closed(self) -> None:
        """Return once the client is gone (reset, connection lost)."""

    def push(self, block: list[Header]) -> bool:
        """PUSH_PROMISE (HTTP/2 only; see ASGIStream.push)."""


class ASGIStream:
    """Serves one request: call the app with receive and send."""

    def __init__(
        self, app: ASGIApp, channel: AsyncChannel, scope: Scope, expect_continue: bool = False
    ) -> None:
        self.app = app
        self.channel = channel
        self.scope = scope
        self.info = ResponseInfo()  # for the access log and post_request
        self.error: BaseException | None = None  # what failed, for the error log
        self._no_body = False
        self._block: list[Header] = []
        self._trailers_expected = False
        self._trailers: list[Header] = []
        self._length: int | None = None  # the content-length the app declared
        self._started = False  # http.response.start received
        self._head_sent = False
        self._body_done = False  # the last body message was sent
        self._ended = False  # the response's end is handed over
        self._request_done = False  # the app has had the whole body
        self._continue = expect_continue  # 100-continue still owed on the first read

    # -- receive -------------------------------------------------------------

    async def receive(self) -> Message:
        if not self._request_done:
            channel = self.channel
            if self._continue:
                self._continue = False
                if not self._head_sent:
                    channel.send_informational(100, [])
            try:
                chunk = await channel.read_chunk(1)
            except StreamClosed:
                return {"type": "http.disconnect"}
            more = not channel.body_ended()
            self._request_done = not more
            return {"type": "http.request", "body": chunk, "more_body": more}
        if not self._ended:
            await self.channel.wait_closed()
        return {"type": "http.disconnect"}

    # -- send ----------------------------------------------------------------

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.body":
            await self._body(message)
        elif kind == "http.response.start":
            self._start(message)
        elif kind == "http.response.trailers":
            self._send_trailers(message)
        elif kind == "http.response.informational":
            self._informational(int(message["status"]), message.get("headers", []))
        elif kind == "http.response.early_hint":  # Hypercorn's name
            links = [(b"link", link) for link in message.get("links", [])]
            self._informational(EARLY_HINT, links)
        elif kind == "http.response.pathsend":
            await self._pathsend(message)
        elif kind == "http.response.push":
            self.push(message)
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r} for an HTTP request")

    def _start(self, message: Message) -> None:
        if self._started:
            raise RuntimeError("http.response.start sent twice")
        status = message["status"]
        if not isinstance(status, int) or not 100 <= status <= 999 or 100 <= status < 200:
            raise InvalidResponse(f"invalid response status {status!r}")
        block, length = check_headers(message.get("headers", []))
        self._started = True
        self._block = block
        self._no_body = has_no_body(self.scope["method"], status)
        self._trailers_expected = bool(message.get("trailers", False))
        info = self.info
        info.status_code, info.status = status, str(status)
        info.raw_headers = block
        self._length = None if self._no_body else length

    async def _body(self, message: Message) -> None:
        if not self._started:
            raise RuntimeError("http.response.body before http.response.start")
        if self._body_done:
            raise RuntimeError("http.response.body after the response's last body")
        body = message.get("body", b"")
        if not isinstance(body, (bytes, bytearray, memoryview)):
            raise TypeError(f"http.response.body's body must be bytes, got {type(body).__name__}")
        more = bool(message.get("more_body", False))
        await self._write(bytes(body) if not self._no_body else b"", more)

    async def _write(self, body: bytes, more: bool) -> None:
        """A piece of body; the response ends with the last one, unless
        trailers were announced."""
        end = not more and not self._trailers_expected
        if not more and not self._request_done and not self._continue:
            await self._drain()  # see DRAIN_LIMIT
        self._body_done = not more
        sent = self.info.sent = self.info.sent + len(body)
        length = self._length
        if length is not None and (sent > length or (not more and sent < length)):
            raise InvalidResponse(f"response body of {sent}+ bytes, content-length {length}")
        if not self._head_sent:
            self._head_sent = True
            self._ended = end
            await self.channel.send_head(self.info.status_code or 500, self._block, body, end)
        elif body or end:
            self._ended = end
            await self.channel.send_body(body, end)

    async def _drain(self) -> None:
        """Read and drop what is left of the request body, up to DRAIN_LIMIT,
        before the response ends (not when ``Expect: 100-continue`` was
        never answered: the client must not be asked for the body)."""
        left = DRAIN_LIMIT
        channel = self.channel
        try:
            while left > 0 and not channel.body_ended():
                left -= len(await channel.read_chunk(1))
        except StreamClosed:
            return
        self._request_done = channel.body_ended()

    def _send_trailers(self, message: Message) -> None:
        if not self._trailers_expected:
            raise RuntimeError("http.response.trailers without trailers=True in the start")
        if not self._body_done:
            raise RuntimeError("http.response.trailers before the last body")
        if self._ended:
            raise RuntimeError("http.response.trailers after the response ended")
        block, _ = check_headers(message.get("headers", []))
        if any(name.startswith(b":") for name, _ in block):
            raise InvalidResponse("trailers must not contain pseudo-headers")
        self._trailers += block
        if not message.get("more_trailers", False):
            self._ended = True
            self.channel.send_trailers(self._trailers)

    def _informational(self, status: int, headers: Any) -> None:
        if not 100 <= status < 200 or status == 101:
            raise InvalidResponse(f"invalid informational status {status!r}")
        if not self._head_sent:  # ignored once the response started, as WSGI's
            self.channel.send_informational(status, check_headers(headers)[0])

    def push(self, message: Message) -> bool:
        """``http.response.push``: PUSH_PROMISE a GET of ``path`` (with the
        request's scheme and authority, and the message's headers), served
        by the app on the promised stream. Ignored where push is not
        offered (HTTP/1.1, a client that disabled it) or after the
        response's end; True if promised."""
        if "http.response.push" not in self.scope.get("extensions", {}) or self._ended:
            return False
        path = message["path"]
        if not isinstance(path, str):
            raise InvalidResponse(f"http.response.push needs a path, got {path!r}")
        scope = self.scope
        authority = next((v for n, v in scope["headers"] if n == b"host"), b"")
        extra, _ = check_headers(message.get("headers", []))
        block = promise_block(scope["scheme"].encode(), authority, scope["headers"], path, extra)
        return bool(self.channel.push(block))

    async def _pathsend(self, message: Message) -> None:
        """ASGI's path send extension: the file is read here, in blocks, under
        the same flow control as any body (the app never reads it)."""
        if not self._started or self._head_sent:
            raise RuntimeError("http.response.pathsend must follow http.response.start alone")
        path = message["path"]
        if not os.path.isabs(path):
            raise InvalidResponse(f"http.response.pathsend needs an absolute path, got {path!r}")
        with open(path, "rb") as file:
            block = file.read(PATHSEND_BLOCK)
            while True:
                following = file.read(PATHSEND_BLOCK) if block else b""
                await self._write(block, bool(following))
                if not following:
                    break
                block = following

    # -- running -------------------------------------------------------------

    async def run(self) -> None:
        """Call the app and finish its response; never raises (but for
        cancellation)."""
        try:
            await self.app(self.scope, self.receive, self.send)
        except StreamClosed:
            return  # reset by the client, timed out, or the connection went away
        except Exception:
            await self._fail()
            return
        if not self._ended:
            self.error = RuntimeError(
                "ASGI application returned without a response"
                if not self._head_sent
                else "ASGI application returned before its response was complete"
            )
            await self._fail()

    async def _fail(self) -> None:
        """The app failed: 500 if we still can, else reset the stream."""
        if self.error is None:
            self.error = sys.exc_info()[1]
        if self._ended:
            return  # the response is whole: only logged
        self._ended = True
        if self._head_sent:
            self.channel.reset(ErrorCodes.INTERNAL_ERROR)
            return
        self._head_sent = True
        try:
            reason = "Internal Server Error"
            await send_plain(self.channel, self.info, 500, reason, reason.encode())
        except StreamClosed:
            pass


async def send_plain(
    channel: AsyncChannel, info: ResponseInfo, status: int, reason: str, body: bytes
) -> None:
    """A whole text/plain response from the server itself (a 500, a 4xx the
    request policy answers), noted in ``info`` for the access log; the
    bodies are the WSGI workers'."""
    length = str(len(body))
    info.status, info.status_code, info.sent = f"{status} {reason}", status, len(body)
    info.headers = [("Content-Type", "text/plain"), ("Content-Length", length)]
    block = [(b"content-type", b"text/plain"), (b"content-length", length.encode())]
    await channel.send_head(status, block, body, True)  # an end never waits


async def rejected(channel: AsyncChannel, exc: RequestRejected) -> ResponseInfo:
    """Answer a request Gunicorn's policy refuses (414, 431, 400...)."""
    info = ResponseInfo()
    await send_plain(channel, info, exc.status, exc.reason, f"{exc.status} {exc.reason}\n".encode())
    return info


class PushExtension(dict):  # type: ignore[type-arg]
    """``scope["extensions"]["http.response.push"]``: an empty dict, as the
    ASGI spec has it (the app sends ``http.response.push`` messages), that
    may also be awaited with the message, as Hypercorn's examples do
    (``await scope["extensions"]["http.response.push"]({"path": ...})``)."""

    def __init__(self, stream: ASGIStream) -> None:
        super().__init__()
        self._stream = stream

    async def __call__(self, message: Message) -> None:
        self._stream.push(message)
