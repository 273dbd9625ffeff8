"""Load the example page the way a browser would, and print every HTTP/2
frame the server sends, in the order it arrives.

    python examples/http2_features/frames.py https://127.0.0.1:8443/
    python examples/http2_features/frames.py http://127.0.0.1:8000/   # h2c
    python examples/http2_features/frames.py --no-push https://...    # as browsers do

What to look for:

* PUSH_PROMISE frames for /style.css and /app.js on the page's stream, or,
  with --no-push (and through a proxy that does not push), a 103 HEADERS
  with their ``link`` fields before the page's 200;
* the page's DATA first (``priority: u=0``), then CSS and JS, and the four
  photos' DATA interleaved (``u=5, i``), whatever order they were asked in;
* the six /slow streams answered together, ~300 ms after they were sent;
* /checksum's DATA, then a HEADERS with END_STREAM carrying ``x-sha256``;
* a PRIORITY_UPDATE the script sends for photo 4 (to ``u=0``) once its
  response has started: the rest of photo 4's DATA then comes ahead of the
  other photos' (within what was already in flight: the script reopens the
  connection window only as it reads, 64 KiB, as a slow link would).

Only ``h2``, ``hpack`` and ``hyperframe`` (h2's own parts) are used: the
script reads raw frames itself, so nothing is hidden.
"""

from __future__ import annotations

import argparse
import socket
import ssl
import struct
import sys
import time
from urllib.parse import urlsplit

import h2.config
import h2.connection
import h2.events
import h2.settings
import hpack
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PushPromiseFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

PAGE = [
    ("/", "u=0"),
    ("/photo/1.png", "u=5, i"),  # asked before the CSS: priority puts it after
    ("/photo/2.png", "u=5, i"),
    ("/photo/3.png", "u=5, i"),
    ("/photo/4.png", "u=5, i"),
    ("/style.css", "u=1"),
    ("/app.js", "u=2"),
    ("/logo.svg", "u=4"),
    ("/checksum", "u=3"),
    ("/priority", "u=1"),
    *[(f"/slow?ms=300&n={n}", "u=3") for n in range(6)],
]
SETTING_NAMES = {code.value: code.name for code in h2.settings.SettingCodes} | {
    9: "NO_RFC7540_PRIORITIES"
}


def connect(url: str, insecure: bool, cafile: str | None, wait: float = 0) -> socket.socket:
    """A connection that speaks h2: TLS with ALPN for https, h2c for http.
    ``wait``: seconds to keep trying while the server is not up yet."""
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    deadline = time.monotonic() + wait
    while True:
        try:
            sock = socket.create_connection((host, port), timeout=10)
            break
        except OSError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.5)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if parts.scheme != "https":
        return sock  # h2c with prior knowledge
    context = ssl.create_default_context(cafile=cafile)
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["h2"])
    tls = context.wrap_socket(sock, server_hostname=host)
    if tls.selected_alpn_protocol() != "h2":
        sys.exit(f"the server did not choose h2 (ALPN: {tls.selected_alpn_protocol()})")
    return tls


class FramePrinter:
    """Splits received bytes into frames and prints each (header blocks
    decoded with an HPACK decoder of our own, fed in the order they came)."""

    def __init__(self, out=sys.stdout) -> None:
        self.buffer = b""
        self.decoder = hpack.Decoder()
        self.block = b""  # a header block waiting for its CONTINUATION frames
        self.block_frame: Frame | None = None
        self.out = out
        self.started = time.monotonic()
        self.frames: list[Frame] = []

    def feed(self, data: bytes) -> None:
        self.buffer += data
        while len(self.buffer) >= 9:
            length = int.from_bytes(self.buffer[:3], "big")
            if len(self.buffer) < 9 + length:
                return
            raw, self.buffer = self.buffer[: 9 + length], self.buffer[9 + length :]
            frame, _ = Frame.parse_frame_header(memoryview(raw[:9]))
            frame.parse_body(memoryview(raw[9:]))
            self.frames.append(frame)
            self.show(frame)

    def show(self, frame: Frame) -> None:
        detail = self.describe(frame)
        if detail is None:
            return  # the rest of a header block: shown with its first frame
        flags = ",".join(sorted(frame.flags))
        ms = (time.monotonic() - self.started) * 1000
        print(
            f"{ms:8.1f} ms  {frame_name(frame):<13} stream {frame.stream_id:<3} "
            f"{('[' + flags + ']') if flags else '':<24} {detail}",
            file=self.out,
        )

    def describe(self, frame: Frame) -> str | None:
        if isinstance(frame, (HeadersFrame, PushPromiseFrame, ContinuationFrame)):
            return self.header_block(frame)
        if isinstance(frame, DataFrame):
            return f"{len(frame.data)} bytes"
        if isinstance(frame, SettingsFrame):
            return " ".join(f"{SETTING_NAMES.get(k, k)}={v}" for k, v in frame.settings.items())
        if isinstance(frame, WindowUpdateFrame):
            return f"+{frame.window_increment}"
        if isinstance(frame, (RstStreamFrame, GoAwayFrame)):
            return f"error code {frame.error_code}"
        return ""

    def header_block(self, frame: Frame) -> str | None:
        if not isinstance(frame, ContinuationFrame):
            self.block, self.block_frame = b"", frame
        self.block += frame.data
        if "END_HEADERS" not in frame.flags:
            return None if isinstance(frame, ContinuationFrame) else "(continued)"
        fields = self.decoder.decode(self.block, raw=True)
        text = " ".join(f"{n.decode()}: {v.decode(errors='replace')}" for n, v in fields)
        if isinstance(self.block_frame, PushPromiseFrame):
            return f"promises stream {self.block_frame.promised_stream_id}: {text}"
        return text


def frame_name(frame: Frame) -> str:
    """``PUSH_PROMISE`` for a PushPromiseFrame (RFC 9113's names)."""
    name = type(frame).__name__.removesuffix("Frame")
    if name == "Extension":
        return f"TYPE_{frame.type:#04x}"
    return "".join("_" + c if c.isupper() else c for c in name).lstrip("_").upper()


def priority_update(stream_id: int, value: bytes) -> bytes:
    """RFC 9218 PRIORITY_UPDATE (type 0x10), by hand: h2 has no API for it."""
    payload = struct.pack(">I", stream_id) + value
    return struct.pack(">I", len(payload))[1:] + bytes((0x10, 0)) + struct.pack(">I", 0) + payload


def run(args: argparse.Namespace) -> int:
    url, push, timeout = args.url, not args.no_push, args.timeout
    parts = urlsplit(url)
    sock = connect(url, args.insecure, args.cafile, args.wait)
    conn = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=True, header_encoding=None)
    )
    conn.local_settings = h2.settings.Settings(
        client=True, initial_values={h2.settings.SettingCodes.ENABLE_PUSH: int(push)}
    )
    conn.initiate_connection()
    authority = (parts.netloc or "127.0.0.1").encode()
    paths: dict[int, str] = {}
    for path, priority in PAGE:
        sid = conn.get_next_available_stream_id()
        paths[sid] = path
        block = [
            (b":method", b"GET"),
            (b":scheme", parts.scheme.encode()),
            (b":authority", authority),
            (b":path", path.encode()),
            (b"priority", priority.encode()),
            (b"te", b"trailers"),
        ]
        conn.send_headers(sid, block, end_stream=True)
    sock.sendall(conn.data_to_send())
    printer = FramePrinter()
    print(f"sent {len(PAGE)} requests on one connection to {url}\n")
    results: dict[int, dict] = {sid: {"path": p, "bytes": 0} for sid, p in paths.items()}
    open_streams = set(paths)
    updated = False
    deadline = time.monotonic() + timeout
    while open_streams and time.monotonic() < deadline:
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            data = sock.recv(65536)
        except TimeoutError:
            break
        if not data:
            break
        printer.feed(data)
        for event in conn.receive_data(data):
            note(event, results, open_streams)
            if isinstance(event, h2.events.DataReceived):  # read: the server may send more
                conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        photo4 = next(s for s, p in paths.items() if p == "/photo/4.png")
        if not updated and "status" in results[photo4] and photo4 in open_streams:
            sock.sendall(priority_update(photo4, b"u=0"))
            print(f"{'':11}-> PRIORITY_UPDATE for stream {photo4} (/photo/4.png): u=0")
            updated = True
        sock.sendall(conn.data_to_send())
    conn.close_connection()
    sock.sendall(conn.data_to_send())
    sock.close()
    return summary(results, open_streams)


def note(event: h2.events.Event, results: dict[int, dict], open_streams: set[int]) -> None:
    sid = getattr(event, "stream_id", None)
    if isinstance(event, h2.events.PushedStreamReceived):
        path = dict(event.headers)[b":path"].decode()
        results[event.pushed_stream_id] = {"path": path + " (pushed)", "bytes": 0}
        open_streams.add(event.pushed_stream_id)
    elif isinstance(event, h2.events.ResponseReceived):
        results[sid]["status"] = dict(event.headers)[b":status"].decode()
    elif isinstance(event, h2.events.InformationalResponseReceived):
        results[sid].setdefault("informational", []).append(dict(event.headers)[b":status"])
    elif isinstance(event, h2.events.DataReceived):
        results[sid]["bytes"] += len(event.data)
    elif isinstance(event, h2.events.TrailersReceived):
        results[sid]["trailers"] = {n.decode(): v.decode() for n, v in event.headers}
    elif isinstance(event, (h2.events.StreamEnded, h2.events.StreamReset)):
        results[sid]["done"] = time.monotonic()
        open_streams.discard(sid)


def summary(results: dict[int, dict], open_streams: set[int]) -> int:
    print("\nstream  status  bytes    path")
    for sid, result in sorted(results.items()):
        extra = " ".join(f"{k}={v}" for k, v in result.get("trailers", {}).items())
        hints = " (after a 103)" if result.get("informational") else ""
        print(
            f"{sid:>6}  {result.get('status', '-'):>6}  {result['bytes']:>7}  "
            f"{result['path']}{hints} {extra}"
        )
    finished = sorted((r["done"], sid) for sid, r in results.items() if "done" in r)
    print("\nfinished in this order:", " ".join(results[sid]["path"] for _, sid in finished))
    if open_streams:
        print(f"\n{len(open_streams)} streams did not finish", file=sys.stderr)
        return 1
    failed = [r for r in results.values() if r.get("status") != "200"]
    return 1 if failed else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url", nargs="?", default="https://127.0.0.1:8443/")
    parser.add_argument("--no-push", action="store_true", help="SETTINGS_ENABLE_PUSH=0")
    parser.add_argument("--insecure", action="store_true", help="skip certificate checks")
    parser.add_argument("--cafile", help="CA bundle to verify the server with")
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds for the page")
    parser.add_argument("--wait", type=float, default=0.0, help="seconds to wait for the server")
    sys.exit(run(parser.parse_args()))


if __name__ == "__main__":
    main()
