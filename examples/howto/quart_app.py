"""Quart on AsgiH2: ``make_push_promise`` is sent as HTTP/2 server push
(PUSH_PROMISE) to clients that take it, through ``http.response.push``."""

from quart import Quart, make_push_promise

app = Quart(__name__)


@app.route("/")
async def index():
    await make_push_promise("/style.css")
    return "<link rel=stylesheet href=/style.css>Quart\n"


@app.route("/style.css")
async def style():
    return "body { font-family: sans-serif }\n", 200, {"content-type": "text/css"}
