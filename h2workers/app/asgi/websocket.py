"""The ASGI ``websocket`` scope over a byte stream, with wsproto's framing.

Protocol-neutral: ``ASGIWebSocket`` frames and unframes WebSocket messages
(RFC 6455) with ``wsproto`` and reaches the connection through a
``WebSocketTransport``: after an HTTP/1.1 ``Upgrade: websocket`` (101, then
the socket's bytes) or, later, an RFC 8441 extended CONNECT stream (200,
then DATA frames). The app sees ASGI's messages: ``websocket.connect``,
``accept`` (subprotocol, headers), ``receive``/``send`` (text or bytes,
fragments reassembled), ``close``, ``disconnect``, and the
``websocket.http.response`` extension to deny with an HTTP response.
Messages past ``websocket_max_message_size`` close with 1009; a ping every
``websocket_ping_interval`` seconds unanswered for ``websocket_ping_timeout``
closes with 1011.
"""

from __future__ import annotations

import asyncio
import enum
import os
import sys
import time
from collections.abc import MutableMapping
from typing import Any, Protocol

from wsproto.connection import Connection, ConnectionType
from wsproto.events import (
    BytesMessage,
    CloseConnection,
    Message,
    Ping,
    Pong,
    TextMessage,
)
from wsproto.frame_protocol import CloseReason

from h2workers.app.asgi.runner import ASGIApp, Scope
from h2workers.app.request import ResponseInfo
from h2workers.app.response import check_headers
from h2workers.config import WebSocketSettings
from h2workers.errors import InvalidResponse, StreamClosed
from h2workers.proto.headers import Header


class WebSocketTransport(Protocol):
    """A WebSocket's connection, as the protocol under it provides it."""

    async def accept(self, subprotocol: str | None, headers: list[Header]) -> None:
        """Answer the opening handshake (101, or 200 on an HTTP/2 stream)."""

    async def deny(self, status: int, headers: list[Header], body: bytes, end: bool) -> None:
        """An HTTP response instead of the WebSocket (its head with the
        first body, then more with ``status`` 0)."""

    async def read(self) -> bytes:
        """The next bytes from the client; b"" once it is gone."""

    async def write(self, data: bytes) -> None: ...

    def close(self) -> None: ...


class _State(enum.Enum):
    CONNECTING = "connecting"  # the app has not answered the handshake
    DENYING = "denying"  # websocket.http.response.start sent, body follows
    OPEN = "open"
    CLOSED = "closed"


class ASGIWebSocket:
    """Serves one WebSocket: call the app, frame what it sends."""

    def __init__(
        self,
        app: ASGIApp,
        transport: WebSocketTransport,
        scope: Scope,
        settings: WebSocketSettings,
    ) -> None:
        self.app = app
        self.transport = transport
        self.scope = scope
        self.settings = settings
        self.info = ResponseInfo()  # the access log's: 101, or the denial
        self.error: BaseException | None = None
        self._conn = Connection(ConnectionType.SERVER)
        self._state = _State.CONNECTING
        self._connect_sent = False
        self._deny_head: tuple[int, list[Header]] | None = None
        self._parts: list[Any] = []  # a message's fragments so far
        self._size = 0
        self._closed_by: dict[str, Any] | None = None  # the disconnect, once known
        self._pong_at = time.monotonic()
        self._pinger: asyncio.Task[None] | None = None

    # -- receive -------------------------------------------------------------

    async def receive(self) -> MutableMapping[str, Any]:
        if not self._connect_sent:
            self._connect_sent = True
            return {"type": "websocket.connect"}
        if self._state is _State.CONNECTING:
            raise RuntimeError("websocket receive() before websocket.accept")
        while (closed := self._closed_by) is None:
            for event in self._conn.events():
                message = await self._on_event(event)
                if message is not None:
                    return message
                if self._closed_by is not None:
                    break
            else:
                data = await self.transport.read()
                if not data:  # gone without a close frame: RFC 6455 7.1.5 says 1006
                    self._gone(CloseReason.ABNORMAL_CLOSURE, "")
                    continue
                self._conn.receive_data(data)
        return closed

    async def _on_event(self, event: Any) -> dict[str, Any] | None:
        if isinstance(event, (TextMessage, BytesMessage)):
            return await self._on_fragment(event)
        if isinstance(event, Ping):
            await self._write(self._conn.send(event.response()))
        elif isinstance(event, Pong):
            self._pong_at = time.monotonic()
        elif isinstance(event, CloseConnection):
            if self._state is _State.OPEN:
                try:
                    await self._write(self._conn.send(event.response()))
                except OSError:  # StreamClosed included: the client is gone already
                    pass
            self._gone(event.code, event.reason or "")
        return None

    async def _on_fragment(self, event: Message[Any]) -> dict[str, Any] | None:
        self._parts.append(event.data)
        self._size += len(event.data)
        if self._size > self.settings.max_message_size:
            await self._close(CloseReason.MESSAGE_TOO_BIG, "message too big")
            return None
        if not event.message_finished:
            return None
        text = isinstance(event, TextMessage)
        data = "".join(self._parts) if text else b"".join(self._parts)
        self._parts, self._size = [], 0
        return {"type": "websocket.receive", "text" if text else "bytes": data}

    def _gone(self, code: int, reason: str) -> None:
        self._state = _State.CLOSED
        self._closed_by = {"type": "websocket.disconnect", "code": code, "reason": reason}
        self.transport.close()

    # -- send ----------------------------------------------------------------

    async def send(self, message: MutableMapping[str, Any]) -> None:
        kind = message["type"]
        state = self._state
        if kind == "websocket.send" and state is _State.OPEN:
            text, data = message.get("text"), message.get("bytes")
            payload: Message[Any]
            if text is not None and data is None:
                payload = TextMessage(data=str(text))
            elif data is not None and text is None:
                payload = BytesMessage(data=bytes(data))
            else:
                raise RuntimeError("websocket.send needs one of text and bytes")
            await self._write(self._conn.send(payload))
        elif kind == "websocket.accept" and state is _State.CONNECTING:
            await self._accept(message)
        elif kind == "websocket.close" and state in (_State.CONNECTING, _State.OPEN):
            if state is _State.CONNECTING:  # ASGI: closing before accepting is a 403
                await self._deny(403, [], b"", True)
            else:
                await self._close(message.get("code", 1000), message.get("reason") or "")
        elif kind == "websocket.http.response.start" and state is _State.CONNECTING:
            block, _ = check_headers(message.get("headers", []))
            self._deny_head = (int(message["status"]), block)
            self._state = _State.DENYING
        elif kind == "websocket.http.response.body" and state is _State.DENYING:
            await self._deny_body(message)
        elif state is _State.CLOSED:
            raise StreamClosed("the WebSocket is closed")
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r} in state {state.value}")

    async def _accept(self, message: MutableMapping[str, Any]) -> None:
        subprotocol = message.get("subprotocol")
        offered = self.scope.get("subprotocols", [])
        if subprotocol is not None and subprotocol not in offered:
            raise InvalidResponse(f"subprotocol {subprotocol!r} was not offered: {offered}")
        headers, _ = check_headers(message.get("headers", []))
        self._state = _State.OPEN
        self.info.status, self.info.status_code = "101 Switching Protocols", 101
        await self.transport.accept(subprotocol, headers)
        if self.settings.ping_interval > 0:
            self._pinger = asyncio.get_running_loop().create_task(self._keepalive())

    async def _deny_body(self, message: MutableMapping[str, Any]) -> None:
        assert self._deny_head is not None
        body = bytes(message.get("body", b""))
        more = bool(message.get("more_body", False))
        status, headers = self._deny_head
        await self._deny(status, headers, body, not more)
        self._deny_head = (0, [])  # the head went out: status 0 means more body

    async def _deny(self, status: int, headers: list[Header], body: bytes, end: bool) -> None:
        if status:
            self.info.status, self.info.status_code = str(status), status
        self.info.sent += len(body)
        await self.transport.deny(status, headers, body, end)
        if end:
            self._state = _State.CLOSED
            self._closed_by = {"type": "websocket.disconnect", "code": 1000, "reason": ""}

    async def _close(self, code: int, reason: str) -> None:
        """Our close frame, then the connection ends (the client's close
        frame need not be waited for: RFC 6455 7.1.1 lets the server close)."""
        if self._state is _State.OPEN:
            self._state = _State.CLOSED
            try:
                await self._write(self._conn.send(CloseConnection(code=code, reason=reason)))
            except OSError:
                pass
        self._gone(code, reason)

    async def _write(self, data: bytes) -> None:
        if data:
            await self.transport.write(data)

    async def _keepalive(self) -> None:
        """A ping every ``ping_interval``; no pong within ``ping_timeout``: 1011."""
        settings = self.settings
        while self._state is _State.OPEN:
            await asyncio.sleep(settings.ping_interval)
            if self._state is not _State.OPEN:
                return
            sent = time.monotonic()
            await self._write(self._conn.send(Ping(payload=os.urandom(4))))
            if settings.ping_timeout > 0:
                await asyncio.sleep(settings.ping_timeout)
                if self._state is _State.OPEN and self._pong_at < sent:
                    await self._close(CloseReason.INTERNAL_ERROR, "no pong")
                    return

    # -- running -------------------------------------------------------------

    async def run(self) -> None:
        """Call the app; never raises (but for cancellation)."""
        try:
            await self.app(self.scope, self.receive, self.send)
        except StreamClosed:
            pass
        except Exception:
            self.error = sys.exc_info()[1]
        finally:
            if self._pinger is not None:
                self._pinger.cancel()
        try:
            await self._finish()
        except (StreamClosed, OSError):
            pass

    async def _finish(self) -> None:
        """What the app left undone: a 500 or 403 for a handshake it never
        answered, a close frame (1011 after an error, else 1000) for an open
        WebSocket, the end of a denial's body."""
        state = self._state
        if state is _State.CONNECTING:
            status = 500 if self.error is not None else 403
            await self._deny(status, [(b"content-length", b"0")], b"", True)
        elif state is _State.DENYING:
            head = self._deny_head
            await self._deny(head[0] if head else 0, head[1] if head else [], b"", True)
        elif state is _State.OPEN:
            code = CloseReason.INTERNAL_ERROR if self.error is not None else 1000
            await self._close(code, "")


def websocket_scope(http_scope: Scope) -> Scope:
    """The ``websocket`` scope from the ``http`` scope the request policy
    built: ws/wss, the offered subprotocols, the denial extension."""
    scope = dict(http_scope)
    del scope["method"]
    scope["type"] = "websocket"
    scope["scheme"] = "wss" if http_scope["scheme"] == "https" else "ws"
    offered = b",".join(v for n, v in http_scope["headers"] if n == b"sec-websocket-protocol")
    scope["subprotocols"] = [p.strip() for p in offered.decode("latin-1").split(",") if p.strip()]
    extensions = {
        name: value
        for name, value in http_scope.get("extensions", {}).items()
        if name == "tls"  # the http.response.* ones do not apply
    }
    extensions["websocket.http.response"] = {}
    scope["extensions"] = extensions
    return scope


class StreamWebSocket:
    """A WebSocket on an HTTP/2 stream (RFC 8441 extended CONNECT): 200 with
    the handshake's answer, then WebSocket frames in DATA both ways; the
    WebSocket's end is the stream's END_STREAM."""

    def __init__(self, channel: Any) -> None:
        self.channel = channel  # session.channel.AsyncChannel

    async def accept(self, subprotocol: str | None, headers: list[Header]) -> None:
        block = [(n, v) for n, v in headers if n != b"sec-websocket-protocol"]
        if subprotocol is not None:
            block.insert(0, (b"sec-websocket-protocol", subprotocol.encode()))
        await self.channel.send_head(200, block, b"", False)

    async def deny(self, status: int, headers: list[Header], body: bytes, end: bool) -> None:
        if status:
            await self.channel.send_head(status, headers, body, end)
        else:
            await self.channel.send_body(body, end)

    async def read(self) -> bytes:
        try:
            return await self.channel.read_chunk(1)  # type: ignore[no-any-return]
        except StreamClosed:
            return b""

    async def write(self, data: bytes) -> None:
        await self.channel.send_body(data, False)

    def close(self) -> None:
        self.channel.end()
