"""Server push, and its modern replacement 103 Early Hints, for both app
interfaces.

- ``promise_block``: the request a PUSH_PROMISE carries: a GET of a path on
  the original request's scheme and authority, with the request headers a
  browser would send again for a subresource (RFC 9113 8.4 asks for a
  request the client could have made itself).
- ``preload``: the ``h2workers.preload(links)`` helper: one call with the
  ``Link`` values a page needs early; it pushes them where the client takes
  push, and sends them as 103 Early Hints elsewhere (browsers disabled push:
  SETTINGS_ENABLE_PUSH = 0; HTTP/1.1 has no push).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from h2workers.errors import InvalidResponse
from h2workers.proto.headers import Header

# Request headers a browser sends again for a same-origin subresource.
COPIED = frozenset((b"user-agent", b"accept-encoding", b"accept-language", b"cookie"))
# ``</style.css>; rel=preload; as=style``: the target of one Link value
_LINK_TARGET = re.compile(r"\s*<([^>]*)>")


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


def link_path(link: str) -> str | None:
    """The same-origin absolute path a ``Link`` value points to, if any."""
    match = _LINK_TARGET.match(link)
    if match is None:
        return None
    target = match.group(1)
    return target if target.startswith("/") and not target.startswith("//") else None


def preload(
    links: Iterable[str],
    push: Callable[[str], bool] | None,
    early_hints: Callable[[list[tuple[str, str]]], None],
) -> str:
    """Push the ``links`` with ``push`` (None where the client takes no
    push), and send the rest as one 103 Early Hints; returns ``"push"`` if
    every link was pushed, else ``"early_hints"``.

    Links to other origins cannot be pushed: with push, they still go out
    as Early Hints."""
    links = list(links)
    hinted = links
    if push is not None:
        hinted = [link for link in links if (path := link_path(link)) is None or not push(path)]
        if not hinted:
            return "push"
    early_hints([("link", link) for link in hinted])
    return "early_hints"
