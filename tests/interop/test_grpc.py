"""grpcio against the WSGI gRPC service of tests/interop/app.py.

grpcio advertises 4 MiB SETTINGS_MAX_FRAME_SIZE and 4 MiB windows, so its
replies go out as frames far larger than the 16 KiB most clients allow:
the first round stalled every reply of 1 MiB or more here. All four call
kinds, with messages on both sides of that size; the bidirectional call
sends each message only after the previous reply arrived, which works only
if the request and response bodies really stream side by side.
"""

from __future__ import annotations

import hashlib
import struct
import threading
from collections.abc import Iterator

import grpc
import pytest

MIB = 1 << 20
TIMEOUT = 60
LIMITS = [("grpc.max_receive_message_length", 64 * MIB), ("grpc.max_send_message_length", 64 * MIB)]


def _identity(data: bytes) -> bytes:
    return data


@pytest.fixture(scope="module")
def channel(srv, tls_files):
    target = f"127.0.0.1:{srv.port}"
    if srv.tls:
        credentials = grpc.ssl_channel_credentials(root_certificates=tls_files.ca.read_bytes())
        chan = grpc.secure_channel(target, credentials, options=LIMITS)
    else:
        chan = grpc.insecure_channel(target, options=LIMITS)
    with chan:
        yield chan


def _method(channel, kind: str, name: str):
    factory = getattr(channel, kind)
    return factory(f"/interop.Test/{name}", request_serializer=_identity,
                   response_deserializer=_identity)  # fmt: skip


def _message(size: int, seed: int = 0) -> bytes:
    block = hashlib.sha256(b"%d" % seed).digest()
    return (block * (size // len(block) + 1))[:size]


@pytest.mark.parametrize("size", [0, 1, 1_048_571, MIB, 4 * MIB, 16 * MIB + 3])
def test_unary(channel, size):
    request = _message(size, size)
    reply = _method(channel, "unary_unary", "Unary")(request, timeout=TIMEOUT)
    assert reply == request[::-1]


@pytest.mark.parametrize(
    ("count", "size"), [(1, 2 * MIB), (64, 64 * 1024), (3000, 100), (8, 4 * MIB)]
)
def test_server_streaming(channel, count, size):
    call = _method(channel, "unary_stream", "ServerStream")
    replies = list(call(struct.pack(">II", count, size), timeout=TIMEOUT))
    assert [len(r) for r in replies] == [size] * count
    assert all(r == bytes([i % 256]) * size for i, r in enumerate(replies))


@pytest.mark.parametrize(("count", "size"), [(1, 4 * MIB), (200, 16 * 1024), (5000, 10)])
def test_client_streaming(channel, count, size):
    messages = [_message(size, i) for i in range(count)]
    reply = _method(channel, "stream_unary", "ClientStream")(iter(messages), timeout=TIMEOUT)
    digest = hashlib.sha256(b"".join(messages)).digest()
    assert reply == struct.pack(">I", count) + digest


@pytest.mark.parametrize("size", [10, 100_000, 2 * MIB])
def test_bidirectional_ping_pong(channel, size):
    """Message n+1 is sent only once reply n has arrived."""
    replied = threading.Semaphore(0)
    rounds = 20
    sent: list[bytes] = []

    def requests() -> Iterator[bytes]:
        for i in range(rounds):
            if i:
                assert replied.acquire(timeout=TIMEOUT), f"no reply to message {i - 1}"
            sent.append(_message(size, i))
            yield sent[-1]

    received = []
    for reply in _method(channel, "stream_stream", "Echo")(requests(), timeout=TIMEOUT):
        received.append(reply)
        replied.release()
    assert received == sent and len(received) == rounds


def test_unknown_method_is_a_grpc_error(channel):
    with pytest.raises(grpc.RpcError) as failure:
        _method(channel, "unary_unary", "Nope")(b"", timeout=TIMEOUT)
    assert failure.value.code() == grpc.StatusCode.UNIMPLEMENTED
