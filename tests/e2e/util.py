"""Clients for the end-to-end tests: a raw HTTP/2 client over a real socket,
raw HTTP/1.1 exchanges, and wrappers around curl, nghttp and h2load.

``H2Client`` drives the connection with h2 (client side, outbound checks off
so tests can send malformed requests) and, independently, splits every byte
the server sent into hyperframe frames, so tests can assert on exact frames
(one SETTINGS, RST_STREAM codes, GOAWAY) without trusting h2's view.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import h2.events as h2e
from h2.config import H2Configuration
from h2.connection import ConnectionState, H2Connection
from h2.errors import ErrorCodes
from h2.exceptions import ProtocolError
from h2.settings import SettingCodes
from hyperframe.frame import Frame, GoAwayFrame, RstStreamFrame, SettingsFrame

from tests.frames import PREFACE as PREFACE  # one PREFACE for every suite (re-exported)
from tests.frames import FrameReader
from tests.sockets import SocketPeer

Header = tuple[bytes, bytes]


@dataclass
class StreamState:
    headers: list[Header] | None = None
    informational: list[list[Header]] = field(default_factory=list)
    data: bytearray = field(default_factory=bytearray)
    trailers: list[Header] | None = None
    ended: bool = False
    reset: int | None = None

    @property
    def status(self) -> int | None:
        if self.headers is None:
            return None
        return int(dict(self.headers)[b":status"])

    @property
    def done(self) -> bool:
        return self.ended or self.reset is not None

    def header(self, name: bytes) -> bytes | None:
        return dict(self.headers or []).get(name)

    def json(self) -> Any:
        return json.loads(bytes(self.data))


class _ClientConnection(H2Connection):
    """h2's client, except that a graceful GOAWAY (NO_ERROR) lets the streams it
    covers finish, as RFC 9113 6.8 says; h2 itself would refuse their frames."""

    def _receive_goaway_frame(self, frame: GoAwayFrame) -> tuple[list[Frame], list[h2e.Event]]:
        state = self.state_machine.state
        frames, events = super()._receive_goaway_frame(frame)
        if frame.error_code == ErrorCodes.NO_ERROR and state is not ConnectionState.CLOSED:
            self.state_machine.state = state
        return frames, events


class H2Client(SocketPeer):
    """An HTTP/2 client on a real socket (h2c prior knowledge, or TLS + ALPN h2)."""

    def __init__(
        self,
        port: int,
        context: ssl.SSLContext | None = None,
        *,
        timeout: float = 10.0,
        preface: bool = True,
        auto_ack: bool = True,
    ) -> None:
        super().__init__(port, context, timeout=timeout)
        self.auto_ack = auto_ack
        self.conn = _ClientConnection(
            H2Configuration(
                client_side=True,
                header_encoding=None,
                validate_outbound_headers=False,
                normalize_outbound_headers=False,
                validate_inbound_headers=False,
            )
        )
        self.reader = FrameReader()
        self.frames: list[Frame] = []
        self.events: list[h2e.Event] = []
        self.streams: dict[int, StreamState] = {}
        self.h2_error: Exception | None = None
        if preface:
            self.conn.initiate_connection()
            self.flush()

    # -- sending ---------------------------------------------------------------

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.send_raw(data)

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def request(
        self,
        path: str = "/hello",
        method: str = "GET",
        headers: Iterable[tuple[str, str]] = (),
        body: bytes | None = None,
        *,
        end: bool = True,
        block: list[Header] | None = None,
        stream_id: int | None = None,
        **priority: Any,
    ) -> int:
        """Send a request (or the raw header ``block``); returns its stream id."""
        sid = stream_id or self.conn.get_next_available_stream_id()
        if block is None:
            block = [
                (b":method", method.encode()),
                (b":scheme", self.scheme),
                (b":authority", self.authority),
                (b":path", path.encode()),
                *((k.encode(), v.encode()) for k, v in headers),
            ]
        self.streams[sid] = StreamState()
        self.conn.send_headers(sid, block, end_stream=end and body is None, **priority)
        self.flush()
        if body is not None:
            self.send_body(sid, body, end=end)
        return sid

    def send_body(self, sid: int, data: bytes, end: bool = True) -> None:
        view = memoryview(data)
        while view:
            window = min(
                self.conn.local_flow_control_window(sid), self.conn.max_outbound_frame_size
            )
            if window <= 0:
                self.pump(0.5)
                if self.streams[sid].done or self.closed:
                    return
                continue
            self.conn.send_data(sid, bytes(view[:window]))
            view = view[window:]
            self.flush()
        if end:
            self.conn.end_stream(sid)
            self.flush()

    # -- receiving -------------------------------------------------------------

    def pump(self, timeout: float) -> bool:
        """Read what arrives within ``timeout``; False if nothing did."""
        data = self._recv(timeout)
        if not data:
            return False
        self.receive(data)
        return True

    def receive(self, data: bytes) -> None:
        self.frames.extend(self.reader.feed(data))
        if self.h2_error is not None:
            return
        try:
            events = self.conn.receive_data(data)
        except ProtocolError as exc:  # keep the frames; h2's view ends here
            self.h2_error = exc
            return
        for event in events:
            self._on_event(event)
        try:
            self.flush()
        except OSError:
            pass

    def _on_event(self, event: h2e.Event) -> None:
        self.events.append(event)
        sid = getattr(event, "stream_id", None)
        state = self.streams.setdefault(sid, StreamState()) if sid else None
        if isinstance(event, h2e.InformationalResponseReceived):
            state.informational.append(list(event.headers))  # type: ignore[union-attr]
        elif isinstance(event, h2e.ResponseReceived):
            state.headers = list(event.headers)  # type: ignore[union-attr]
        elif isinstance(event, h2e.DataReceived):
            state.data += event.data  # type: ignore[union-attr]
            if self.auto_ack and event.flow_controlled_length:
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, h2e.TrailersReceived):
            state.trailers = list(event.headers)  # type: ignore[union-attr]
        elif isinstance(event, h2e.StreamEnded):
            state.ended = True  # type: ignore[union-attr]
        elif isinstance(event, h2e.StreamReset):
            state.reset = event.error_code  # type: ignore[union-attr]

    def wait(
        self, predicate: Callable[[], bool], timeout: float | None = None, what: str = ""
    ) -> None:
        if not self._poll(predicate, self.timeout if timeout is None else timeout, 0.5):
            raise AssertionError(
                f"timed out waiting for {what or predicate}: closed={self.closed} "
                f"frames={[summary(f) for f in self.frames][-20:]} h2_error={self.h2_error}"
            )

    def response(self, sid: int, timeout: float | None = None) -> StreamState:
        self.wait(lambda: self.streams[sid].done, timeout, f"stream {sid} to end")
        return self.streams[sid]

    def get(self, path: str = "/hello", timeout: float | None = None, **kwargs: Any) -> StreamState:
        return self.response(self.request(path, **kwargs), timeout)

    def handshake(self) -> None:
        """Wait for the server's SETTINGS and its ACK of ours."""
        self.wait(
            lambda: (
                any(isinstance(f, SettingsFrame) and "ACK" in f.flags for f in self.frames)
                and any(isinstance(f, SettingsFrame) and "ACK" not in f.flags for f in self.frames)
            ),
            what="SETTINGS exchange",
        )

    def ignore_stream_limit(self) -> None:
        """Let this client open more streams than the server's limit allows."""
        settings = self.conn.remote_settings
        settings[SettingCodes.MAX_CONCURRENT_STREAMS] = 2**31 - 1
        settings.acknowledge()

    # -- frames ----------------------------------------------------------------

    def settings_frames(self) -> list[SettingsFrame]:
        return [f for f in self.frames if isinstance(f, SettingsFrame) and "ACK" not in f.flags]

    def goaways(self) -> list[GoAwayFrame]:
        return [f for f in self.frames if isinstance(f, GoAwayFrame)]

    def resets(self) -> dict[int, int]:
        return {f.stream_id: f.error_code for f in self.frames if isinstance(f, RstStreamFrame)}


def negotiated_alpn(port: int, context: ssl.SSLContext) -> str | None:
    """The protocol the server picks over TLS from what ``context`` offers."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as sock,
    ):
        return sock.selected_alpn_protocol()


def summary(frame: Frame) -> str:
    text = f"{type(frame).__name__}(sid={frame.stream_id}"
    if isinstance(frame, (RstStreamFrame, GoAwayFrame)):
        text += f", code={frame.error_code}"
    if frame.flags:
        text += f", flags={sorted(frame.flags)}"
    return text + ")"


def wait_for_file(path: os.PathLike[str] | str, timeout: float = 10.0) -> str:
    """The text of a state file the test app writes (tests/apps.py writes each
    one whole, with a rename, so it is complete once it exists)."""
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)  # another process writes it: nothing to await but the file
    with open(path) as f:
        return f.read()


def rss_kib(pid: int, key: str = "VmRSS") -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise LookupError(f"{key} not in /proc/{pid}/status")


# -- HTTP/1.1 over a raw socket -------------------------------------------------


@dataclass
class H1Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    raw: bytes
    trailers: list[tuple[str, str]] = field(default_factory=list)

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    def json(self) -> Any:
        return json.loads(self.body)


def h1_exchange(
    port: int,
    request: bytes,
    context: ssl.SSLContext | None = None,
    timeout: float = 10.0,
    body_parts: Sequence[bytes] = (),
    until_close: bool = False,
) -> bytes:
    """Send raw request bytes (then ``body_parts``) and read the answer: until
    the final response is complete, or with ``until_close`` until the server
    closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw:
        sock: socket.socket = raw
        if context is not None:
            sock = context.wrap_socket(raw, server_hostname="127.0.0.1")
        sock.sendall(request)
        for part in body_parts:
            sock.sendall(part)
        data = b""
        while True:
            try:
                piece = sock.recv(65536)
            except (ConnectionResetError, ssl.SSLEOFError):
                break
            if not piece:
                break
            data += piece
            if not until_close and _final_response_complete(data):
                break
        return data


def _final_response_complete(data: bytes) -> bool:
    try:
        responses = parse_h1(data)
    except Incomplete:
        return False
    last = responses[-1]
    delimited = last.header("content-length") is not None or (
        (last.header("transfer-encoding") or "").lower() == "chunked"
    )
    return last.status >= 200 and delimited


class Incomplete(AssertionError):
    """The bytes end before the response does."""


def parse_h1(raw: bytes) -> list[H1Response]:
    """Every response in ``raw`` (1xx ones included), bodies de-chunked.

    Raises Incomplete if the last response is cut short; a body without
    length or chunking runs to the end of ``raw``.
    """
    responses = []
    rest = raw
    while rest:
        head, sep, rest = rest.partition(b"\r\n\r\n")
        if not sep:
            raise Incomplete(f"incomplete response head: {head[:200]!r}")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = [tuple(p.strip() for p in line.split(":", 1)) for line in lines[1:]]
        response = H1Response(status, headers, b"", raw)  # type: ignore[arg-type]
        responses.append(response)
        if 100 <= status < 200:
            continue
        if (response.header("transfer-encoding") or "").lower() == "chunked":
            response.body, rest = _dechunk(response, rest)
        else:
            length = int(response.header("content-length") or len(rest))
            if len(rest) < length:
                raise Incomplete(f"body of {len(rest)} bytes, {length} announced")
            response.body, rest = rest[:length], rest[length:]
    if not responses:
        raise Incomplete("no response")
    return responses


def _dechunk(response: H1Response, rest: bytes) -> tuple[bytes, bytes]:
    body = bytearray()
    while True:
        size_line, sep, rest = rest.partition(b"\r\n")
        if not sep:
            raise Incomplete("chunk size line")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        if len(rest) < size + 2:
            raise Incomplete("chunk data")
        body += rest[:size]
        rest = rest[size + 2 :]
    if rest.startswith(b"\r\n"):
        return bytes(body), rest[2:]
    trailer_block, sep, rest = rest.partition(b"\r\n\r\n")
    if not sep:
        raise Incomplete("trailer section")
    for line in trailer_block.decode("latin-1").split("\r\n"):
        name, _, value = line.partition(":")
        response.trailers.append((name.strip(), value.strip()))
    return bytes(body), rest


def h1_request(
    port: int,
    path: str = "/hello",
    method: str = "GET",
    headers: Sequence[tuple[str, str]] = (),
    body: bytes | None = None,
    context: ssl.SSLContext | None = None,
    chunked: bool = False,
    timeout: float = 10.0,
) -> H1Response:
    """One HTTP/1.1 request with ``Connection: close``; the final response."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers]
    parts: list[bytes] = []
    if body is not None and chunked:
        lines.append("Transfer-Encoding: chunked")
        parts = [
            b"%x\r\n%s\r\n" % (len(body[i : i + 5]), body[i : i + 5])
            for i in range(0, len(body), 5)
        ]
        parts.append(b"0\r\n\r\n")
    elif body is not None:
        lines.append(f"Content-Length: {len(body)}")
        parts = [body]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    raw = h1_exchange(port, request, context, timeout, parts)
    return parse_h1(raw)[-1]


# -- external clients ------------------------------------------------------------


def run_tool(cmd: Sequence[str], timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    tool = shutil.which(cmd[0])
    if tool is None:
        raise AssertionError(f"{cmd[0]} is not installed")
    return subprocess.run([tool, *cmd[1:]], capture_output=True, text=True, timeout=timeout)


def nghttp_get(url: str, *args: str, timeout: float = 60.0) -> bytes:
    """The body nghttp receives for ``url`` (asserting it exited cleanly)."""
    tool = shutil.which("nghttp")
    if tool is None:
        raise AssertionError("nghttp is not installed")
    out = subprocess.run([tool, *args, url], capture_output=True, timeout=timeout)
    assert out.returncode == 0, out.stderr.decode(errors="replace")[-2000:]
    return out.stdout


def curl(*args: str, ca: Any = None, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    cmd = ["curl", "-sS", "--max-time", str(int(timeout))]
    if ca is not None:
        cmd += ["--cacert", str(ca)]
    return run_tool([*cmd, *args], timeout=timeout + 10)


def curl_version_and_body(url: str, *args: str, ca: Any = None) -> tuple[str, str]:
    """(http_version as curl reports it, body)."""
    out = curl("-w", "\n%{http_version}", *args, url, ca=ca)
    assert out.returncode == 0, out.stderr
    body, _, version = out.stdout.rpartition("\n")
    return version, body


H2LOAD_REQUESTS = re.compile(
    r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
    r"(\d+) errored, (\d+) timeout"
)


def h2load(url: str, *args: str, timeout: float = 120.0) -> dict[str, int]:
    out = run_tool(["h2load", *args, url], timeout=timeout)
    match = H2LOAD_REQUESTS.search(out.stdout)
    assert match, f"unexpected h2load output:\n{out.stdout}\n{out.stderr}"
    names = ("total", "started", "done", "succeeded", "failed", "errored", "timeout")
    result = dict(zip(names, map(int, match.groups()), strict=True))
    codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out.stdout)
    assert codes, out.stdout
    result["2xx"] = int(codes.group(1))
    return result
