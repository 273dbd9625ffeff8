"""RFC 7541 (HPACK) as the server's decoder and encoder must honour it, and
RFC 9113 4.3 (decoding errors are connection errors COMPRESSION_ERROR), as
h2spec's ``hpack/*`` and ``generic/5`` check them.

Field blocks are written by hand with the helpers below, so every
representation of RFC 7541 section 6 is sent exactly as specified, and the
dynamic table is checked through later references to it."""

from __future__ import annotations

import pytest
from hpack.huffman import HuffmanEncoder
from hpack.huffman_constants import REQUEST_CODES, REQUEST_CODES_LENGTH

from h2workers.config import H2Settings

from .util import (
    COMPRESSION_ERROR,
    END_HEADERS,
    END_STREAM,
    HEADER_TABLE_SIZE,
    HEADERS,
    PROTOCOL_ERROR,
    REFUSED_STREAM,
    Peer,
    assert_connection_error,
    frame,
    headers,
    request_block,
    resp_data,
    resp_headers,
    rst,
    wire_connection_error,
)

_HUFFMAN = HuffmanEncoder(REQUEST_CODES, REQUEST_CODES_LENGTH)


def integer(value: int, prefix: int, first: int = 0) -> bytes:
    """RFC 7541 5.1 integer with an N-bit prefix; ``first`` holds the flag bits."""
    limit = (1 << prefix) - 1
    if value < limit:
        return bytes((first | value,))
    out = [first | limit]
    value -= limit
    while value >= 0x80:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes([*out, value])


def string(value: bytes, huffman: bool = False) -> bytes:
    """RFC 7541 5.2 string literal, optionally Huffman-coded."""
    if huffman:
        coded = _HUFFMAN.encode(value)
        return integer(len(coded), 7, 0x80) + coded
    return integer(len(value), 7) + value


def indexed(index: int) -> bytes:
    """6.1 indexed field line."""
    return integer(index, 7, 0x80)


_LITERAL = {"incremental": (6, 0x40), "without": (4, 0x00), "never": (4, 0x10)}


def literal(name: int | bytes, value: bytes, kind: str, huffman: bool = False) -> bytes:
    """6.2 literal field line: ``name`` is a table index or a new name."""
    prefix, flags = _LITERAL[kind]
    if isinstance(name, int):
        return integer(name, prefix, flags) + string(value, huffman)
    return bytes((flags,)) + string(name, huffman) + string(value, huffman)


def size_update(size: int) -> bytes:
    """6.3 dynamic table size update."""
    return integer(size, 5, 0x20)


# :method GET, :scheme https, :path /, :authority 127.0.0.1 (not indexed)
BASE = indexed(2) + indexed(7) + indexed(4) + literal(1, b"127.0.0.1", "without")


def send_block(peer: Peer, sid: int, block: bytes) -> list[tuple]:
    return peer.exchange(frame(HEADERS, END_HEADERS | END_STREAM, sid, block))


def fields_seen(peer: Peer, sid: int) -> list[tuple[bytes, bytes]]:
    (started,) = [e for e in peer.started() if e.stream_id == sid]
    return started.head.headers


# -- RFC 7541 appendix C: request examples ------------------------------------------------


C3 = [  # C.3: without Huffman coding
    "828684410f7777772e6578616d706c652e636f6d",
    "828684be58086e6f2d6361636865",
    "828785bf400a637573746f6d2d6b65790c637573746f6d2d76616c7565",
]
C4 = [  # C.4: with Huffman coding
    "828684418cf1e3c2e5f23a6ba0ab90f4ff",
    "828684be5886a8eb10649cbf",
    "828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf",
]
C_EXPECTED = [
    (b"http", b"/", []),
    (b"http", b"/", [(b"cache-control", b"no-cache")]),
    (b"https", b"/index.html", [(b"custom-key", b"custom-value")]),
]


@pytest.mark.parametrize("blocks", [C3, C4], ids=["C.3-plain", "C.4-huffman"])
def test_rfc7541_appendix_c_requests(blocks):
    """RFC 7541 C.3 / C.4: three requests on one connection sharing the
    dynamic table (indexes 62 and 63 refer to earlier requests' fields)."""
    peer = Peer()
    for sid, block in zip((1, 3, 5), blocks, strict=True):
        assert send_block(peer, sid, bytes.fromhex(block)) == []
    got = [(e.head.scheme, e.head.path, e.head.headers, e.head.authority) for e in peer.started()]
    assert got == [(*c, b"www.example.com") for c in C_EXPECTED]


# -- representations (h2spec generic/5) -----------------------------------------------------


REPRESENTATIONS = {  # id: (field line, what the application sees, added to the table)
    "indexed": (indexed(16), (b"accept-encoding", b"gzip, deflate"), False),  # generic/5/1
    "incremental-indexed-name": (literal(58, b"h2spec", "incremental"), None, True),  # /5/2
    "incremental-indexed-name-huffman": (literal(58, b"h2spec", "incremental", True), None, True),
    "incremental-new-name": (literal(b"x-test", b"h2spec", "incremental"), None, True),  # /5/4
    "incremental-new-name-huffman": (
        literal(b"x-test", b"h2spec", "incremental", huffman=True),
        None,
        True,
    ),
    "without-indexed-name": (literal(58, b"h2spec", "without"), None, False),  # generic/5/6
    "without-indexed-name-huffman": (literal(58, b"h2spec", "without", True), None, False),
    "without-new-name": (literal(b"x-test", b"h2spec", "without"), None, False),  # /5/8
    "without-new-name-huffman": (literal(b"x-test", b"h2spec", "without", True), None, False),
    "never-indexed-name": (literal(58, b"h2spec", "never"), None, False),  # generic/5/10
    "never-indexed-name-huffman": (literal(58, b"h2spec", "never", True), None, False),
    "never-new-name": (literal(b"x-test", b"h2spec", "never"), None, False),  # generic/5/12
    "never-new-name-huffman": (literal(b"x-test", b"h2spec", "never", True), None, False),
}


def _expected(name: str, seen: tuple[bytes, bytes] | None) -> tuple[bytes, bytes]:
    if seen is not None:
        return seen
    return (b"x-test" if "new-name" in name else b"user-agent", b"h2spec")


@pytest.mark.parametrize("name", list(REPRESENTATIONS))
def test_field_representations(name):
    """RFC 7541 6.1 / 6.2.1-6.2.3: every representation decodes to the same
    field; only incremental indexing adds it to the dynamic table (index 62
    then refers to it), the others leave the table empty (62 is invalid:
    COMPRESSION_ERROR)."""
    line, seen, added = REPRESENTATIONS[name]
    field = _expected(name, seen)
    peer = Peer()
    assert send_block(peer, 1, BASE + line) == []
    assert fields_seen(peer, 1) == [field]
    if added:
        assert send_block(peer, 3, BASE + indexed(62)) == []
        assert fields_seen(peer, 3) == [field]
    else:
        assert_connection_error(peer, COMPRESSION_ERROR, 1, headers(3, BASE + indexed(62)))


@pytest.mark.parametrize(
    "updates", [[0], [0, 4096], [4096, 100, 4096]], ids=["one", "two", "three"]
)
def test_dynamic_table_size_updates_at_block_start(updates):
    """RFC 7541 4.2 / 6.3: size updates (several allowed) at the start of a
    block, up to SETTINGS_HEADER_TABLE_SIZE (h2spec generic/5/14-15)."""
    peer = Peer()
    block = b"".join(size_update(n) for n in updates) + BASE
    assert send_block(peer, 1, block) == []
    assert fields_seen(peer, 1) == []


def test_size_update_to_zero_evicts_everything():
    """RFC 7541 4.3 / 4.4: reducing the table size evicts entries; a later
    reference to an evicted entry is a decoding error."""
    peer = Peer()
    assert send_block(peer, 1, BASE + literal(b"x-a", b"1", "incremental")) == []
    block = size_update(0) + size_update(4096) + BASE + indexed(62)
    assert_connection_error(peer, COMPRESSION_ERROR, 1, headers(3, block))


def test_eviction_keeps_the_newest_entries():
    """RFC 7541 4.4: with a 90-octet table only the newest 39-octet entries
    fit (32 + name + value each): after three inserts 62 and 63 are valid,
    64 (the oldest) was evicted."""
    peer = Peer()
    lines = [literal(b"x-%d" % i, b"val%d" % i, "incremental") for i in range(3)]
    assert send_block(peer, 1, size_update(90) + BASE + b"".join(lines)) == []
    assert send_block(peer, 3, BASE + indexed(62) + indexed(63)) == []
    assert fields_seen(peer, 3) == [(b"x-2", b"val2"), (b"x-1", b"val1")]
    assert_connection_error(peer, COMPRESSION_ERROR, 3, headers(5, BASE + indexed(64)))


# -- decoding errors (h2spec hpack/*) ---------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        indexed(70),  # h2spec hpack/2.3.3/1: "\xC6"
        b"\x7f\x07\x00",  # hpack/2.3.3/2: literal with name index 70
        indexed(0),  # hpack/6.1/1: "\x80"
        b"\x00\x85\xf2\xb2\x4a\x84\xff\x84\x49\x50\x9f\xff",  # hpack/5.2/1: padding > 7 bits
        b"\x00\x85\xf2\xb2\x4a\x84\xff\x83\x49\x50\x90",  # hpack/5.2/2: padded with zeros
        b"\x00\x85\xf2\xb2\x4a\x84\xff\x87\x49\x51\xff\xff\xff\xfa\x7f",  # hpack/5.2/3: EOS
        b"\x00\x0ax-",  # a string literal longer than the block
        b"\xff" + b"\xff" * 10 + b"\x7f",  # an integer past any implementation limit
    ],
    ids=[
        "index-70",
        "literal-name-index-70",
        "index-0",
        "huffman-padding-over-7-bits",
        "huffman-zero-padding",
        "huffman-eos",
        "truncated-string",
        "huge-integer",
    ],
)
def test_decoding_errors_are_compression_errors(bad):
    """RFC 7541 2.3.3, 5.1, 5.2, 6.1 / RFC 9113 4.3: an invalid index, a bad
    Huffman string, a truncated literal or an oversized integer is a
    decoding error: connection error COMPRESSION_ERROR."""
    peer = Peer()
    assert_connection_error(peer, COMPRESSION_ERROR, 0, headers(1, BASE + bad))


def test_index_just_past_the_table_is_invalid():
    """RFC 7541 2.3.3: with one dynamic entry, index 62 is valid and 63 is
    outside the index address space."""
    peer = Peer()
    assert send_block(peer, 1, BASE + literal(b"x-a", b"1", "incremental")) == []
    assert send_block(peer, 3, BASE + indexed(62)) == []
    assert_connection_error(peer, COMPRESSION_ERROR, 3, headers(5, BASE + indexed(63)))


@pytest.mark.parametrize(
    "block",
    [BASE + size_update(1), indexed(2) + size_update(0) + BASE[1:]],
    ids=["at-the-end", "in-the-middle"],  # h2spec hpack/4.2/1
)
def test_size_update_after_a_field_is_compression_error(block):
    """RFC 7541 4.2: a size update MUST come at the beginning of a block."""
    assert_connection_error(Peer(), COMPRESSION_ERROR, 0, headers(1, block))


def test_size_update_over_settings_is_compression_error():
    """RFC 7541 6.3: a new size above SETTINGS_HEADER_TABLE_SIZE (4096) is a
    decoding error (h2spec hpack/6.3/1)."""
    assert_connection_error(Peer(), COMPRESSION_ERROR, 0, headers(1, size_update(4097) + BASE))


def test_decoding_error_in_trailers():
    """RFC 9113 4.3: a trailer section that cannot be decoded is a
    connection error COMPRESSION_ERROR too."""
    peer = Peer()
    assert peer.exchange(frame(HEADERS, END_HEADERS, 1, BASE)) == []
    assert_connection_error(peer, COMPRESSION_ERROR, 1, headers(1, indexed(99)))


# -- decoder state across rejected streams --------------------------------------------------


def test_refused_stream_still_updates_the_table():
    """RFC 9113 4.3 / 5.1.2: a refused stream's block is decoded all the same,
    so later references to entries it added stay valid."""
    peer = Peer(H2Settings(max_concurrent_streams=1))
    assert peer.exchange(frame(HEADERS, END_HEADERS, 1, BASE)) == []  # stays open
    block = BASE + literal(b"x-refused", b"yes", "incremental")
    assert send_block(peer, 3, block) == [rst(3, REFUSED_STREAM)]
    peer.core.reset(1)
    assert peer.frames()[-1][0] == "RST_STREAM"
    assert send_block(peer, 5, BASE + indexed(62)) == []
    assert fields_seen(peer, 5) == [(b"x-refused", b"yes")]


def test_malformed_request_still_updates_the_table():
    """RFC 9113 8.1.1 / 4.3: a malformed request is reset, but its block was
    decoded, so the dynamic table stays in step with the client."""
    peer = Peer()
    block = BASE + literal(b"x-kept", b"1", "incremental") + literal(b"X-Bad", b"1", "without")
    assert send_block(peer, 1, block) == [rst(1, PROTOCOL_ERROR)]
    assert send_block(peer, 3, BASE + indexed(62)) == []
    assert fields_seen(peer, 3) == [(b"x-kept", b"1")]


# -- the server's encoder --------------------------------------------------------------------


def _three_responses(peer: Peer) -> None:
    for sid in (1, 3, 5):
        assert send_block(peer, sid, BASE) == []
        peer.core.respond(sid, 200, [(b"x-server", b"same value"), (b"content-length", b"2")])
        peer.core.send_body(sid, b"ok", end_stream=True)
        assert peer.frames() == [resp_headers(sid), resp_data(sid, 2)]


def test_server_blocks_decode_with_an_independent_decoder():
    """RFC 7541 2.2 / 2.3: the server's blocks decode in order with a separate decoder,
    dynamic-table references included."""
    peer = Peer()
    _three_responses(peer)
    expected = [(b":status", b"200"), (b"x-server", b"same value"), (b"content-length", b"2")]
    assert peer.blocks() == [expected] * 3


@pytest.mark.parametrize("size", [0, 256])
def test_server_encoder_honours_client_table_size(size):
    """RFC 7541 4.2 / RFC 9113 6.5.2: after the client lowers
    SETTINGS_HEADER_TABLE_SIZE, the server's next block MUST start with a
    size update to at most that value, and its table never grows past it."""
    peer = Peer(client_settings=[(HEADER_TABLE_SIZE, size)])
    peer.decoder.max_allowed_table_size = size
    _three_responses(peer)
    first = next(f for f in peer.raw if f.ftype == HEADERS).payload
    assert first[0] & 0xE0 == 0x20  # 001xxxxx: a dynamic table size update
    assert len(peer.blocks()) == 3  # every update <= size, or the decoder raises
    assert peer.decoder.header_table_size <= size


# -- over a socket --------------------------------------------------------------------------


def test_wire_rfc7541_appendix_c4(wire_server):
    """RFC 7541 C.4 requests over a real connection: 200, 200, then 404 for
    /index.html (the test application has no such page)."""
    with wire_server.connect() as wire:
        for sid, block in zip((1, 3, 5), C4, strict=True):
            wire.send(frame(HEADERS, END_HEADERS | END_STREAM, sid, bytes.fromhex(block)))
        assert wire.wait(lambda: all(wire.ended(s) for s in (1, 3, 5)))
        assert [wire.blocks(s)[0][0][1] for s in (1, 3, 5)] == [b"200", b"200", b"404"]


def test_wire_invalid_index_is_compression_error(wire_server):
    """RFC 7541 2.3.3 over a socket: GOAWAY(COMPRESSION_ERROR), then close."""
    with wire_server.connect() as wire:
        block = wire.encoder.encode(request_block(scheme=wire.scheme)) + indexed(70)
        wire_connection_error(wire, COMPRESSION_ERROR, 0, headers(1, block))
