"""Flask on GThreadH2: the app is unchanged; the HTTP/2 names are in
``request.environ``, which is the WSGI environ."""

from flask import Flask, request

app = Flask(__name__)


@app.route("/")
def index():
    # a 103 Early Hints before the page (HTTP/2, and HTTP/1.1 too)
    request.environ["wsgi.early_hints"]([("Link", "</static/site.css>; rel=preload; as=style")])
    return f"Flask over {request.environ['SERVER_PROTOCOL']}\n"
