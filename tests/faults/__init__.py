"""Faults on a real Gunicorn worker: clients that vanish, signals and
restarts with streams in flight, misbehaving apps, and a soak
(``H2W_SOAK=1000000`` for the full soak; 200000 by default)."""
