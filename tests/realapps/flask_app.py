"""A Flask app doing what Flask apps do, for tests/realapps."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from flask import Flask, Response, redirect, request, send_file, stream_with_context, url_for

from tests.apps import pieces_body

app = Flask(__name__)
BIG = 50 * 1000 * 1000


def big_file() -> Path:
    """50 MB of /pieces content on disk, written once per machine."""
    path = Path(tempfile.gettempdir()) / f"h2workers-flask-{BIG}.bin"
    if not path.exists() or path.stat().st_size != BIG:
        partial = path.with_suffix(f".{os.getpid()}")
        partial.write_bytes(pieces_body(BIG))
        partial.replace(path)
    return path


@app.get("/hello")
def index() -> str:
    return "flask app"


@app.get("/file")
def file() -> Response:
    return send_file(big_file(), mimetype="application/octet-stream")


@app.post("/upload")
def upload() -> dict[str, object]:
    found = {}
    for name, storage in request.files.items():
        digest, size = hashlib.sha256(), 0
        while piece := storage.stream.read(65536):
            digest.update(piece)
            size += len(piece)
        found[name] = {"filename": storage.filename, "size": size, "sha256": digest.hexdigest()}
    return {"files": found, "form": request.form.to_dict()}


@app.get("/stream")
def stream() -> Response:
    count = int(request.args.get("n", "1000"))

    def lines():
        for i in range(count):
            yield f"line {i} of {count}\n"

    return Response(stream_with_context(lines()), mimetype="text/plain")


@app.get("/redirect")
def go_elsewhere() -> Response:
    return redirect(url_for("landing", _external=True))


@app.get("/landing")
def landing() -> dict[str, object]:
    return {"scheme": request.scheme, "host": request.host, "url": request.url}


@app.get("/cookie/set")
def set_cookie() -> Response:
    response = Response("set")
    response.set_cookie("flavour", "oatmeal", httponly=True)
    response.set_cookie("size", "large")
    return response


@app.get("/cookie/get")
def get_cookie() -> dict[str, str]:
    return dict(request.cookies)


@app.get("/boom")
def boom() -> str:
    raise RuntimeError("boom from a Flask view (expected by the test)")
