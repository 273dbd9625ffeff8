"""Thread primitives of the GThreadH2 driver, built for a cheap hand-off.

* ``Parker``: one per pool thread, reused for every stream that thread
  serves, so no lock or condition is created per request. ``unpark`` before
  ``park`` leaves a permit, so a wake-up is never lost; callers re-check
  their condition in a loop, so a stale permit costs one spin.
* ``ThreadPool``: threads taking jobs from a ``SimpleQueue`` (cheaper than
  ``queue.Queue`` or a ``concurrent.futures`` executor).
* ``Mailbox``: how pool threads hand commands to the I/O thread: a deque
  plus a pipe byte that wakes the selector, written only when the I/O
  thread is not already due to look.
"""

from __future__ import annotations

import os
import queue
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

Job = Callable[["Parker"], None]


class Parker:
    """A binary semaphore a thread parks on until someone unparks it."""

    __slots__ = ("_lock",)

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lock.acquire()

    def park(self, timeout: float) -> bool:
        """Wait for a permit; False on timeout."""
        return self._lock.acquire(timeout=timeout)

    def unpark(self) -> None:
        try:
            self._lock.release()
        except RuntimeError:
            pass  # a permit is already waiting


class ThreadPool:
    """A fixed set of daemon threads running jobs in arrival order."""

    def __init__(self, size: int, on_error: Callable[[BaseException], None]) -> None:
        self._jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._on_error = on_error
        self._threads = [
            threading.Thread(target=self._run, name=f"h2workers-{i}", daemon=True)
            for i in range(size)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, job: Job) -> None:
        self._jobs.put(job)

    def _run(self) -> None:
        parker = Parker()
        while True:
            job = self._jobs.get()
            if job is None:
                return
            try:
                job(parker)
            except BaseException as exc:  # a job must never kill its thread
                self._on_error(exc)

    def stop(self, timeout: float) -> None:
        for _ in self._threads:
            self._jobs.put(None)
        for thread in self._threads:
            thread.join(timeout)


class Mailbox:
    """Commands from pool threads to the I/O thread, with a selector wake-up."""

    def __init__(self, on_error: Callable[[BaseException], None]) -> None:
        self._on_error = on_error
        self._commands: deque[tuple[Callable[..., None], tuple[Any, ...]]] = deque()
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._read_fd, False)
        os.set_blocking(self._write_fd, False)
        self._wake_due = False

    def fileno(self) -> int:
        return self._read_fd

    def post(self, command: Callable[..., None], *args: Any) -> None:
        """Queue ``command(*args)`` to run on the I/O thread."""
        self._commands.append((command, args))
        if not self._wake_due:
            self._wake_due = True
            try:
                os.write(self._write_fd, b"\0")
            except BlockingIOError:
                pass  # the pipe is full: the I/O thread is due to look anyway

    def drain_pipe(self) -> None:
        """Consume wake-up bytes (when the selector reports the pipe)."""
        try:
            os.read(self._read_fd, 4096)
        except BlockingIOError:
            pass

    def run_all(self) -> None:
        """Run the commands queued so far (I/O thread only, every loop turn).

        Commands posted meanwhile wait for the next turn (their post wrote
        a wake-up byte, so the selector does not block): an app that writes
        without pause must not keep the loop from its tick, whose heartbeat
        keeps the arbiter from killing the worker."""
        self._wake_due = False  # before draining: a later post must write again
        commands = self._commands
        for _ in range(len(commands)):
            command, args = commands.popleft()
            try:
                command(*args)
            except Exception as exc:  # a bug of ours must not stop the I/O thread
                self._on_error(exc)

    def close(self) -> None:
        for fd in (self._read_fd, self._write_fd):
            try:
                os.close(fd)
            except OSError:
                pass
