"""A WebSocket echo on AsgiH2 (the ASGI ``websocket`` scope): over
HTTP/1.1 (``Upgrade: websocket``) and over HTTP/2 (RFC 8441 extended
CONNECT), with the same code."""


async def app(scope, receive, send):
    if scope["type"] != "websocket":
        return  # lifespan; http would go to your framework
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    while (message := await receive())["type"] == "websocket.receive":
        await send({"type": "websocket.send", "text": f"echo: {message.get('text')}"})
