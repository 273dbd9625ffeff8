"""What serving a WSGI request needs from its worker."""

from __future__ import annotations

from typing import Any

from h2workers.app.hooks import HookContext
from h2workers.app.wsgi.environ import worker_environ
from h2workers.app.wsgi.runner import WSGIApp


class ServeContext(HookContext):
    """The hooks' context, the WSGI app, and the environ keys every request
    of the worker shares."""

    def __init__(self, worker: Any, multithread: bool) -> None:
        super().__init__(worker)
        self.multithread = multithread  # wsgi.multithread: the driver knows
        self.app: WSGIApp = worker.wsgi
        self.base_environ = worker_environ(self.cfg)
