"""One stream of a session: its state, and the counts its application side keeps.

A ``Stream`` is shared by two sides that may run on different threads: the
session (with the core, on the connection's thread) and the application
side (``channel.py``, on a pool thread, a greenlet or a task). Every field
has exactly one writer, named below, so no lock is taken:

* the session writes ``state``, ``abort_code``, ``chunks`` (appends),
  ``body_done`` and ``priority`` (see ``Stream.watch_priority``);
* the core writes the two counts the stream refers to: ``inbound``
  (request-body bytes handed out and window credit given back) and
  ``outbound.framed`` (response bytes that left for the wire);
* the application side writes ``taken``, ``needed``, ``asked``,
  ``reported`` and ``posted``, and pops ``chunks``.

Nobody keeps a copy of a count another side owns: two counts of the same
response bytes, drifting apart, once stalled every download after 1 MiB.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable
from typing import Protocol

from h2.errors import ErrorCodes

from h2workers.proto.flow import Inbound
from h2workers.proto.headers import RequestHead
from h2workers.proto.outbound import Outbound
from h2workers.proto.priority import StreamPriority


class StreamState(enum.Enum):
    """Where a stream stands, as the session sees it."""

    OPEN = "open"  # the application serves it (or is about to)
    DONE = "done"  # the application sent its last command; the core sends the rest
    ABORTED = "aborted"  # reset (by the peer or by us) or its connection ended

    __hash__ = object.__hash__  # members are singletons: skip Enum's hash of the name


class StreamEvent(enum.Enum):
    """What moves a stream from one state to another."""

    APP_DONE = "the application ended or reset the stream"
    ABORT = "the stream was reset or its connection ended"

    __hash__ = object.__hash__


# The whole state machine: (state, event) -> next state. A pair missing here
# is a race that ended already (a reset arriving after the app finished, an
# app command after a reset) and changes nothing.
TRANSITIONS: dict[tuple[StreamState, StreamEvent], StreamState] = {
    (StreamState.OPEN, StreamEvent.APP_DONE): StreamState.DONE,
    (StreamState.OPEN, StreamEvent.ABORT): StreamState.ABORTED,
}


OPEN = StreamState.OPEN  # looked up on every command: a module constant is cheaper


class Waiter(Protocol):
    """How an application side waits: a parked thread, a green event..."""

    def unpark(self) -> None:
        """Let the waiting side run on (a permit if it is not waiting yet)."""


class Stream:
    """A stream of a session, shared by the session and the app side."""

    __slots__ = (
        "abort_code",
        "asked",
        "body_done",
        "chunks",
        "head",
        "inbound",
        "needed",
        "outbound",
        "posted",
        "priority",
        "priority_listener",
        "pushes",
        "reported",
        "state",
        "stream_id",
        "taken",
        "waiter",
    )

    def __init__(
        self,
        stream_id: int,
        head: RequestHead,
        body_done: bool,
        inbound: Inbound,
        outbound: Outbound,
    ) -> None:
        self.stream_id = stream_id
        self.head = head  # read-only once the app has it
        self.state = StreamState.OPEN
        self.abort_code = ErrorCodes.CANCEL
        # request body: chunks fed by the session, taken by the app
        self.chunks: deque[bytes] = deque()
        self.body_done = body_done  # no more chunks will come
        self.inbound = inbound
        # Running totals of the app side: ``taken`` (body bytes handed to
        # the app), ``needed`` (what its pending read must have to return),
        # ``asked`` (what it expects to read soon: the window may reopen
        # that far as bytes arrive), ``reported`` (``taken`` last reported
        # to the session: its own messages, not a count of credit).
        self.taken = self.needed = self.asked = self.reported = 0
        self.outbound = outbound
        self.posted = 0  # response bytes the app handed over
        self.pushes = 0  # PUSH_PROMISEs sent on this stream (the session's count)
        self.waiter: Waiter | None = None  # set while the app side waits
        # from the head, then PRIORITY and PRIORITY_UPDATE frames
        self.priority = head.priority
        # Set by the app layer to show changes (the WSGI environ's keys);
        # watch_priority tells how the two sides share them.
        self.priority_listener: Callable[[StreamPriority], None] | None = None

    def move(self, event: StreamEvent) -> bool:
        """Apply ``event``; False if it changes nothing (see TRANSITIONS)."""
        after = TRANSITIONS.get((self.state, event))
        if after is None:
            return False
        self.state = after
        return True

    def reprioritize(self, priority: StreamPriority) -> None:
        """A PRIORITY or PRIORITY_UPDATE frame changed it (the session's side)."""
        self.priority = priority
        listener = self.priority_listener
        if listener is not None:
            listener(priority)

    def watch_priority(self, listener: Callable[[StreamPriority], None]) -> None:
        """Show ``listener`` the priority now and at each change.

        Called on the application side, without a lock: the listener is
        published first, then shown the current value until that value is
        still current afterwards. A change the session makes meanwhile is
        shown by the session itself (it sees the listener) or by the next
        round here, so the last value shown is always the latest."""
        self.priority_listener = listener
        while True:
            priority = self.priority
            listener(priority)
            if self.priority is priority:
                break
        if self.state is not OPEN:  # released meanwhile: see Session._release
            self.priority_listener = None

    def wake(self) -> None:
        waiter = self.waiter
        if waiter is not None:
            waiter.unpark()
