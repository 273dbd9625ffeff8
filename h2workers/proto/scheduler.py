"""The order in which queued response bodies go out (part of the sans-I/O core).

Each flush, the streams with something queued are put in lanes by their
``Rank`` and the lanes take turns a frame at a time:

- lower RFC 9218 urgency first: a group of lanes goes only when every stream
  of a more urgent group has sent all it can (done, or out of window);
- within one urgency, the non-incremental streams form one lane that sends
  them one after another in stream-id order, each incremental stream is a
  lane of its own, and the streams a client prioritised the RFC 7540 way
  form one lane ordered by their dependency tree (urgency 3, the default);
- a stream without any signal is RFC 9218's default: urgency 3, not
  incremental.

Which signal counts is decided as signals arrive and kept in the ``Rank``:
an RFC 9218 one wins over RFC 7540 ones (RFC 9218 2.1); among RFC 9218 ones
the newest wins, whether it is the client's (the ``priority`` header, a
PRIORITY_UPDATE) or the application's (a ``priority`` response header).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TypeVar

import h2.events as h2e

from h2workers.proto.headers import RequestHead
from h2workers.proto.priority import (
    DEFAULT_URGENCY,
    DEFAULT_WEIGHT,
    DependencyTree,
    StreamPriority,
    parse_field,
)

_T = TypeVar("_T")

# A frame sent for a stream: (body bytes it carried, whether the stream is
# done); None if its flow-control window is closed.
Sent = tuple[int, bool] | None


@dataclass(slots=True)
class Rank:
    """How one served stream is scheduled."""

    urgency: int = DEFAULT_URGENCY
    incremental: bool = False
    signalled: bool = False  # an RFC 9218 signal arrived: RFC 7540 ones no longer count
    in_tree: bool = False  # scheduled by its RFC 7540 dependencies


@dataclass(slots=True)
class _Lane:
    ready: list[int]  # streams still able to send this flush, in turn order
    tree: bool = False


class Scheduler:
    """The priority signals of one connection, and the turns of each flush.

    Signals for a stream not opened yet (RFC 9113 5.3 allows PRIORITY
    frames for idle streams, RFC 9218 7 a PRIORITY_UPDATE ahead of its
    HEADERS) wait here, at most ``limit`` of each, oldest dropped first.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.tree = DependencyTree(limit)
        self.rfc7540 = True  # False once the client sent SETTINGS_NO_RFC7540_PRIORITIES=1
        self._early_weights: dict[int, h2e.PriorityUpdated] = {}
        self._early_fields: dict[int, bytes] = {}
        self._last_sent = 0  # the stream that sent the last frame (see _rotated)

    # -- signals -------------------------------------------------------------

    def admit(self, sid: int, head: RequestHead, sent: h2e.PriorityUpdated | None) -> Rank:
        """A request's rank, from its HEADERS priority (``sent``) or an
        earlier PRIORITY frame, its ``priority`` field, and an earlier
        PRIORITY_UPDATE (the latest signal last); sets ``head.priority``."""
        rank = Rank()
        early = self._early_weights or self._early_fields
        if sent is None and head.priority_field is None and not early:
            return rank  # the usual request: no signal, nothing to do
        weights = sent or self._early_weights.pop(sid, None)
        fields = [head.priority_field, self._early_fields.pop(sid, None)]
        priority = head.priority
        if weights is not None:
            priority = self._depend(sid, priority, rank, weights)
        for value in fields:
            if value is not None:
                priority = self._signal(priority, rank, value)
        head.priority = priority
        return rank

    def early_weights(self, sid: int, event: h2e.PriorityUpdated) -> None:
        _remember(self._early_weights, sid, event, self.limit)

    def early_field(self, sid: int, value: bytes) -> None:
        _remember(self._early_fields, sid, value, self.limit)

    def reweigh(
        self, sid: int, priority: StreamPriority, rank: Rank, event: h2e.PriorityUpdated
    ) -> StreamPriority:
        """A PRIORITY frame for a served stream: its new priority."""
        return self._depend(sid, priority, rank, event)

    def update(self, priority: StreamPriority, rank: Rank, value: bytes) -> StreamPriority:
        """A PRIORITY_UPDATE for a served stream (RFC 9218 7): its new priority."""
        return self._signal(priority, rank, value)

    def answer(self, rank: Rank, value: bytes) -> None:
        """The application's response carries a ``priority`` field: it
        orders the response from now on, until the client sends a newer
        signal (RFC 9218 8 lets a server combine signals its own way)."""
        rank.urgency, rank.incremental = parse_field(value, rank.urgency, rank.incremental)
        rank.signalled, rank.in_tree = True, False

    def forget(self, sid: int) -> None:
        if self.tree.nodes:
            self.tree.remove(sid)

    def _depend(
        self, sid: int, priority: StreamPriority, rank: Rank, event: h2e.PriorityUpdated
    ) -> StreamPriority:
        weight = event.weight if event.weight is not None else DEFAULT_WEIGHT
        depends_on = event.depends_on or 0
        if self.rfc7540:
            self.tree.set(sid, weight, depends_on, bool(event.exclusive))
            self.tree.serve(sid)
            rank.in_tree = not rank.signalled
        return replace(priority, weight=weight, depends_on=depends_on)

    def _signal(self, priority: StreamPriority, rank: Rank, value: bytes) -> StreamPriority:
        priority = priority.with_field(value)
        rank.urgency, rank.incremental = priority.urgency, priority.incremental
        rank.signalled, rank.in_tree = True, False  # RFC 9218 2.1: it wins
        return priority

    # -- turns ---------------------------------------------------------------

    def run(
        self, ranks: dict[int, Rank], send: Callable[[int], Sent], full: Callable[[], bool]
    ) -> bool:
        """Send frames for the streams of ``ranks`` until each is done or
        blocked; True if it stopped early because ``full()`` said so."""
        for lanes in self._lanes(ranks):
            while lanes:
                still: list[_Lane] = []
                for lane in lanes:
                    if full():
                        return True
                    if self._turn(lane, send):
                        still.append(lane)
                lanes = still
        return False

    def _lanes(self, ranks: dict[int, Rank]) -> list[list[_Lane]]:
        """The lanes of each urgency, most urgent first."""
        if len(ranks) == 1:  # the usual case: nothing to order
            return [[_Lane(list(ranks))]]
        sequential: dict[int, list[int]] = {}
        groups: dict[int, list[_Lane]] = {}
        tree: list[int] = []
        for sid in sorted(ranks):
            rank = ranks[sid]
            if rank.in_tree:
                tree.append(sid)
            elif rank.incremental:
                groups.setdefault(rank.urgency, []).append(_Lane([sid]))
            else:
                sequential.setdefault(rank.urgency, []).append(sid)
        for urgency, sids in sequential.items():
            groups.setdefault(urgency, []).insert(0, _Lane(sids))
        if tree:
            groups.setdefault(DEFAULT_URGENCY, []).append(_Lane(tree, tree=True))
        return [self._rotated(groups[urgency]) for urgency in sorted(groups)]

    def _rotated(self, lanes: list[_Lane]) -> list[_Lane]:
        """The lanes from the one after the lane that sent last: a flush
        may have room for a frame or two only (a client reopening its
        window a little at a time), and the turns must go round across
        flushes, not restart with the same lane each time."""
        last = self._last_sent
        for index, lane in enumerate(lanes):
            if last in lane.ready:
                return lanes[index + 1 :] + lanes[: index + 1]
        return lanes

    def _turn(self, lane: _Lane, send: Callable[[int], Sent]) -> bool:
        """One frame from the lane; False once it has nothing left to send."""
        ready = lane.ready
        while ready:
            sid = self.tree.pick(ready) if lane.tree else ready[0]
            if sid is None:
                return False
            sent = send(sid)
            if sent is None or sent[1]:
                ready.remove(sid)
            if sent is None:
                continue
            if lane.tree:
                self.tree.sent(sid, sent[0])
            self._last_sent = sid
            return True
        return False


def _remember(early: dict[int, _T], sid: int, value: _T, limit: int) -> None:
    early[sid] = value
    if len(early) > limit:
        del early[next(iter(early))]
