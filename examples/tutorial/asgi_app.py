"""The tutorial's first HTTP/2 app (ASGI): any ASGI app works (FastAPI,
Starlette, Quart, Django); this one shows what HTTP/2 adds."""


async def app(scope, receive, send):
    if scope["type"] != "http":
        return  # lifespan and websocket: not in this example
    body = f"Hello over HTTP/{scope['http_version']}\n".encode()
    headers = [(b"content-type", b"text/plain")]
    # trailers: on HTTP/2, and on HTTP/1.1 when the client sent TE: trailers
    trailers = "http.response.trailers" in scope.get("extensions", {})
    if trailers:
        headers.append((b"trailer", b"x-answer"))
    await send(
        {"type": "http.response.start", "status": 200, "headers": headers, "trailers": trailers}
    )
    await send({"type": "http.response.body", "body": body})
    if trailers:
        await send({"type": "http.response.trailers", "headers": [(b"x-answer", b"42")]})
