"""Attacks on a real Gunicorn worker, raw frames over sockets: rapid reset,
CONTINUATION and HPACK floods, control-frame floods, slow clients, stream
limits and request smuggling. Shared helpers: tests/attacks/support.py."""
