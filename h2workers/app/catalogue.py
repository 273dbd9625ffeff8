"""Every name an application gets from h2workers, in one place.

The WSGI environ keys beyond CGI's and the ASGI ``scope["extensions"]``
entries, each with what it holds and where it is offered. The reference
page (``docs/reference/app.md``) is generated from this table, and the
end-to-end tests compare it with the environs and scopes real requests get
on every worker class, so the docs, this table and the code cannot drift
apart.
"""

from __future__ import annotations

from dataclasses import dataclass

# Where a name is offered, beyond its protocols (``AppName.only``).
TLS, PUSH = "over TLS", "when the client takes push"


@dataclass(frozen=True)
class AppName:
    name: str
    use: str  # how an app uses it, or what its value is
    what: str
    http1: str | None  # what it does over HTTP/1.1; None: absent there
    only: str = ""  # a further condition: TLS or PUSH
    scopes: tuple[str, ...] = ("http",)  # the ASGI scope types that get it


ENVIRON: tuple[AppName, ...] = (
    AppName(
        "wsgi.version",
        "`(1, 0)`",
        "PEP 3333.",
        "the same",
    ),
    AppName(
        "wsgi.url_scheme",
        "`http` or `https`",
        (
            "From the connection, or from trusted forwarded headers (`forwarded_allow_ips`, "
            "`secure_scheme_headers`), by Gunicorn's rules."
        ),
        "the same",
    ),
    AppName(
        "wsgi.input",
        "a file-like object",
        (
            "The request body, read as it arrives: each read reopens the client's flow-control "
            "window by what it took."
        ),
        "Gunicorn's",
    ),
    AppName(
        "wsgi.input_terminated",
        "`True`",
        "`wsgi.input` ends at the body's end (read() with no size is safe).",
        "the same",
    ),
    AppName(
        "wsgi.errors",
        "a stream",
        "Gunicorn's error log.",
        "the same",
    ),
    AppName(
        "wsgi.multithread",
        "`bool`",
        (
            "True on GThreadH2 and on the green classes (streams of one connection run at the same "
            "time)."
        ),
        "the same",
    ),
    AppName(
        "wsgi.multiprocess",
        "`bool`",
        "True when Gunicorn runs more than one worker.",
        "the same",
    ),
    AppName(
        "wsgi.run_once",
        "`False`",
        "PEP 3333.",
        "the same",
    ),
    AppName(
        "wsgi.file_wrapper",
        "`FileWrapper(file, blksize)`",
        "Wrap a file to return it as the body; sent in pieces under flow control.",
        "Gunicorn's (sendfile where possible)",
    ),
    AppName(
        "wsgi.early_hints",
        "`(headers) -> None`",
        "Send a 103 informational response before the final one (Gunicorn 25+'s name).",
        "`HTTP/1.1 103 Early Hints`",
    ),
    AppName(
        "gunicorn.socket",
        "`None` on HTTP/2",
        "The socket carries the whole connection, so a stream has none.",
        "the socket",
    ),
    AppName(
        "gunicorn.http2.send_trailers",
        "`(headers) -> None`",
        (
            "Trailer fields after the body (a HEADERS frame with END_STREAM). Call it before the "
            "body ends."
        ),
        "chunked trailers, if the client sent `TE: trailers`",
    ),
    AppName(
        "gunicorn.http2.priority_weight",
        "`int` 1-256",
        "RFC 7540 weight from HEADERS or PRIORITY frames, kept current.",
        None,
    ),
    AppName(
        "gunicorn.http2.priority_depends_on",
        "`int`",
        "RFC 7540 parent stream, kept current.",
        None,
    ),
    AppName(
        "h2workers.priority",
        '`{"urgency": 0-7, "incremental": bool}`',
        "RFC 9218 priority from the `priority` header and PRIORITY_UPDATE frames, kept current.",
        None,
    ),
    AppName(
        "gunicorn.http2.push",
        "`(path, headers=()) -> bool`",
        (
            "PUSH_PROMISE a GET of `path`; the app serves it on the promised stream. False when "
            "the client takes no push, after the response ended, or past 16 promises a "
            "request / 256 a connection."
        ),
        None,
    ),
    AppName(
        "h2workers.preload",
        '`(links) -> "push" or "early_hints"`',
        (
            "Push the `Link` values where the client takes push, else send them in one 103 Early "
            "Hints."
        ),
        "103 Early Hints",
    ),
)

EXTENSIONS: tuple[AppName, ...] = (
    AppName(
        "http.response.trailers",
        '`{"type": "http.response.trailers", "headers": [...], "more_trailers": False}`',
        'After an `http.response.start` with `"trailers": True`.',
        "chunked trailers, if the client sent `TE: trailers`",
    ),
    AppName(
        "http.response.early_hint",
        '`{"type": "http.response.early_hint", "links": [...]}`',
        "Hypercorn's name for a 103 Early Hints response.",
        "the same",
    ),
    AppName(
        "http.response.priority",
        "a dict: `weight`, `depends_on` (RFC 7540), `urgency`, `incremental` (RFC 9218)",
        "The stream's priority, kept current as frames arrive.",
        None,
    ),
    AppName(
        "http.response.push",
        '`{"type": "http.response.push", "path": ..., "headers": [...]}`',
        (
            "PUSH_PROMISE a GET of `path`, served by the app on the promised stream. Also "
            "callable: `await ext(message)` (the seed FastAPI example's form)."
        ),
        None,
        only=PUSH,
    ),
    AppName(
        "http.response.pathsend",
        '`{"type": "http.response.pathsend", "path": ...}`',
        (
            "The server sends the file at `path` under flow control; the app never reads it "
            "(Starlette's and Django's `FileResponse`)."
        ),
        "the same",
    ),
    AppName(
        "tls",
        "a dict, as the ASGI TLS extension defines it",
        (
            "`tls_version` and `cipher_suite` as IANA numbers, `client_cert_chain`, "
            "`client_cert_name`, `client_cert_error`, `server_cert`."
        ),
        "the same",
        only=TLS,
        scopes=("http", "websocket"),
    ),
    AppName(
        "websocket.http.response",
        "`websocket.http.response.start` / `.body` messages",
        "Deny a WebSocket with an HTTP response instead of accepting it.",
        "the same",
        scopes=("websocket",),
    ),
)

# ASGI messages beyond the spec's that an app may send, with no extension entry
MESSAGES: tuple[AppName, ...] = (
    AppName(
        "http.response.informational",
        '`{"type": "http.response.informational", "status": 103, "headers": [...]}`',
        "Gunicorn's message for an informational response (Gunicorn lists no extension for it).",
        "the same",
    ),
)


def offered(
    names: tuple[AppName, ...], h2: bool, tls: bool, push: bool, scope: str = "http"
) -> set[str]:
    """The names a request of this kind gets: the environ keys or the
    ``scope["extensions"]`` keys the end-to-end tests expect."""
    return {
        n.name
        for n in names
        if scope in n.scopes
        and (h2 or n.http1 is not None)  # every name is offered on HTTP/2
        and (n.only != TLS or tls)
        and (n.only != PUSH or (push and h2))
    }
