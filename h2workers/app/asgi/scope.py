"""Mapping a request to an ASGI ``http`` scope.

The rules (trusted peers, scheme headers, ``header_map``, limits,
``SCRIPT_NAME`` as ``root_path``) are Gunicorn's, applied by
``app/policy.py`` as for the WSGI environ; this module is only the ASGI
format over them (ASGI 3, HTTP spec 2.4). What is the same for every request
of a connection is computed once (a ``ScopeBuilder`` per connection).
"""

from __future__ import annotations

import ssl
from typing import Any
from urllib.parse import unquote_to_bytes

from h2workers.app.policy import Address, RequestPolicy
from h2workers.app.request import RequestInfo
from h2workers.proto.headers import RequestHead

ASGI_VERSION = {"version": "3.0", "spec_version": "2.4"}


def address(addr: Address) -> list[Any] | None:
    """(host, port) as ASGI wants it; None for a unix socket."""
    if isinstance(addr, tuple):
        return [str(addr[0]), int(addr[1])]
    return None


class ScopeBuilder:
    """Builds the scope of each request of one connection."""

    def __init__(
        self,
        cfg: Any,
        peer: Address,
        server: Address,
        secure: bool,
        http_version: str,
        extensions: dict[str, Any],
    ) -> None:
        self.policy = RequestPolicy(cfg, peer, secure)
        self.client_ip = peer[0] if isinstance(peer, tuple) else "-"
        self.client = address(peer)
        self.server = address(server)
        self.http_version = http_version
        self.version = (2, 0) if http_version == "2" else (1, int(http_version[-1]))
        self.extensions = extensions  # what this connection offers

    def build(
        self, stream_id: int, head: RequestHead, state: dict[str, Any] | None
    ) -> tuple[dict[str, Any], RequestInfo]:
        """The scope of one request, and the request as Gunicorn's hooks see
        it; raises RequestRejected (the policy's)."""
        headers, scheme = self.policy.accept(head)
        if head.authority is not None and not any(name == b"host" for name, _ in headers):
            # RFC 9113 8.3.1: :authority is the host (and the access log's %({host}i)s)
            headers.insert(0, (b"host", head.authority))
        req = RequestInfo(stream_id, head, scheme, headers, self.version)
        raw_path, _, query = head.path.partition(b"?")
        script_name = next((v for n, v in headers if n == b"script_name"), None)
        path = raw_path.decode("latin-1")
        # Starlette and uvicorn keep the mount point in ``path``; ``root_path`` names it
        root_path, _ = self.policy.split_script(
            path, None if script_name is None else script_name.decode("latin-1")
        )
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": ASGI_VERSION,
            "http_version": self.http_version,
            "method": head.method.decode("latin-1"),
            "scheme": scheme,
            "path": _decoded(raw_path) if b"%" in raw_path or not raw_path.isascii() else path,
            "raw_path": raw_path,
            "query_string": query,
            "root_path": root_path,
            "headers": headers,
            "client": self.client,
            "server": self.server,
            "extensions": dict(self.extensions),
        }
        if state is not None:
            scope["state"] = state.copy()  # lifespan's state, a shallow copy per request
        return scope, req


def _decoded(raw_path: bytes) -> str:
    """Percent-escapes and UTF-8 decoded, as ASGI's ``path`` is."""
    return unquote_to_bytes(raw_path).decode("utf-8", errors="surrogateescape")


_TLS_VERSIONS = {"TLSv1": 0x0301, "TLSv1.1": 0x0302, "TLSv1.2": 0x0303, "TLSv1.3": 0x0304}


def tls_extension(ssl_object: Any) -> dict[str, Any]:
    """ASGI's ``tls`` extension for a connection, from its SSL object: the
    protocol version and cipher suite as IANA numbers, the client's
    certificate chain (PEM) and subject when it sent one."""
    cipher = ssl_object.cipher()
    peer_der = ssl_object.getpeercert(binary_form=True)
    chain = [ssl.DER_cert_to_PEM_cert(peer_der)] if peer_der else []
    name = None
    if peer_der:
        subject = ssl_object.getpeercert().get("subject", ())
        name = ",".join(f"{k}={v}" for rdn in reversed(subject) for k, v in rdn) or None
    return {
        "server_cert": None,
        "client_cert_chain": chain,
        "client_cert_name": name,
        "client_cert_error": None,
        "tls_version": _TLS_VERSIONS.get(ssl_object.version()),
        "cipher_suite": _cipher_ids(ssl_object.context).get(cipher[0]) if cipher else None,
    }


def _cipher_ids(context: ssl.SSLContext) -> dict[str, int]:
    """OpenSSL cipher names to IANA numbers (the low 16 bits of OpenSSL's id),
    once per context."""
    ids: dict[str, int] | None = _CIPHER_IDS.get(id(context))
    if ids is None:
        ids = {c["name"]: c["id"] & 0xFFFF for c in context.get_ciphers()}
        _CIPHER_IDS[id(context)] = ids
    return ids


_CIPHER_IDS: dict[int, dict[str, int]] = {}
