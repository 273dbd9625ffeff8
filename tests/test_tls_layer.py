"""AsgiH2's TLS layer (drivers/aio/tls.py) without sockets: a client
``ssl.SSLObject`` over memory buffers, wired to the server's ``TLSLayer``."""

from __future__ import annotations

import ssl

import pytest

from h2workers.drivers.aio.tls import TLSLayer, TLSTransport


class Client:
    def __init__(self, tls_files, alpn: list[str]) -> None:
        context = tls_files.client_context(alpn=alpn)
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = context.wrap_bio(self.incoming, self.outgoing, server_hostname="127.0.0.1")

    def pending(self) -> bytes:
        return self.outgoing.read()

    def handshake(self, server: TLSLayer) -> bytes:
        """Run the handshake; returns the plaintext the server got meanwhile."""
        got = b""
        for _ in range(10):
            try:
                self.obj.do_handshake()
            except ssl.SSLWantReadError:
                pass
            got += server.receive(self.pending())
            self.incoming.write(server.pending())
            if server.handshaken:
                try:
                    self.obj.do_handshake()
                    return got + server.receive(self.pending())
                except ssl.SSLWantReadError:
                    continue
        raise AssertionError("no handshake")

    def read(self) -> bytes:
        out = b""
        while True:
            try:
                out += self.obj.read(65536)
            except ssl.SSLWantReadError:
                return out


@pytest.fixture
def server_context(tls_files):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tls_files.cert, tls_files.key)
    context.set_alpn_protocols(["h2", "http/1.1"])
    return context


class FakeRaw:
    def __init__(self) -> None:
        self.written = b""
        self.eof = self.closed = False

    def write(self, data: bytes) -> None:
        self.written += data

    def is_closing(self) -> bool:
        return self.closed

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.eof = True

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name, default=None):
        return ("127.0.0.1", 1) if name == "peername" else default


@pytest.mark.parametrize(("offered", "chosen"), [(["h2"], "h2"), (["http/1.1"], "http/1.1")])
def test_handshake_picks_alpn_and_data_flows_both_ways(tls_files, server_context, offered, chosen):
    server = TLSLayer(server_context)
    client = Client(tls_files, offered)
    assert client.handshake(server) == b""
    assert server.ssl_object.selected_alpn_protocol() == chosen
    client.obj.write(b"x" * 100_000)  # several records
    assert server.receive(client.pending()) == b"x" * 100_000
    raw = FakeRaw()
    transport = TLSTransport(raw, server)
    transport.write(b"response")
    client.incoming.write(raw.written)
    assert client.read() == b"response"
    assert transport.get_extra_info("ssl_object") is server.ssl_object
    assert transport.get_extra_info("peername") == ("127.0.0.1", 1)


def test_bytes_that_come_with_the_handshake_are_kept(tls_files, server_context):
    """A client may send its preface with its Finished: nothing is lost."""
    server = TLSLayer(server_context)
    client = Client(tls_files, ["h2"])
    for _ in range(10):
        try:
            client.obj.do_handshake()
            break
        except ssl.SSLWantReadError:
            server.receive(client.pending())
            client.incoming.write(server.pending())
    client.obj.write(b"PRI * HTTP/2.0")
    assert server.receive(client.pending()) == b"PRI * HTTP/2.0"
    assert server.handshaken


def test_close_notify_from_the_client_is_the_end(tls_files, server_context):
    server = TLSLayer(server_context)
    client = Client(tls_files, ["h2"])
    client.handshake(server)
    try:
        client.obj.unwrap()
    except ssl.SSLWantReadError:
        pass
    assert server.receive(client.pending()) == b""
    assert server.closed_by_peer


def test_garbage_is_an_ssl_error(server_context):
    server = TLSLayer(server_context)
    with pytest.raises(ssl.SSLError):
        server.receive(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")


def test_half_close_then_close_sends_no_close_notify(tls_files, server_context):
    server = TLSLayer(server_context)
    Client(tls_files, ["h2"]).handshake(server)
    raw = FakeRaw()
    transport = TLSTransport(raw, server)
    transport.write_eof()
    transport.write(b"dropped")  # past our FIN nothing goes out
    transport.close()
    assert raw.eof and raw.closed and raw.written == b""


def test_close_sends_close_notify(tls_files, server_context):
    server = TLSLayer(server_context)
    client = Client(tls_files, ["h2"])
    client.handshake(server)
    raw = FakeRaw()
    TLSTransport(raw, server).close()
    assert raw.written and raw.closed  # the alert, then the close
    client.incoming.write(raw.written)
    assert client.obj.read(10) == b""  # the client reads a clean end
