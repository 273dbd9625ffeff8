"""Talk to websocket_app.py with the websockets library: python websocket_client.py URL"""

import ssl
import sys

from websockets.sync.client import connect

context = ssl.create_default_context(cafile="cert.pem")
with connect(sys.argv[1], ssl=context) as websocket:
    websocket.send("hello")
    print(websocket.recv(timeout=10))
