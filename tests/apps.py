"""The WSGI application the end-to-end tests run under real Gunicorn processes.

Every route is meant to be driven over both HTTP/1.1 and HTTP/2 so that tests
can compare the two. State a test must observe from outside the server (an
iterable's ``close()``) is written as files into ``$H2W_STATE_DIR``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import struct
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import parse_qs

CHUNK = 64 * 1024
MIB = 1024 * 1024
_BASE = hashlib.shake_256(b"h2workers e2e").digest(CHUNK)
HELLO = b"Hello, world!\n"

StartResponse = Callable[..., Any]


def big_chunk(index: int) -> bytes:
    """The index-th 64 KiB chunk of /big: deterministic and position dependent."""
    return struct.pack(">Q", index) + _BASE[8:]


def big_sha256(mib: int) -> str:
    digest = hashlib.sha256()
    for i in range(mib * MIB // CHUNK):
        digest.update(big_chunk(i))
    return digest.hexdigest()


def _query(environ: dict[str, Any]) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}


def _json(start_response: StartResponse, value: Any, status: str = "200 OK") -> list[bytes]:
    body = json.dumps(value, sort_keys=True).encode()
    start_response(
        status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    )
    return [body]


def _text(start_response: StartResponse, body: bytes, status: str = "200 OK") -> list[bytes]:
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def _state_file(name: str) -> str:
    directory = os.environ["H2W_STATE_DIR"]
    return os.path.join(directory, name)


def hello(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    return _text(start_response, HELLO)


def pid(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    return _text(start_response, str(os.getpid()).encode())


def sleep(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    query = _query(environ)
    if query.get("hint"):  # tells the client the app is running
        environ["wsgi.early_hints"]([("Link", "</started>; rel=preload")])
    time.sleep(float(query.get("s", "1")))
    return _text(start_response, b"slept %d\n" % os.getpid())


def echo(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    body = environ["wsgi.input"].read()
    return _text(start_response, body)


def echo_chunks(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    size = int(_query(environ).get("n", "7"))
    stream = environ["wsgi.input"]
    sizes, parts = [], []
    while True:
        piece = stream.read(size)
        if not piece:
            break
        sizes.append(len(piece))
        parts.append(piece)
    return _json(start_response, {"sizes": sizes, "body": b"".join(parts).decode("latin-1")})


def lines(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """A mix of readline(), readline(n), read(n) and iteration on one body."""
    stream = environ["wsgi.input"]
    steps = [
        ["readline", stream.readline()],
        ["readline(5)", stream.readline(5)],
        ["read(3)", stream.read(3)],
        ["readline(0)", stream.readline(0)],
        ["readline", stream.readline()],
    ]
    steps += [["iter", line] for line in stream]
    steps.append(["read", stream.read()])
    steps.append(["readline-at-eof", stream.readline()])
    return _json(start_response, [[op, data.decode("latin-1")] for op, data in steps])


def environ_json(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    query = _query(environ)
    if query.get("hint"):
        environ["wsgi.early_hints"]([("Link", "</started>; rel=preload")])
    body = environ["wsgi.input"].read() if query.get("read") else b""
    out = {k: v for k, v in environ.items() if isinstance(v, str)}
    for key in (
        "gunicorn.http2.priority_weight",
        "gunicorn.http2.priority_depends_on",
        "h2workers.priority",
    ):
        out[key] = environ.get(key)
    out["body_length"] = len(body)
    if query.get("socket"):
        out["gunicorn.socket"] = type(environ.get("gunicorn.socket", "missing")).__name__
    return _json(start_response, out)


def names(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """The environ keys beyond CGI's (they hold a dot)."""
    return _json(start_response, sorted(key for key in environ if "." in key))


def big(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    count = int(float(_query(environ).get("mb", "1")) * MIB) // CHUNK
    start_response(
        "200 OK",
        [("Content-Type", "application/octet-stream"), ("Content-Length", str(count * CHUNK))],
    )
    return (big_chunk(i) for i in range(count))


_PATTERN = hashlib.shake_256(b"h2workers pieces").digest(65521)  # a prime length


def pieces_body(size: int) -> bytes:
    """The body of ``/pieces?bytes=size``: position dependent, so a lost,
    doubled or reordered piece changes its hash."""
    whole, rest = divmod(size, len(_PATTERN))
    return _PATTERN * whole + _PATTERN[:rest]


def pieces(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """``bytes`` of body in pieces of ``piece`` bytes, the shapes real apps
    produce: a generator (``mode=iter``, the default), ``write()`` calls
    (``mode=write``) or ``wsgi.file_wrapper`` over a file (``mode=file``,
    ``piece`` is its block size; ``mode=disk`` over a real file, which
    Gunicorn's HTTP/1.1 sends with ``socket.sendfile``). ``length=0`` leaves
    Content-Length out."""
    query = _query(environ)
    size, piece = int(query.get("bytes", "0")), max(1, int(query.get("piece", "16384")))
    body = pieces_body(size)
    headers = [("Content-Type", "application/octet-stream")]
    if query.get("length", "1") != "0":
        headers.append(("Content-Length", str(size)))
    mode = query.get("mode", "iter")
    if mode == "file":
        start_response("200 OK", headers)
        return environ["wsgi.file_wrapper"](io.BytesIO(body), piece)  # type: ignore[no-any-return]
    if mode == "disk":
        start_response("200 OK", headers)
        disk = tempfile.TemporaryFile()  # noqa: SIM115 (the server closes it)
        disk.write(body)
        disk.seek(0)
        return environ["wsgi.file_wrapper"](disk, piece)  # type: ignore[no-any-return]
    if mode == "write":
        write = start_response("200 OK", headers)
        view = memoryview(body)
        for start in range(0, size, piece):
            write(bytes(view[start : start + piece]))
        return []
    start_response("200 OK", headers)
    return (body[start : start + piece] for start in range(0, size, piece))


def upload_count(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    stream = environ["wsgi.input"]
    digest = hashlib.sha256()
    count = 0
    while True:
        piece = stream.read(CHUNK)
        if not piece:
            break
        count += len(piece)
        digest.update(piece)
    return _json(start_response, {"count": count, "sha256": digest.hexdigest()})


def read_then_stall(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """A slow reader: one ``read(n)``, a line saying how much it got, then
    ``s`` seconds without reading."""
    query = _query(environ)
    got = environ["wsgi.input"].read(int(query.get("n", "0")))
    start_response("200 OK", [("Content-Type", "text/plain")])

    def body() -> Iterator[bytes]:
        yield b"%d\n" % len(got)
        time.sleep(float(query.get("s", "5")))
        yield b"done\n"

    return body()


def early_hints(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    environ["wsgi.early_hints"]([("Link", "</style.css>; rel=preload; as=style")])
    return _text(start_response, b"after hints\n")


def trailers(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("Trailer", "x-checksum, x-count")])

    def body() -> Iterator[bytes]:
        yield b"part one\n"
        yield b"part two\n"
        environ["gunicorn.http2.send_trailers"]([("x-checksum", "abc123"), ("x-count", "2")])

    return body()


def error(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    raise RuntimeError("boom (expected by the test)")


def error_after_start(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])

    def body() -> Iterator[bytes]:
        yield b"first chunk\n"
        raise RuntimeError("boom after the response started (expected by the test)")

    return body()


class CloseTracker:
    """A long response whose close() leaves a file behind."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.sent = 0
        _write_state(f"started-{name}", str(os.getpid()))

    def __iter__(self) -> Iterator[bytes]:
        for i in range(4096):  # 256 MiB at most: a client reset ends it first
            self.sent += 1
            yield big_chunk(i)

    def close(self) -> None:
        _write_state(f"closed-{self.name}", str(self.sent))


def close_tracker(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    name = _query(environ).get("id", "default")
    if not name.isalnum():
        return _text(start_response, b"bad id\n", "400 Bad Request")
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return CloseTracker(name)


def headers(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    found = {
        key[5:].replace("_", "-").lower(): value
        for key, value in environ.items()
        if key.startswith("HTTP_")
    }
    for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if key in environ:
            found[key.replace("_", "-").lower()] = environ[key]
    return _json(start_response, found)


def push(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """Promises ``/hello`` and ``/pieces?bytes=1000`` (``n`` more of /hello
    with ``n=``) through ``gunicorn.http2.push``; says whether the first
    promise was made (the twin of asgi_apps.push)."""
    promise = environ.get("gunicorn.http2.push")
    query = _query(environ)
    paths = [
        "/hello",
        f"/pieces?bytes={query.get('size', '1000')}",
        *["/hello"] * int(query.get("n", "0")),
    ]
    made = [promise(path, [("x-pushed", "1")]) for path in paths] if promise else [False]
    start_response("200 OK", [("X-Push-Offered", "yes" if made[0] else "no")])
    return [b"page\n"]


PRELOADED = ["</hello>; rel=preload; as=fetch", "<https://cdn.example/x.js>; rel=preload"]


def preload(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """``h2workers.preload`` of a same-origin and a cross-origin link."""
    how = environ["h2workers.preload"](PRELOADED)
    start_response("200 OK", [("X-Preload", how)])
    return [b"page\n"]


ROUTES: dict[str, Callable[[dict[str, Any], StartResponse], Iterable[bytes]]] = {
    "/": hello,
    "/hello": hello,
    "/pid": pid,
    "/sleep": sleep,
    "/echo": echo,
    "/echo-chunks": echo_chunks,
    "/lines": lines,
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
    "/push": push,
    "/preload": preload,
}


def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    path = environ.get("PATH_INFO", "")
    route = ROUTES.get(path)
    if route is None and path.startswith("/environ/"):
        route = environ_json  # any path below /environ, for PATH_INFO checks
    if route is None:
        return _text(start_response, b"not found\n", "404 Not Found")
    return route(environ, start_response)


# -- routes for tests/attacks and tests/faults ----------------------------------------


def _write_state(name: str, text: str) -> None:
    """Write a state file in one go (readers poll for it)."""
    path = _state_file(name)
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


class Ticker:
    """A slow response: ``n`` 1 KiB chunks, ``dt`` seconds apart. Records how
    far it got (``ticks-<id>``) after every chunk and, in close(), the
    final count (``closed-<id>``)."""

    def __init__(self, name: str, n: int, dt: float) -> None:
        self.name, self.n, self.dt = name, n, dt
        self.produced = 0
        _write_state(f"ticks-{name}", "0")

    def __iter__(self) -> Iterator[bytes]:
        for _ in range(self.n):
            time.sleep(self.dt)
            self.produced += 1
            _write_state(f"ticks-{self.name}", str(self.produced))
            yield b"t" * 1024

    def close(self) -> None:
        _write_state(f"closed-{self.name}", str(self.produced))


def ticker(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    query = _query(environ)
    name = query.get("id", "default")
    if not name.isalnum():
        return _text(start_response, b"bad id\n", "400 Bad Request")
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return Ticker(name, int(query.get("n", "1000")), float(query.get("dt", "0.02")))


def once(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """Counts its executions per id (one line each in ``once-<id>``), then
    waits for the test to create ``release-<hold>`` (when asked), then sleeps."""
    query = _query(environ)
    name, hold = query.get("id", "default"), query.get("hold", "")
    if not name.isalnum() or (hold and not hold.isalnum()):
        return _text(start_response, b"bad id\n", "400 Bad Request")
    with open(_state_file(f"once-{name}"), "a") as f:
        f.write(f"{os.getpid()}\n")
    if hold:
        release = _state_file(f"release-{hold}")
        deadline = time.monotonic() + 30
        while not os.path.exists(release) and time.monotonic() < deadline:
            time.sleep(0.01)
    time.sleep(float(query.get("s", "0")))
    return _text(start_response, f"{name} {os.getpid()}".encode())


def upload_record(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """Reads the body; what ended the reading goes to ``upload-<id>`` as JSON."""
    name = _query(environ).get("id", "default")
    if not name.isalnum():
        return _text(start_response, b"bad id\n", "400 Bad Request")
    stream = environ["wsgi.input"]
    count = 0
    _write_state(f"reading-{name}", "1")
    try:
        while True:
            piece = stream.read(16384)
            if not piece:
                break
            count += len(piece)
    except BaseException as exc:
        record = {
            "type": type(exc).__name__,
            "mro": [k.__name__ for k in type(exc).__mro__],
            "oserror": isinstance(exc, OSError),
            "read": count,
        }
        _write_state(f"upload-{name}", json.dumps(record))
        raise
    _write_state(f"upload-{name}", json.dumps({"type": None, "read": count}))
    return _json(start_response, {"count": count})


class _ClosedLoudly:
    """An iterable whose close() raises."""

    def __iter__(self) -> Iterator[bytes]:
        yield b"fine\n"

    def close(self) -> None:
        raise RuntimeError("close() failed (expected by the test)")


def _stubborn(name: str) -> Iterator[bytes]:
    """A generator that refuses to close: it ignores GeneratorExit."""
    sent = 0
    while True:
        try:
            time.sleep(0.01)
            sent += 1
            yield b"s" * 1024
        except GeneratorExit:
            _write_state(f"stubborn-{name}", str(sent))
            yield b"still here"  # close() now raises RuntimeError


def _endless(name: str) -> Iterator[bytes]:
    """Yields forever (a leaked iterable); finally records that it was closed."""
    count = 0
    try:
        while True:
            count += 1
            yield b"e" * 1024
    finally:
        _write_state(f"endless-{name}", str(count))


def fault(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """Application mistakes, by ``kind``; see tests/faults/test_app_faults.py."""
    query = _query(environ)
    kind = query.get("kind", "")
    name = query.get("id", "x")
    if not name.isalnum():
        return _text(start_response, b"bad id\n", "400 Bad Request")
    plain = [("Content-Type", "text/plain")]
    if kind == "raise":
        raise RuntimeError("raised before start_response (expected by the test)")
    if kind == "bad-status":
        start_response("OK", plain)
        return [b"never sent"]
    if kind == "bad-status-code":
        start_response("2000 Too Big", plain)
        return [b"never sent"]
    if kind == "bad-header-value":
        start_response("200 OK", [("X-Split", "a\r\nx-injected: 1")])
        return [b"never sent"]
    if kind == "str-body":
        start_response("200 OK", plain)
        return iter(["text, not bytes"])  # type: ignore[list-item]
    if kind == "twice":  # start_response again without exc_info
        start_response("200 OK", plain)
        start_response("201 Created", plain)
        return [b"never sent"]
    if kind == "exc-info-after-head":  # misuse: the head went out already
        write = start_response("200 OK", plain)
        write(b"head and first bytes\n")
        try:
            raise ValueError("failure after the head (expected by the test)")
        except ValueError:
            start_response("500 Internal Server Error", plain, sys.exc_info())
        return [b"never sent"]
    if kind == "write-after-error":  # exc_info before the head, then keeps writing
        start_response("200 OK", plain)
        try:
            raise ValueError("early failure (expected by the test)")
        except ValueError:
            write = start_response("503 Service Unavailable", plain, sys.exc_info())
        write(b"replacement response\n")
        return [b"and more\n"]
    if kind == "short":
        start_response("200 OK", [*plain, ("Content-Length", "100")])
        return iter([b"only ten b"])
    if kind == "close-raises":
        start_response("200 OK", plain)
        return _ClosedLoudly()
    if kind == "stubborn":
        start_response("200 OK", plain)
        return _stubborn(name)
    if kind == "endless-with-length":
        start_response("200 OK", [*plain, ("Content-Length", "4096")])
        return _endless(name)
    return _text(start_response, b"unknown kind\n", "400 Bad Request")


ROUTES.update(
    {
        "/ticker": ticker,
        "/once": once,
        "/upload-record": upload_record,
        "/fault": fault,
    }
)
