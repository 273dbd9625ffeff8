"""h2workers.proto.hpack_paths gives hpack's results: each coder runs beside
a plain hpack one on the same input, and they must agree on every block,
every error and every later block (the tables stay in step)."""

from __future__ import annotations

from typing import Any

import hpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from h2workers.config import H2Settings
from h2workers.proto.hpack_paths import IndexedDecoder, RepeatingEncoder, VersionedTable
from h2workers.proto.machine import configured_connection

NAMES = [b":status", b":path", b"content-type", b"x-a", b"cookie", b"x-long-" + b"n" * 60]
VALUES = [b"200", b"/", b"text/plain", b"", b"v", b"w" * 300]
fields = st.tuples(st.sampled_from(NAMES), st.sampled_from(VALUES))
heads = st.lists(fields, min_size=0, max_size=6)


def _outcome(call: Any) -> Any:
    try:
        return ("ok", call())
    except Exception as exc:
        return ("error", type(exc))


# -- the decoder ---------------------------------------------------------------------


def _blocks(draw: Any) -> list[bytes]:
    """Realistic blocks (a client's encoder, repeating heads, so later ones
    are all indices), and bytes of every kind between them."""
    encoder = hpack.Encoder()
    encoder.header_table_size = draw(st.sampled_from([4096, 256, 0]))
    blocks: list[bytes] = []
    sent: list[list[tuple[bytes, bytes]]] = []
    for _ in range(draw(st.integers(1, 12))):
        kind = draw(st.sampled_from(["head", "again", "again", "raw", "indices", "same"]))
        if kind == "same" and blocks:  # an earlier block's very bytes, the table changed or not
            blocks.append(draw(st.sampled_from(blocks)))
        elif kind == "head" or (kind in ("again", "same") and not sent):
            sent.append(draw(heads))
            blocks.append(encoder.encode(sent[-1]))
        elif kind == "again":  # a head sent before: indices once its fields are in the table
            blocks.append(encoder.encode(draw(st.sampled_from(sent))))
        elif kind == "raw":
            blocks.append(draw(st.binary(max_size=12)))
        else:  # one-byte indices, some past the table, 0x80 (index 0) and 0xFF
            blocks.append(bytes(draw(st.lists(st.integers(0x80, 0xFF), min_size=1, max_size=8))))
    return blocks


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), limit=st.sampled_from([65536, 200, 40]))
def test_indexed_decoder_decodes_as_hpack_does(data, limit):
    plain, ours = hpack.Decoder(limit), IndexedDecoder(limit)
    for block in _blocks(data.draw):
        expected = _outcome(lambda d=plain, b=block: d.decode(b, raw=True))
        got = _outcome(lambda d=ours, b=block: ours.decode(b, raw=True))
        assert got == expected
        if got[0] == "ok":  # fields as bytes (the fast path hands out the table's own pairs)
            assert all(type(name) is bytes and type(value) is bytes for name, value in got[1])
        if expected[0] == "error":
            return  # a failed block ends the connection: the tables may differ after it
        assert list(ours.header_table.dynamic_entries) == list(plain.header_table.dynamic_entries)


def test_indexed_decoder_takes_a_repeated_request_as_indices():
    encoder, decoder = hpack.Encoder(), IndexedDecoder()
    head = [(b":method", b"GET"), (b":path", b"/api/item"), (b"user-agent", b"h2load")]
    decoder.decode(encoder.encode(head), raw=True)
    again = encoder.encode(head)
    assert len(again) == 3 and all(byte & 0x80 for byte in again)  # the fast path's input
    assert decoder.decode(again, raw=True) == head


def test_the_same_indices_after_the_table_changed_are_new_fields():
    """A block of indices is remembered with the table it was read against:
    once a field is added, index 62 names that one."""
    encoder, decoder = hpack.Encoder(), IndexedDecoder()
    first = [(b":method", b"GET"), (b"x-a", b"1")]
    decoder.decode(encoder.encode(first), raw=True)
    newest = encoder.encode([(b"x-a", b"1")])
    assert newest == b"\xbe" and decoder.decode(newest, raw=True) == [(b"x-a", b"1")]
    decoder.decode(encoder.encode([(b"x-b", b"2")]), raw=True)  # now the newest entry
    assert decoder.decode(newest, raw=True) == [(b"x-b", b"2")]


def test_indexed_decoder_refuses_an_oversized_list_of_indices():
    encoder, decoder = hpack.Encoder(), IndexedDecoder(max_header_list_size=100)
    head = [(b"x-a", b"v" * 40)]
    decoder.decode(encoder.encode(head), raw=True)
    with pytest.raises(hpack.OversizedHeaderListError):
        decoder.decode(encoder.encode(head * 3), raw=True)  # three indices, 3 x 75 bytes


# -- the encoder ---------------------------------------------------------------------

operations = st.lists(
    st.one_of(
        st.tuples(st.just("encode"), heads, st.booleans()),
        st.tuples(st.just("resize"), st.sampled_from([0, 64, 256, 4096]), st.just(True)),
    ),
    max_size=20,
)


@settings(max_examples=400, deadline=None)
@given(steps=operations)
def test_repeating_encoder_writes_what_hpack_writes(steps):
    plain, ours = hpack.Encoder(), RepeatingEncoder()
    for kind, arg, huffman in steps:
        if kind == "resize":
            plain.header_table_size = ours.header_table_size = arg
            continue
        head = list(arg)
        encoded = ours.encode(head, huffman)
        assert encoded == plain.encode(head, huffman)


def test_repeating_encoder_reuses_a_head_until_its_table_changes():
    encoder = RepeatingEncoder()
    head = [(b":status", b"200"), (b"content-type", b"text/plain")]
    first = encoder.encode(head)
    second = encoder.encode(head)  # both fields now in the table: indices
    assert encoder.encode(head) is second and len(second) == 2 and second != first
    encoder.encode([(b"x-new", b"1")])  # an entry added: indices shift
    third = encoder.encode(head)
    assert third != second  # re-encoded, not replayed


def test_a_size_update_is_sent_once_even_for_a_known_head():
    encoder = RepeatingEncoder()
    head = [(b":status", b"200")]
    encoder.encode(head)
    known = encoder.encode(head)
    encoder.header_table_size = 0
    updated = encoder.encode(head)
    assert updated != known and updated[0] & 0xE0 == 0x20  # starts with the size update
    assert encoder.encode(head) == known  # static index 8, no update again


def test_the_core_connection_uses_both():
    conn = configured_connection(H2Settings())
    assert isinstance(conn.decoder, IndexedDecoder)
    assert isinstance(conn.encoder, RepeatingEncoder)
    assert isinstance(conn.encoder.header_table, VersionedTable)
    assert conn.decoder.max_header_list_size == 2 * H2Settings().max_header_list_size
