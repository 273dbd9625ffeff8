"""app/response.check_headers: the checks hold whether or not a pair was
seen before (pairs already checked are remembered)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from h2workers.app import response
from h2workers.app.response import InvalidResponse, check_headers
from h2workers.proto.headers import FieldMemo

_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_VALUE = re.compile(rb"[ \t\x21-\x7e\x80-\xff]*")
DROPPED = {b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade"}


def _reference(pairs):
    """The rules, written out plainly."""
    block, length = [], None
    for name, value in pairs:
        if not _TOKEN.fullmatch(name) or not _VALUE.fullmatch(value):
            raise InvalidResponse("bad")
        name, value = name.lower(), value.strip(b" \t")
        if name in DROPPED or name == b"te":
            continue
        if name == b"content-length":
            if not value.isdigit():
                raise InvalidResponse("bad")
            length = int(value)
        block.append((name, value))
    return block, length


NAMES = st.sampled_from(
    [b"Content-Type", b"content-length", b"X-A", b"bad name", b"Connection", b"TE", b"x:y", b""]
)
VALUES = st.sampled_from([b"text/plain", b" 12 ", b"12", b"a\r\nb", b"\x00", b"", b"v" * 300])


def _outcome(call):
    try:
        return call()
    except InvalidResponse:
        return "refused"


@given(st.lists(st.lists(st.tuples(NAMES, VALUES), max_size=5), max_size=4))
def test_every_response_is_checked_as_the_rules_say_seen_before_or_not(responses):
    for pairs in responses:  # the same pairs again and again: the second time from memory
        for _ in range(2):
            assert _outcome(lambda p=pairs: check_headers(p)) == _outcome(
                lambda p=pairs: _reference(p)
            )


def test_what_is_remembered_is_bounded(monkeypatch):
    monkeypatch.setattr(response, "_CHECKED", FieldMemo())
    for i in range(FieldMemo.MAX_FIELDS + 50):
        check_headers([(b"etag", b"%d" % i)])
    check_headers([(b"x-big", b"v" * (FieldMemo.MAX_VALUE + 1))])
    assert len(response._CHECKED.known) == FieldMemo.MAX_FIELDS


@pytest.mark.parametrize(
    "pair",
    [[b"x-a", b"1"], (bytearray(b"x-a"), b"1"), (b"x-a", bytearray(b"1")), ("x-a", "1")],
)
def test_pairs_that_are_not_two_bytes_are_refused_or_taken_as_before(pair):
    """A list pair is taken (as before the memory); bytearray and str are refused."""
    if isinstance(pair, list):
        assert check_headers([pair]) == ([(b"x-a", b"1")], None)
    else:
        with pytest.raises(InvalidResponse):
            check_headers([pair])


def test_credentials_are_not_remembered(monkeypatch):
    monkeypatch.setattr(response, "_CHECKED", FieldMemo())
    check_headers([(b"Set-Cookie", b"session=s3cret"), (b"x-a", b"1")])
    assert list(response._CHECKED.known) == [(b"x-a", b"1")]
