"""Call the gRPC method of grpc_app.py with grpcio: python grpc_client.py HOST:PORT"""

import sys

import grpc

with open("cert.pem", "rb") as ca:
    credentials = grpc.ssl_channel_credentials(root_certificates=ca.read())
with grpc.secure_channel(sys.argv[1], credentials) as channel:
    hello = channel.unary_unary(
        "/greet.Greeter/Hello",
        request_serializer=str.encode,
        response_deserializer=bytes.decode,
    )
    print(hello("gRPC", timeout=10))
