"""HTTP/2 worker classes for Gunicorn.

Use one with ``gunicorn --worker-class h2workers.GThreadH2 ...``. The worker
classes are imported lazily so that importing the package (for example to
read the settings) never pulls in a concurrency library.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["GThreadH2", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "GThreadH2":
        from h2workers.drivers.gthread.worker import GThreadH2

        return GThreadH2
    raise AttributeError(name)
