"""A demo of h2workers: an app that shows what HTTP/2 adds, served with an
embedded self-signed certificate so that nothing has to be made by hand.

The certificate and key in this folder are public: never use them for
anything but a demo on your own machine.
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
CERTFILE = str(HERE / "cert.pem")
KEYFILE = str(HERE / "key.pem")
