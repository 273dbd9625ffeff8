"""Server push, and its modern replacement 103 Early Hints, for both app
interfaces.

- ``promise_block``: the request a PUSH_PROMISE carries: a GET of a path on
  the original request's scheme and authority, with the request headers a
  browser would send again for a subresource (RFC 9113 8.4 asks for a
  request the client could have made itself).
- ``Pusher``: the WSGI ``gunicorn.http2.push(path, headers=())`` callable.
- ``preload``: the ``h2workers.preload(links)`` helper: one call with the
  ``Link`` values a page needs early; it pushes them where the client takes
  push, and sends them as 103 Early Hints elsewhere (browsers disabled push:
  SETTINGS_ENABLE_PUSH = 0; HTTP/1.1 has no push).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Protocol

from h2workers.app.response import encode_headers
from h2workers.errors import InvalidResponse
from h2workers.proto.headers import Header

# Request headers a browser sends again for a same-origin subresource.
COPIED = frozenset((b"user-agent", b"accept-encoding", b"accept-language", b"cookie"))
# ``</style.css>; rel=preload; as=style``: the target of one Link value
_LINK_TARGET = re.compile(r"\s*<([^>]*)>")


class PushChannel(Protocol):
    """What push needs of a stream's channel (``session.channel.StreamChannel``)."""

    @property
    def can_push(self) -> bool: ...

    def push(self, block: list[Header]) -> bool: ...


def promise_block(
    scheme: bytes,
    authority: bytes,
    request_headers: Iterable[Header],
    path: str,
    extra: list[Header],
) -> list[Header]:
    """The request of a PUSH_PROMISE for ``path`` (absolute, same origin)."""
    if not path.startswith("/") or path.startswith("//"):
        raise InvalidResponse(f"a pushed path must be absolute, got {path!r}")
    block: list[Header] = [
        (b":method", b"GET"),
        (b":scheme", scheme),
        (b":authority", authority),
        (b":path", path.encode("latin-1")),
    ]
    given = {name for name, _ in extra}
    block += [(n, v) for n, v in request_headers if n in COPIED and n not in given]
    return block + extra


class Pusher:
    """``gunicorn.http2.push(path, headers=())`` for one HTTP/2 request.

    Promises a GET of ``path`` on the request's stream; the app then serves
    that GET on the promised stream like any request. Returns True if the
    promise was made (the client takes push, the connection and the request
    are below their caps); False otherwise, and the page must not rely on
    it. A promise after the response ended is refused the same way."""

    __slots__ = ("_channel", "_ended", "_request")

    def __init__(
        self, channel: PushChannel, scheme: bytes, authority: bytes, headers: list[Header]
    ) -> None:
        self._channel = channel
        self._request = (scheme, authority, headers)
        self._ended: Callable[[], bool] = lambda: False

    def until(self, ended: Callable[[], bool]) -> Pusher:
        """Refuse promises once ``ended()`` (the response is complete)."""
        self._ended = ended
        return self

    @property
    def available(self) -> bool:
        return self._channel.can_push and not self._ended()

    def __call__(self, path: str, headers: Iterable[tuple[str, str]] = ()) -> bool:
        if not self.available:
            return False
        scheme, authority, request_headers = self._request
        extra = encode_headers(list(headers))[0]
        return self._channel.push(promise_block(scheme, authority, request_headers, path, extra))


def link_path(link: str) -> str | None:
    """The same-origin absolute path a ``Link`` value points to, if any."""
    match = _LINK_TARGET.match(link)
    if match is None:
        return None
    target = match.group(1)
    return target if target.startswith("/") and not target.startswith("//") else None


def preload(
    links: Iterable[str],
    pusher: Pusher | None,
    early_hints: Callable[[list[tuple[str, str]]], None],
) -> str:
    """Push the ``links`` where the client takes push, else send them as 103
    Early Hints; returns ``"push"`` or ``"early_hints"``.

    Links to other origins cannot be pushed: with push, they still go out
    as Early Hints."""
    links = list(links)
    hinted = links
    if pusher is not None and pusher.available:
        hinted = [link for link in links if (path := link_path(link)) is None or not pusher(path)]
        if not hinted:
            return "push"
    early_hints([("link", link) for link in hinted])
    return "early_hints"
