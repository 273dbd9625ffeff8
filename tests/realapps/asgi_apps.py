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

from fastapi import FastAPI, UploadFile
from fastapi import Form as FastForm
from quart import Quart
from quart import request as quart_request
from starlette.applications import Starlette
from starlette.requests import Request
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


@quart_app.get("/boom")
async def quart_boom() -> str:
    raise RuntimeError("boom from a Quart view")
