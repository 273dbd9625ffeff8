"""HPACK's two usual cases without hpack's per-field Python: a request
block of indexed fields, and a response head the encoder has encoded before.

A client repeating a request (an API client, a health check, h2load, a
gRPC stub calling one method) sends, from its second request on, a header
block in which every field is an index into the tables: one byte each.
hpack decodes each through four calls and a debug log line; here the block
is recognised in C (``bytes.translate``) and looked up in one pass. A
server's response heads repeat the same way, and their encoding depends
only on the fields and the encoder's table: a head whose encoding left the
table unchanged encodes to the same bytes until the table changes.

Both are hpack's own objects with ``decode``/``encode`` wrapped: whatever
is not the usual case (a literal, a multi-byte index, a table size update,
an error) goes through hpack unchanged, which raises hpack's own errors.
``tests/test_hpack_paths.py`` runs each beside plain hpack (hypothesis).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from hpack import Decoder, Encoder, HeaderTuple
from hpack.hpack import DEFAULT_MAX_HEADER_LIST_SIZE
from hpack.table import HeaderTable

# Every byte of a block of one-byte indexed fields: 0x81..0xFE (0x80 is
# index 0, an error; 0xFF starts a multi-byte index).
_ONE_BYTE_INDICES = bytes(range(0x81, 0xFF))
_CACHED_HEADS = 64  # response heads remembered per connection
_CACHED_BLOCKS = 64  # request blocks of indices remembered per connection


class VersionedTable(HeaderTable):
    """hpack's table, counting its changes (an entry added, a new size)."""

    version = 0

    def add(self, name: bytes, value: bytes) -> None:
        self.version += 1
        super().add(name, value)

    @HeaderTable.maxsize.setter  # type: ignore[attr-defined, untyped-decorator]
    def maxsize(self, newmax: int) -> None:
        self.version += 1
        HeaderTable.maxsize.fset(self, newmax)  # type: ignore[attr-defined]


class IndexedDecoder(Decoder):
    """hpack's decoder, with blocks of one-byte indexed fields looked up
    directly; the same block bytes, while the table is unchanged, are the
    same fields (a client repeating a request sends the same bytes)."""

    def __init__(self, max_header_list_size: int = DEFAULT_MAX_HEADER_LIST_SIZE) -> None:
        super().__init__(max_header_list_size)
        self.header_table = VersionedTable()
        # block -> (table version, its fields, their RFC 9113 6.5.2 size)
        self._indexed: dict[bytes, tuple[int, list[Any], int]] = {}

    def decode(self, data: bytes, raw: bool = False) -> Iterable[HeaderTuple]:
        if not raw or not data or data.translate(None, _ONE_BYTE_INDICES):
            return super().decode(data, raw)
        table: VersionedTable = self.header_table  # type: ignore[assignment]
        known = self._indexed.get(data) if type(data) is bytes else None
        if known is not None and known[0] == table.version:
            _, fields, size = known
        else:
            get = table.get_by_index
            try:
                fields = [get(byte & 0x7F) for byte in data]
            except Exception:  # an index past the table: hpack's error, from hpack
                return super().decode(data, raw)
            size = 32 * len(fields) + sum([len(name) + len(value) for name, value in fields])
            if type(data) is bytes:
                if len(self._indexed) >= _CACHED_BLOCKS:
                    self._indexed.clear()
                self._indexed[data] = (table.version, fields, size)
        if size > self.max_header_list_size:
            return super().decode(data, raw)  # hpack's OversizedHeaderListError
        self._assert_valid_table_size()
        # the table's own (name, value) tuples: hpack would copy each into a
        # HeaderTuple, whose only extra (``indexable``) nobody reads here
        return list(fields)


class RepeatingEncoder(Encoder):
    """hpack's encoder, remembering the bytes of heads that left its table
    unchanged (every field found whole in it) until the table changes."""

    def __init__(self) -> None:
        super().__init__()
        self.header_table = VersionedTable()
        self._encoded: dict[tuple[Any, ...], tuple[int, bytes]] = {}

    def encode(self, headers: Any, huffman: bool = True) -> bytes:
        if type(headers) is not list or not all(type(pair) is tuple for pair in headers):
            return super().encode(headers, huffman)  # HeaderTuple's never-indexed flag
        table: VersionedTable = self.header_table  # type: ignore[assignment]
        key = (huffman, *headers)
        known = self._encoded.get(key)
        if known is not None and known[0] == table.version and not table.resized:
            return known[1]
        before = None if table.resized else table.version  # a size update is emitted once
        encoded = super().encode(headers, huffman)
        if before is not None and table.version == before:
            if len(self._encoded) >= _CACHED_HEADS:
                self._encoded.clear()
            self._encoded[key] = (before, encoded)
        return encoded


def install(conn: Any) -> None:
    """Give a new h2 connection (before any frame) these coder paths,
    keeping the limits already set on its decoder."""
    decoder = IndexedDecoder(conn.decoder.max_header_list_size)
    decoder.max_allowed_table_size = conn.decoder.max_allowed_table_size
    conn.decoder = decoder
    conn.encoder = RepeatingEncoder()
