"""The example site, shared by its WSGI app (``wsgi_app.py``) and its ASGI
app (``asgi_app.py``): the files, how each is served, the generated photos.

Each response carries an RFC 9218 ``priority`` header: the server orders its
own bytes by it (and tells the client and any proxy what it chose).
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from pathlib import Path

SITE = Path(__file__).parent / "site"

TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css",
    ".js": "text/javascript",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}
# The order the page needs: the HTML, then what blocks rendering, then images
# (incremental: a browser shows each as its bytes come, so they share).
PRIORITIES = {".html": "u=0", ".css": "u=1", ".js": "u=2", ".svg": "u=4", ".png": "u=5, i"}
# What the page asks for before its own bytes go out.
PRELOAD = ["</style.css>; rel=preload; as=style", "</app.js>; rel=preload; as=script"]

PHOTO_SIDE = 256  # pixels; stored, not compressed: ~192 KiB, so it takes many frames
CHECKSUM_PIECES = 8  # /checksum streams this many pieces of 64 KiB


def static(path: str) -> tuple[bytes, list[tuple[str, str]]] | None:
    """Body and headers of a file of the site, a generated photo, or None."""
    if path == "/":
        path = "/index.html"
    if path.startswith("/photo/") and path.endswith(".png"):
        number = path[len("/photo/") : -len(".png")]
        if not number.isdigit() or not 0 < int(number) <= 16:
            return None
        return photo(int(number)), headers_for(".png")
    name = path.lstrip("/")
    if not name or "/" in name or name.startswith("."):
        return None
    file = SITE / name
    if not file.is_file():
        return None
    return file.read_bytes(), headers_for(file.suffix)


def headers_for(suffix: str) -> list[tuple[str, str]]:
    headers = [("content-type", TYPES[suffix]), ("priority", PRIORITIES[suffix])]
    if suffix == ".html":
        headers += [("link", link) for link in PRELOAD]
    return headers


def photo(number: int) -> bytes:
    """A PNG gradient, one colour per photo, deflated at level 0 (large on purpose)."""
    red, green, blue = ((number * 67) % 256, (number * 131) % 256, (number * 29) % 256)
    rows = bytearray()
    for y in range(PHOTO_SIDE):
        rows.append(0)  # filter: none
        for x in range(PHOTO_SIDE):
            rows += bytes(((red + x) % 256, (green + y) % 256, blue))
    return _png(PHOTO_SIDE, PHOTO_SIDE, zlib.compress(bytes(rows), 0))


def _png(width: int, height: int, idat: bytes) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


def checksum_pieces() -> tuple[list[bytes], str]:
    """The pieces ``/checksum`` streams, and the SHA-256 its trailer carries."""
    pieces = [bytes([65 + i]) * 65536 for i in range(CHECKSUM_PIECES)]
    digest = hashlib.sha256(b"".join(pieces)).hexdigest()
    return pieces, digest


def link_paths(links: list[str]) -> list[str]:
    """The same-origin paths of ``Link`` values (``</style.css>; rel=...``)."""
    paths = []
    for link in links:
        target = link.partition(">")[0].strip().lstrip("<")
        if target.startswith("/") and not target.startswith("//"):
            paths.append(target)
    return paths
