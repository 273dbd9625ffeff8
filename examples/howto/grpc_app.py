"""A gRPC method as a plain WSGI app on GThreadH2: gRPC is HTTP/2 with
length-prefixed messages and its status in trailers, which WSGI sends with
``environ["gunicorn.http2.send_trailers"]``. (Messages here are UTF-8 text
rather than protobuf, to keep the example to the HTTP/2 part.)"""

import struct


def app(environ, start_response):
    if environ["PATH_INFO"] != "/greet.Greeter/Hello":
        start_response("200 OK", [("Content-Type", "application/grpc")])
        environ["gunicorn.http2.send_trailers"]([("grpc-status", "12")])  # UNIMPLEMENTED
        return []
    body = environ["wsgi.input"].read()
    (length,) = struct.unpack(">I", body[1:5])  # 1 byte flags, 4 bytes length
    name = body[5 : 5 + length].decode()
    reply = f"Hello, {name}".encode()
    start_response("200 OK", [("Content-Type", "application/grpc")])
    environ["gunicorn.http2.send_trailers"]([("grpc-status", "0")])  # sent after the body
    return [struct.pack(">BI", 0, len(reply)) + reply]
