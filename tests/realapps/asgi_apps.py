"""FastAPI, Starlette and Quart apps doing what their users do, for
tests/realapps on AsgiH2: a 50 MB ``FileResponse`` (Starlette's uses
``http.response.pathsend`` when the server offers it), a 20 MiB multipart
upload, a streamed response, a view that raises. One app per framework,
each unchanged from how its documentation writes it.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request, UploadFile
from fastapi import Form as FastForm
from fastapi.responses import HTMLResponse, Response
from quart import Quart, make_push_promise
from quart import request as quart_request
from starlette.applications import Starlette
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Route

from tests.realapps.flask_app import big_file

# -- FastAPI ---------------------------------------------------------------------------

fastapi_app = FastAPI()


@fastapi_app.get("/hello")
async def fastapi_hello() -> dict[str, str]:
    return {"app": "fastapi"}


@fastapi_app.get("/file")
async def fastapi_file() -> FileResponse:
    return FileResponse(big_file(), media_type="application/octet-stream")


@fastapi_app.post("/upload")
async def fastapi_upload(blob: UploadFile, note: str = FastForm()) -> dict[str, Any]:
    digest, size = hashlib.sha256(), 0
    while piece := await blob.read(1 << 16):
        digest.update(piece)
        size += len(piece)
    return {
        "files": {"blob": {"filename": blob.filename, "size": size, "sha256": digest.hexdigest()}},
        "form": {"note": note},
    }


@fastapi_app.get("/stream")
async def fastapi_stream(n: int = 1000) -> StreamingResponse:
    async def lines() -> AsyncIterator[str]:
        for i in range(n):
            yield f"line {i} of {n}\n"

    return StreamingResponse(lines(), media_type="text/plain")


# The server-push example of ../shared/reference/seeds/003, as it is written there.
@fastapi_app.get("/", response_class=HTMLResponse)
async def index(request: Request):  # type: ignore[no-untyped-def]
    # Check if server push is available
    if "http.response.push" in request.scope.get("extensions", {}):
        push = request.scope["extensions"]["http.response.push"]
        # Push CSS before sending HTML
        await push({
            "path": "/static/style.css",
            "headers": [
                (b"accept", b"text/css"),
            ],
        })
        # Push JavaScript
        await push({
            "path": "/static/app.js",
            "headers": [
                (b"accept", b"application/javascript"),
            ],
        })
    return HTMLResponse(content="""
<!DOCTYPE html>
<html>
<head>
<link rel="stylesheet" href="/static/style.css">
<script src="/static/app.js" defer></script>
</head>
<body><h1>Hello HTTP/2</h1></body>
</html>
""")  # fmt: skip


STATIC = {"style.css": ("text/css", b"h1 { color: teal }\n"),
          "app.js": ("application/javascript", b"console.log('pushed')\n")}  # fmt: skip


@fastapi_app.get("/static/{name}")
async def fastapi_static(name: str) -> Response:
    media_type, body = STATIC[name]
    return Response(body, media_type=media_type)


@fastapi_app.get("/boom")
async def fastapi_boom() -> None:
    raise RuntimeError("boom from a FastAPI view")


# -- Starlette -------------------------------------------------------------------------


async def starlette_file(request: Request) -> FileResponse:
    return FileResponse(big_file(), media_type="application/octet-stream")


async def starlette_upload(request: Request) -> JSONResponse:
    async with request.form(max_part_size=64 << 20) as form:
        blob = form["blob"]
        data = await blob.read()  # type: ignore[union-attr]
        return JSONResponse({
            "files": {"blob": {"filename": blob.filename, "size": len(data),  # type: ignore[union-attr]
                               "sha256": hashlib.sha256(data).hexdigest()}},
            "form": {"note": form["note"]},
        })  # fmt: skip


async def starlette_stream(request: Request) -> StreamingResponse:
    n = int(request.query_params.get("n", "1000"))

    async def lines() -> AsyncIterator[bytes]:
        for i in range(n):
            yield f"line {i} of {n}\n".encode()

    return StreamingResponse(lines(), media_type="text/plain")


async def starlette_boom(request: Request) -> PlainTextResponse:
    raise RuntimeError("boom from a Starlette view")


starlette_app = Starlette(routes=[
    Route("/hello", lambda request: PlainTextResponse("starlette app")),
    Route("/file", starlette_file),
    Route("/upload", starlette_upload, methods=["POST"]),
    Route("/stream", starlette_stream),
    Route("/boom", starlette_boom),
])  # fmt: skip

# -- Quart -----------------------------------------------------------------------------

quart_app = Quart(__name__)
quart_app.config["MAX_CONTENT_LENGTH"] = 64 << 20


@quart_app.get("/hello")
async def quart_hello() -> str:
    return "quart app"


@quart_app.get("/file")
async def quart_file() -> Any:
    from quart import send_file

    return await send_file(big_file(), mimetype="application/octet-stream")


@quart_app.post("/upload")
async def quart_upload() -> dict[str, Any]:
    files = await quart_request.files
    form = await quart_request.form
    blob = files["blob"]
    data = blob.read()
    return {
        "files": {"blob": {"filename": blob.filename, "size": len(data),
                           "sha256": hashlib.sha256(data).hexdigest()}},
        "form": {"note": form["note"]},
    }  # fmt: skip


@quart_app.get("/stream")
async def quart_stream() -> Any:
    n = int(quart_request.args.get("n", "1000"))

    async def lines() -> AsyncIterator[bytes]:
        for i in range(n):
            yield f"line {i} of {n}\n".encode()

    return lines(), 200, {"Content-Type": "text/plain"}


# Quart's push: the seed (../shared/reference/seeds/001) used
# ``response.push_promises``, which Quart has since replaced by
# ``make_push_promise`` (what it sends is the same http.response.push).
@quart_app.get("/")
async def quart_index() -> str:
    await make_push_promise("/static/style.css")
    await make_push_promise("/static/app.js")
    return "<html><body>quart push</body></html>"


@quart_app.get("/static/<name>")
async def quart_static(name: str) -> Any:
    media_type, body = STATIC[name]
    return body, 200, {"Content-Type": media_type}


@quart_app.get("/boom")
async def quart_boom() -> str:
    raise RuntimeError("boom from a Quart view")
