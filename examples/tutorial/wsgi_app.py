"""The tutorial's first HTTP/2 app (WSGI): any WSGI app works; this one
shows what HTTP/2 adds, through the names Gunicorn 25+ also uses."""


def app(environ, start_response):
    protocol = environ["SERVER_PROTOCOL"]  # "HTTP/2.0" over HTTP/2
    # 103 Early Hints: the browser may fetch the stylesheet while we work
    environ["wsgi.early_hints"]([("Link", "</style.css>; rel=preload; as=style")])
    body = f"Hello over {protocol}\n".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
