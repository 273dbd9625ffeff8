"""The ASGI mapping without sockets: ``ASGIStream`` over a recording channel,
and ``Lifespan`` against small apps."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from h2.errors import ErrorCodes

from h2workers.app.asgi.lifespan import Lifespan, LifespanFailed
from h2workers.app.asgi.runner import DRAIN_LIMIT, ASGIStream
from h2workers.errors import StreamClosed

LOG = logging.getLogger("test")


class Recorder:
    """An AsyncChannel that records what the runner sends."""

    stream_id = 1

    def __init__(self, body: list[bytes] | None = None, gone: bool = False) -> None:
        self.body = list(body or [])
        self.read = 0
        self.gone = gone
        self.sent: list[tuple[Any, ...]] = []
        self.closed = asyncio.Event()

    async def read_chunk(self, want: int = 0, ahead: int = 0) -> bytes:
        if self.gone:
            raise StreamClosed("gone")
        if not self.body:
            return b""
        chunk = self.body.pop(0)
        self.read += len(chunk)
        return chunk

    def body_ended(self) -> bool:
        return not self.body

    async def send_head(self, status: int, headers: Any, body: bytes, end: bool) -> None:
        self.sent.append(("head", status, headers, body, end))

    async def send_body(self, data: bytes, end: bool) -> None:
        self.sent.append(("body", data, end))

    def send_informational(self, status: int, headers: Any) -> None:
        self.sent.append(("1xx", status, headers))

    def send_trailers(self, headers: Any) -> None:
        self.sent.append(("trailers", headers))

    def reset(self, code: ErrorCodes) -> None:
        self.sent.append(("reset", code))

    async def wait_closed(self) -> None:
        await self.closed.wait()


def scope(method: str = "GET") -> dict[str, Any]:
    return {"type": "http", "method": method, "headers": [], "extensions": {}}


def run(app: Any, channel: Recorder, method: str = "GET") -> ASGIStream:
    stream = ASGIStream(app, channel, scope(method))
    asyncio.run(stream.run())
    return stream


async def start(send: Any, **extra: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [], **extra})


def test_the_head_waits_for_the_first_body_and_goes_with_it() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await start(send)
        await send({"type": "http.response.body", "body": b"one", "more_body": True})
        await send({"type": "http.response.body", "body": b"two"})

    channel = Recorder()
    run(app, channel)
    assert channel.sent == [("head", 200, [], b"one", False), ("body", b"two", True)]


def test_trailers_end_the_stream_when_announced() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await start(send, trailers=True)
        await send({"type": "http.response.body", "body": b"x"})
        await send({"type": "http.response.trailers", "headers": [(b"a", b"1")],
                    "more_trailers": True})  # fmt: skip
        await send({"type": "http.response.trailers", "headers": [(b"b", b"2")]})

    channel = Recorder()
    run(app, channel)
    assert channel.sent == [
        ("head", 200, [], b"x", False),
        ("trailers", [(b"a", b"1"), (b"b", b"2")]),
    ]


@pytest.mark.parametrize(
    "messages",
    [
        [{"type": "http.response.body", "body": b"x"}],  # body before start
        [{"type": "http.response.start", "status": 200}] * 2,  # start twice
        [{"type": "http.response.start", "status": 200},
         {"type": "http.response.trailers", "headers": []}],  # trailers not announced
        [{"type": "http.response.start", "status": 99}],  # invalid status
        [{"type": "http.response.start", "status": 200, "headers": [(b"x", b"a\r\nb")]}],
        [{"type": "websocket.send", "text": "hi"}],  # another protocol's message
    ],
)  # fmt: skip
def test_a_message_out_of_order_is_a_500_and_logged(messages: list[dict[str, Any]]) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        for message in messages:
            await send(message)

    channel = Recorder()
    stream = run(app, channel)
    assert stream.error is not None
    assert channel.sent[-1][:2] == ("head", 500) and channel.sent[-1][4] is True


def test_a_failure_after_the_head_resets_the_stream() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await start(send)
        await send({"type": "http.response.body", "body": b"x", "more_body": True})
        raise RuntimeError("later")

    channel = Recorder()
    stream = run(app, channel)
    assert channel.sent[-1] == ("reset", ErrorCodes.INTERNAL_ERROR)
    assert isinstance(stream.error, RuntimeError)


def test_an_app_that_returns_without_a_response_gets_a_500() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        return None

    channel = Recorder()
    stream = run(app, channel)
    assert channel.sent == [
        ("head", 500, [(b"content-type", b"text/plain"), (b"content-length", b"21")],
         b"Internal Server Error", True)
    ]  # fmt: skip
    assert "without a response" in str(stream.error)


def test_content_length_is_held_to() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await start(send, headers=[(b"content-length", b"3")])
        await send({"type": "http.response.body", "body": b"toolong"})

    channel = Recorder()
    run(app, channel)
    assert channel.sent[-1][:2] == ("head", 500)


def test_head_requests_send_no_body() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await start(send, headers=[(b"content-length", b"5")])
        await send({"type": "http.response.body", "body": b"hello"})

    channel = Recorder()
    run(app, channel, method="HEAD")
    assert channel.sent == [("head", 200, [(b"content-length", b"5")], b"", True)]


def test_receive_gives_the_body_then_waits_for_the_disconnect() -> None:
    got: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        got.append(await receive())
        got.append(await receive())
        channel.closed.set()  # the client goes away
        got.append(await receive())
        await start(send)
        await send({"type": "http.response.body"})

    channel = Recorder([b"ab", b"cd"])
    run(app, channel)
    assert got == [
        {"type": "http.request", "body": b"ab", "more_body": True},
        {"type": "http.request", "body": b"cd", "more_body": False},
        {"type": "http.disconnect"},
    ]


def test_a_reset_stream_reads_as_a_disconnect() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        assert await receive() == {"type": "http.disconnect"}

    run(app, Recorder([b"x"], gone=True))


def test_an_unread_body_is_drained_up_to_the_limit_before_the_end() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await start(send)
        await send({"type": "http.response.body", "body": b"refused"})

    small = Recorder([b"x" * 1000] * 10)
    run(app, small)
    assert small.read == 10_000 and small.body == []
    large = Recorder([b"x" * 65536] * 40)  # 2.5 MiB: past the limit
    run(app, large)
    assert DRAIN_LIMIT <= large.read < DRAIN_LIMIT + 65536


def test_pathsend_sends_the_file_in_blocks(tmp_path: Any) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"z" * 600_000)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await start(send)
        await send({"type": "http.response.pathsend", "path": str(path)})

    channel = Recorder()
    run(app, channel)
    assert b"".join(e[3] if e[0] == "head" else e[1] for e in channel.sent) == b"z" * 600_000
    assert channel.sent[-1][-1] is True and len(channel.sent) == 3


def test_early_hint_and_informational_messages_are_103s_before_the_head() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.early_hint", "links": [b"</a.css>; rel=preload"]})
        await send({"type": "http.response.informational", "status": 103,
                    "headers": [(b"link", b"</b.js>")]})  # fmt: skip
        await start(send)
        await send({"type": "http.response.body"})
        await send({"type": "http.response.informational", "status": 103, "headers": []})

    channel = Recorder()
    run(app, channel)
    assert channel.sent[:2] == [
        ("1xx", 103, [(b"link", b"</a.css>; rel=preload")]),
        ("1xx", 103, [(b"link", b"</b.js>")]),
    ]
    assert len(channel.sent) == 3  # the late one is dropped, as WSGI's early_hints


# -- lifespan ----------------------------------------------------------------------------


def _lifespan(app: Any) -> tuple[Lifespan, list[str]]:
    events: list[str] = []

    async def go() -> Lifespan:
        lifespan = Lifespan(app, LOG)
        try:
            await lifespan.startup()
            events.append("started")
        except LifespanFailed as exc:
            events.append(f"failed: {exc}")
            return lifespan
        await lifespan.shutdown()
        events.append("stopped")
        return lifespan

    return asyncio.run(go()), events


def test_lifespan_startup_state_and_shutdown() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        assert (await receive())["type"] == "lifespan.startup"
        scope["state"]["pool"] = "ready"
        await send({"type": "lifespan.startup.complete"})
        assert (await receive())["type"] == "lifespan.shutdown"
        await send({"type": "lifespan.shutdown.complete"})

    lifespan, events = _lifespan(app)
    assert events == ["started", "stopped"]
    assert lifespan.supported and lifespan.state == {"pool": "ready"}


def test_lifespan_failure_carries_the_apps_message() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "no database"})

    assert _lifespan(app)[1] == ["failed: no database"]


def test_an_app_without_lifespan_is_served_all_the_same() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        assert scope["type"] == "http", "lifespan is not supported"

    lifespan, events = _lifespan(app)
    assert events == ["started", "stopped"] and not lifespan.supported
