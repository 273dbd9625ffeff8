"""What Gunicorn's hooks and access log see of a request and its response.

Gunicorn hands ``pre_request``/``post_request`` a request object and its
access log a request and a response; these are those objects for every
request h2workers serves itself (HTTP/2 streams, and ASGI over HTTP/1.1),
whatever the application interface.
"""

from __future__ import annotations

from gunicorn import util

from h2workers.proto.headers import Header, RequestHead


class RequestInfo:
    """The request as Gunicorn's hooks and access log expect to see it
    (``pre_request``, ``post_request`` and ``%(r)s``), for any protocol and
    interface."""

    __slots__ = (
        "_headers",
        "fragment",
        "method",
        "path",
        "priority_depends_on",
        "priority_weight",
        "query",
        "raw_headers",
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
        raw_headers: list[Header],
        version: tuple[int, int] = (2, 0),
    ) -> None:
        self.stream_id = stream_id
        self.method = head.method.decode("latin-1")
        self.uri = head.path.decode("latin-1")
        self.version = version
        self.scheme = scheme
        self.raw_headers = raw_headers  # the fields the policy kept, as received
        self._headers: list[tuple[str, str]] | None = None
        self.priority_weight = head.priority.weight
        self.priority_depends_on = head.priority.depends_on
        uri = self.uri
        if uri.startswith("//") or "#" in uri:  # rare: let Gunicorn's splitter decide
            parts = util.split_request_uri(uri)
            self.path, self.query, self.fragment = parts.path or "", parts.query, parts.fragment
        else:  # origin-form (or "*"): what urlsplit would give, without its cost
            self.path, _, self.query = uri.partition("?")
            self.fragment = ""

    @property
    def headers(self) -> list[tuple[str, str]]:
        """Gunicorn's ``req.headers``: upper-cased names, str values; made
        when a hook or the access log first reads them (most requests have
        neither)."""
        if self._headers is None:
            self._headers = [
                (name.decode("latin-1").upper(), value.decode("latin-1"))
                for name, value in self.raw_headers
            ]
        return self._headers

    def should_close(self) -> bool:
        return False


class ResponseInfo:
    """What Gunicorn's access log and post_request hook read of a response."""

    __slots__ = ("_headers", "raw_headers", "sent", "status", "status_code")

    def __init__(self) -> None:
        self.status: str | None = None
        self.status_code: int | None = None
        self.raw_headers: list[Header] = []  # as checked for the wire (ASGI's)
        self._headers: list[tuple[str, str]] | None = None
        self.sent = 0

    @property
    def headers(self) -> list[tuple[str, str]]:
        """(name, value) strings, as Gunicorn's response has them: the WSGI
        app's own, or an ASGI app's decoded when first read."""
        if self._headers is None:
            self._headers = [
                (name.decode("latin-1"), value.decode("latin-1"))
                for name, value in self.raw_headers
            ]
        return self._headers

    @headers.setter
    def headers(self, headers: list[tuple[str, str]]) -> None:
        self._headers = headers
