"""FastAPI on AsgiH2: streamed responses go out under HTTP/2 flow control;
``FileResponse`` sends the file through the ``http.response.pathsend``
extension, so the worker reads it, not the app."""

from fastapi import FastAPI
from fastapi.responses import FileResponse, PlainTextResponse, StreamingResponse

app = FastAPI()


@app.get("/", response_class=PlainTextResponse)
async def index():
    return "FastAPI over HTTP/2\n"


@app.get("/rows")
async def rows():
    async def generate():
        for n in range(3):
            yield f"row {n}\n"

    return StreamingResponse(generate(), media_type="text/plain")


@app.get("/source")
async def source():
    return FileResponse(__file__, media_type="text/x-python")
