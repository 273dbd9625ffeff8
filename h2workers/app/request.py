"""What Gunicorn's hooks and access log see of a request and its response.

Gunicorn hands ``pre_request``/``post_request`` a request object and its
access log a request and a response; these are those objects for every
request h2workers serves itself (HTTP/2 streams, and ASGI over HTTP/1.1),
whatever the application interface.
"""

from __future__ import annotations

from gunicorn import util

from h2workers.proto.headers import RequestHead


class RequestInfo:
    """The request as Gunicorn's hooks and access log expect to see it
    (``pre_request``, ``post_request`` and ``%(r)s``), for any protocol and
    interface."""

    __slots__ = (
        "fragment",
        "headers",
        "method",
        "path",
        "priority_depends_on",
        "priority_weight",
        "query",
        "scheme",
        "stream_id",
        "uri",
        "version",
    )

    def __init__(
        self,
        stream_id: int,
        head: RequestHead,
        scheme: str,
        headers: list[tuple[str, str]],
        version: tuple[int, int] = (2, 0),
    ) -> None:
        self.stream_id = stream_id
        self.method = head.method.decode("latin-1")
        self.uri = head.path.decode("latin-1")
        self.version = version
        self.scheme = scheme
        self.headers = headers
        self.priority_weight = head.priority.weight
        self.priority_depends_on = head.priority.depends_on
        uri = self.uri
        if uri.startswith("//") or "#" in uri:  # rare: let Gunicorn's splitter decide
            parts = util.split_request_uri(uri)
            self.path, self.query, self.fragment = parts.path or "", parts.query, parts.fragment
        else:  # origin-form (or "*"): what urlsplit would give, without its cost
            self.path, _, self.query = uri.partition("?")
            self.fragment = ""

    def should_close(self) -> bool:
        return False


class ResponseInfo:
    """What Gunicorn's access log and post_request hook read of a response."""

    __slots__ = ("headers", "sent", "status", "status_code")

    def __init__(self) -> None:
        self.status: str | None = None
        self.status_code: int | None = None
        self.headers: list[tuple[str, str]] = []
        self.sent = 0
