"""The ASGI twin of ``tests/apps.py``: the same routes, the same bodies.

Every server suite runs against AsgiH2 with this app in place of the WSGI
one (``tests/conftest.py`` swaps them), so each route answers as its WSGI
twin does: ``/environ`` shows the scope under the WSGI environ's names (what
the suites check), ``/sleep?hint=1`` sends 103 Early Hints as an
``http.response.informational`` message, ``/trailers`` uses the
``http.response.trailers`` extension. A WSGI idea with no ASGI equivalent
(``wsgi.file_wrapper``, ``close()`` of an iterable) maps to the nearest
ASGI one (``http.response.pathsend``, the task's cancellation).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

from tests.apps import CHUNK, HELLO, MIB, _write_state, big_chunk, pieces_body

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def _query(scope: Scope) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(scope["query_string"].decode("latin-1")).items()}


async def _start(send: Send, status: int, headers: list[tuple[bytes, bytes]], **extra: Any) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers, **extra})


async def _text(send: Send, body: bytes, status: int = 200) -> None:
    headers = [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(body))]
    await _start(send, status, headers)
    await send({"type": "http.response.body", "body": body})


async def _json(send: Send, value: Any, status: int = 200) -> None:
    body = json.dumps(value, sort_keys=True).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await _start(send, status, headers)
    await send({"type": "http.response.body", "body": body})


async def _body(receive: Receive) -> bytes:
    parts = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise OSError("client disconnected")
        parts.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(parts)


class _Reader:
    """``read(n)`` over receive(), as the WSGI twin's ``wsgi.input.read(n)``."""

    def __init__(self, receive: Receive) -> None:
        self.receive = receive
        self.buffer = b""
        self.done = False

    async def read(self, size: int = -1) -> bytes:
        while not self.done and (size < 0 or len(self.buffer) < size):
            message = await self.receive()
            if message["type"] == "http.disconnect":
                raise OSError("client disconnected")
            self.buffer += message.get("body", b"")
            self.done = not message.get("more_body")
        if size < 0:
            size = len(self.buffer)
        out, self.buffer = self.buffer[:size], self.buffer[size:]
        return out


async def hello(scope: Scope, receive: Receive, send: Send) -> None:
    await _text(send, HELLO)


async def pid(scope: Scope, receive: Receive, send: Send) -> None:
    await _text(send, str(os.getpid()).encode())


async def _hint(send: Send) -> None:
    await send({"type": "http.response.informational", "status": 103,
                "headers": [(b"link", b"</started>; rel=preload")]})  # fmt: skip


async def sleep(scope: Scope, receive: Receive, send: Send) -> None:
    query = _query(scope)
    if query.get("hint"):
        await _hint(send)
    await asyncio.sleep(float(query.get("s", "1")))
    await _text(send, b"slept %d\n" % os.getpid())


async def echo(scope: Scope, receive: Receive, send: Send) -> None:
    await _text(send, await _body(receive))


async def echo_chunks(scope: Scope, receive: Receive, send: Send) -> None:
    size = int(_query(scope).get("n", "7"))
    reader = _Reader(receive)
    sizes, parts = [], []
    while piece := await reader.read(size):
        sizes.append(len(piece))
        parts.append(piece)
    await _json(send, {"sizes": sizes, "body": b"".join(parts).decode("latin-1")})


def environ_like(scope: Scope) -> dict[str, Any]:
    """The scope under the WSGI environ's names (what the suites check)."""
    root = scope.get("root_path", "")
    client = scope.get("client") or ["", 0]
    out: dict[str, Any] = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": root,
        "PATH_INFO": scope["path"][len(root):],
        "QUERY_STRING": scope["query_string"].decode("latin-1"),
        "SERVER_PROTOCOL": "HTTP/2.0" if scope["http_version"] == "2" else
                           f"HTTP/{scope['http_version']}",
        "HTTP_VERSION": scope["http_version"],
        "wsgi.url_scheme": scope["scheme"],
        "REMOTE_ADDR": client[0],
        "REMOTE_PORT": str(client[1]),
        "RAW_URI": scope["raw_path"].decode("latin-1") + (
            "?" + scope["query_string"].decode("latin-1") if scope["query_string"] else ""),
    }  # fmt: skip
    for name, value in scope["headers"]:
        key = name.decode("latin-1").upper().replace("-", "_")
        if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            key = "HTTP_" + key
        text = value.decode("latin-1")
        out[key] = f"{out[key]},{text}" if key in out else text
    priority = scope.get("extensions", {}).get("http.response.priority")
    out["gunicorn.http2.priority_weight"] = priority["weight"] if priority else None
    out["gunicorn.http2.priority_depends_on"] = priority["depends_on"] if priority else None
    out["h2workers.priority"] = (
        {"urgency": priority["urgency"], "incremental": priority["incremental"]}
        if priority
        else None
    )
    return out


async def names(scope: Scope, receive: Receive, send: Send) -> None:
    """The scope's extensions."""
    await _json(send, sorted(scope["extensions"]))


async def environ_json(scope: Scope, receive: Receive, send: Send) -> None:
    query = _query(scope)
    if query.get("hint"):
        await _hint(send)
    body = await _body(receive) if query.get("read") else b""
    out = environ_like(scope)
    out["body_length"] = len(body)
    if query.get("socket"):
        out["gunicorn.socket"] = "NoneType"  # an ASGI app has no socket
    await _json(send, out)


async def big(scope: Scope, receive: Receive, send: Send) -> None:
    count = int(float(_query(scope).get("mb", "1")) * MIB) // CHUNK
    await _start(send, 200, [(b"content-type", b"application/octet-stream"),
                             (b"content-length", b"%d" % (count * CHUNK))])  # fmt: skip
    for i in range(count):
        await send({"type": "http.response.body", "body": big_chunk(i), "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def pieces(scope: Scope, receive: Receive, send: Send) -> None:
    """As the WSGI twin; ``mode=file`` and ``mode=disk`` send a file with
    ``http.response.pathsend``."""
    query = _query(scope)
    size, piece = int(query.get("bytes", "0")), max(1, int(query.get("piece", "16384")))
    body = pieces_body(size)
    headers = [(b"content-type", b"application/octet-stream")]
    if query.get("length", "1") != "0":
        headers.append((b"content-length", b"%d" % size))
    await _start(send, 200, headers)
    if query.get("mode") in ("file", "disk"):
        with tempfile.NamedTemporaryFile(delete=False) as disk:
            disk.write(body)
        try:
            await send({"type": "http.response.pathsend", "path": disk.name})
        finally:
            os.unlink(disk.name)
        return
    view = memoryview(body)
    for start in range(0, size, piece):
        chunk = bytes(view[start : start + piece])
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def upload_count(scope: Scope, receive: Receive, send: Send) -> None:
    digest = hashlib.sha256()
    count = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        piece = message.get("body", b"")
        count += len(piece)
        digest.update(piece)
        if not message.get("more_body"):
            break
    await _json(send, {"count": count, "sha256": digest.hexdigest()})


async def read_then_stall(scope: Scope, receive: Receive, send: Send) -> None:
    query = _query(scope)
    got = await _Reader(receive).read(int(query.get("n", "0")))
    await _start(send, 200, [(b"content-type", b"text/plain")])
    await send({"type": "http.response.body", "body": b"%d\n" % len(got), "more_body": True})
    await asyncio.sleep(float(query.get("s", "5")))
    await send({"type": "http.response.body", "body": b"done\n"})


async def early_hints(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.informational", "status": 103,
                "headers": [(b"link", b"</style.css>; rel=preload; as=style")]})  # fmt: skip
    await _text(send, b"after hints\n")


async def trailers(scope: Scope, receive: Receive, send: Send) -> None:
    await _start(send, 200, [(b"content-type", b"text/plain"),
                             (b"trailer", b"x-checksum, x-count")], trailers=True)  # fmt: skip
    await send({"type": "http.response.body", "body": b"part one\n", "more_body": True})
    await send({"type": "http.response.body", "body": b"part two\n"})
    await send({"type": "http.response.trailers",
                "headers": [(b"x-checksum", b"abc123"), (b"x-count", b"2")]})  # fmt: skip


async def error(scope: Scope, receive: Receive, send: Send) -> None:
    raise RuntimeError("boom (expected by the test)")


async def error_after_start(scope: Scope, receive: Receive, send: Send) -> None:
    await _start(send, 200, [(b"content-type", b"text/plain")])
    await send({"type": "http.response.body", "body": b"first chunk\n", "more_body": True})
    raise RuntimeError("boom after the response started (expected by the test)")


async def close_tracker(scope: Scope, receive: Receive, send: Send) -> None:
    """A long response; what it sent goes to ``closed-<id>`` when it ends
    (the client's reset raises OSError in ``send``)."""
    name = _query(scope).get("id", "default")
    if not name.isalnum():
        await _text(send, b"bad id\n", 400)
        return
    _write_state(f"started-{name}", str(os.getpid()))
    sent = 0
    try:
        await _start(send, 200, [(b"content-type", b"application/octet-stream")])
        for i in range(4096):
            sent += 1
            await send({"type": "http.response.body", "body": big_chunk(i), "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    finally:
        _write_state(f"closed-{name}", str(sent))


async def headers(scope: Scope, receive: Receive, send: Send) -> None:
    found = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
    await _json(send, found)


async def ticker(scope: Scope, receive: Receive, send: Send) -> None:
    query = _query(scope)
    name = query.get("id", "default")
    if not name.isalnum():
        await _text(send, b"bad id\n", 400)
        return
    n, dt = int(query.get("n", "1000")), float(query.get("dt", "0.02"))
    produced = 0
    _write_state(f"ticks-{name}", "0")
    try:
        await _start(send, 200, [(b"content-type", b"application/octet-stream")])
        for _ in range(n):
            await asyncio.sleep(dt)
            produced += 1
            _write_state(f"ticks-{name}", str(produced))
            await send({"type": "http.response.body", "body": b"t" * 1024, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    finally:
        _write_state(f"closed-{name}", str(produced))


async def once(scope: Scope, receive: Receive, send: Send) -> None:
    query = _query(scope)
    name, hold = query.get("id", "default"), query.get("hold", "")
    if not name.isalnum() or (hold and not hold.isalnum()):
        await _text(send, b"bad id\n", 400)
        return
    state_dir = os.environ["H2W_STATE_DIR"]
    with open(os.path.join(state_dir, f"once-{name}"), "a") as f:
        f.write(f"{os.getpid()}\n")
    if hold:  # the test creates release-<hold> when these may finish
        release = os.path.join(state_dir, f"release-{hold}")
        deadline = time.monotonic() + 30
        while not os.path.exists(release) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
    await asyncio.sleep(float(query.get("s", "0")))
    await _text(send, f"{name} {os.getpid()}".encode())


async def upload_record(scope: Scope, receive: Receive, send: Send) -> None:
    """Reads the body; what ended the reading goes to ``upload-<id>``. A
    disconnect is ASGI's ``http.disconnect`` message, recorded as the
    OSError the WSGI twin sees."""
    name = _query(scope).get("id", "default")
    if not name.isalnum():
        await _text(send, b"bad id\n", 400)
        return
    count = 0
    _write_state(f"reading-{name}", "1")
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            record = {"type": "http.disconnect", "mro": [], "oserror": True, "read": count}
            _write_state(f"upload-{name}", json.dumps(record))
            return
        count += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    _write_state(f"upload-{name}", json.dumps({"type": None, "read": count}))
    await _json(send, {"count": count})


async def fault(scope: Scope, receive: Receive, send: Send) -> None:
    """Application mistakes, by ``kind``, in their ASGI forms."""
    query = _query(scope)
    kind = query.get("kind", "")
    plain = [(b"content-type", b"text/plain")]
    if kind == "raise":
        raise RuntimeError("raised before the response (expected by the test)")
    if kind in ("bad-status", "bad-status-code"):
        await _start(send, 2000, plain)
    elif kind == "bad-header-value":
        await _start(send, 200, [(b"x-split", b"a\r\nx-injected: 1")])
    elif kind == "str-body":
        await _start(send, 200, plain)
        await send({"type": "http.response.body", "body": "text, not bytes"})
    elif kind == "twice":
        await _start(send, 200, plain)
        await _start(send, 201, plain)
    elif kind == "short":  # the head goes out with the first piece, then the end comes short
        await _start(send, 200, [*plain, (b"content-length", b"100")])
        await send({"type": "http.response.body", "body": b"only ten b", "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    elif kind == "never-responds":
        return
    else:
        await _text(send, b"unknown kind\n", 400)


async def scope_json(scope: Scope, receive: Receive, send: Send) -> None:
    """ASGI only: the scope's extensions and lifespan state, as JSON."""
    extensions = scope.get("extensions", {})
    await _json(send, {
        "extensions": sorted(extensions),
        "tls": extensions.get("tls"),
        "state": scope.get("state"),
        "http_version": scope["http_version"],
        "asgi": scope["asgi"],
    })  # fmt: skip


async def wait_disconnect(scope: Scope, receive: Receive, send: Send) -> None:
    """ASGI only: streams slowly while a second task awaits the disconnect
    (as Starlette's StreamingResponse does), then records what ended it."""
    name = _query(scope).get("id", "x")
    await _start(send, 200, [(b"content-type", b"text/plain")])

    async def listen() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        _write_state(f"disconnect-{name}", "1")

    listener = asyncio.ensure_future(listen())
    try:
        for _ in range(600):
            await send({"type": "http.response.body", "body": b"tick\n", "more_body": True})
            await asyncio.sleep(0.05)
    except OSError as exc:
        _write_state(f"send-failed-{name}", type(exc).__name__)
    finally:
        await asyncio.wait([listener], timeout=5)


async def push(scope: Scope, receive: Receive, send: Send) -> None:
    """ASGI only: promises ``/hello`` and ``/pieces?bytes=1000`` (``n``
    more of /hello with ``n=``), by message or (``call=1``) by awaiting the
    extension as Hypercorn's examples do; says whether push was offered."""
    query = _query(scope)
    offered = "http.response.push" in scope["extensions"]
    paths = [
        "/hello",
        f"/pieces?bytes={query.get('size', '1000')}",
        *["/hello"] * int(query.get("n", "0")),
    ]
    for path in paths if offered else []:
        message = {"type": "http.response.push", "path": path, "headers": [(b"x-pushed", b"1")]}
        if query.get("call"):
            await scope["extensions"]["http.response.push"](message)
        else:
            await send(message)
    await _start(send, 200, [(b"x-push-offered", b"yes" if offered else b"no")])
    await send({"type": "http.response.body", "body": b"page\n"})


ROUTES: dict[str, Callable[[Scope, Receive, Send], Awaitable[None]]] = {
    "/": hello,
    "/hello": hello,
    "/pid": pid,
    "/sleep": sleep,
    "/echo": echo,
    "/echo-chunks": echo_chunks,
    "/environ": environ_json,
    "/names": names,
    "/big": big,
    "/pieces": pieces,
    "/upload-count": upload_count,
    "/read-then-stall": read_then_stall,
    "/early-hints": early_hints,
    "/trailers": trailers,
    "/error": error,
    "/error-after-start": error_after_start,
    "/close-tracker": close_tracker,
    "/headers": headers,
    "/ticker": ticker,
    "/once": once,
    "/upload-record": upload_record,
    "/fault": fault,
    "/scope": scope_json,
    "/wait-disconnect": wait_disconnect,
    "/push": push,
}


async def websocket(scope: Scope, receive: Receive, send: Send) -> None:
    """ASGI only (``/ws``): an echo. It accepts with the ``chat`` subprotocol
    when offered; ``?deny=1`` answers 401 with a body instead; text
    ``close`` closes with 4000; ``raise`` raises (1011); ``big`` sends 1 MiB."""
    assert (await receive())["type"] == "websocket.connect"
    if _query(scope).get("deny"):
        await send({"type": "websocket.http.response.start", "status": 401,
                    "headers": [(b"content-type", b"text/plain")]})  # fmt: skip
        await send({"type": "websocket.http.response.body", "body": b"no entry\n"})
        return
    chat = "chat" if "chat" in scope["subprotocols"] else None
    await send({"type": "websocket.accept", "subprotocol": chat,
                "headers": [(b"x-ws", b"yes")]})  # fmt: skip
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            _write_state(f"ws-disconnect-{_query(scope).get('id', 'x')}", str(message["code"]))
            return
        text = message.get("text")
        if text == "close":
            await send({"type": "websocket.close", "code": 4000, "reason": "asked"})
            return
        if text == "raise":
            raise RuntimeError("raised in a WebSocket (expected by the test)")
        if text == "big":
            await send({"type": "websocket.send", "bytes": b"b" * MIB})
            continue
        if text == "scope":
            shown = {k: scope[k] for k in ("scheme", "path", "http_version", "subprotocols")}
            shown["extensions"] = sorted(scope["extensions"])
            await send({"type": "websocket.send", "text": json.dumps(shown)})
            continue
        await send(
            {
                "type": "websocket.send",
                **{k: v for k, v in message.items() if k in ("text", "bytes") and v is not None},
            }
        )


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "websocket":
        await websocket(scope, receive, send)
        return
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            scope["state"]["started_by"] = "lifespan"
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    path = scope["path"][len(scope.get("root_path", "")) :]
    route = ROUTES.get(path)
    if route is None and path.startswith("/environ/"):
        route = environ_json
    if route is None:
        await _text(send, b"not found\n", 404)
        return
    await route(scope, receive, send)
