"""Gunicorn's request hooks around every request, whatever its protocol:
``pre_request`` before the app, ``post_request`` after the response (with
the environ and the response), and the default ``pre_request``'s debug
line when the log level asks for it."""

from __future__ import annotations

from .util import H2Client, h1_request

HOOKS = """
def pre_request(worker, req):
    worker.log.info("PRE %s %s", req.method, req.path)


def post_request(worker, req, environ, resp):
    worker.log.info("POST %s %s %s", req.method, req.path, environ.get("REQUEST_METHOD"))
"""


def test_pre_and_post_request_hooks_run_for_http2_and_http11(server):
    srv = server(tls=False, config_text=HOOKS)
    with H2Client(srv.port) as client:
        assert client.get("/pid").status == 200
    assert h1_request(srv.port, "/headers").status == 200
    srv.wait_for_log("POST GET /headers GET\n")
    log = srv.wait_for_log("POST GET /pid GET\n")  # after its response: in any order
    for path in ("/pid", "/headers"):  # HTTP/2, HTTP/1.1
        assert log.count(f"PRE GET {path}\n") == 1, log[-2000:]
        assert log.count(f"POST GET {path} GET\n") == 1, log[-2000:]
        assert log.index(f"PRE GET {path}") < log.index(f"POST GET {path}")


def test_the_default_pre_request_logs_at_debug_level(server):
    srv = server(tls=False, args=["--log-level", "debug"])
    with H2Client(srv.port) as client:
        assert client.get("/hello").status == 200
    srv.wait_for_log("] GET /hello")  # Gunicorn's default pre_request: "%s %s"
