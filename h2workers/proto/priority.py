"""Stream priority signals: RFC 9218 urgency/incremental and RFC 7540 weights.

Pure data and parsing, no I/O (part of the sans-I/O core). ``scheduler.py``
decides the order of bytes from what is kept here:

- ``StreamPriority``: what the application sees of a stream's priority, both
  schemes' values (the Gunicorn environ keys name the RFC 7540 ones).
- ``parse_field``: the ``priority`` header field (RFC 9218 4), sent by the
  client on a request, by the application on its response, or carried in a
  PRIORITY_UPDATE frame (``parse_update``, RFC 9218 7.1).
- ``DependencyTree``: the RFC 7540 5.3 tree, for clients that still send
  PRIORITY frames and HEADERS priority (RFC 9113 deprecates it, Safari and
  older clients still use it).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from h2.errors import ErrorCodes

from h2workers.errors import ProtocolViolation

PRIORITY_UPDATE_TYPE = 0x10  # RFC 9218 7.1
DEFAULT_URGENCY = 3
LOWEST_URGENCY = 7
DEFAULT_WEIGHT = 16


@dataclass(frozen=True, slots=True)
class StreamPriority:
    """A stream's priority as the application sees it (never mutated: a
    change is a new object, so a reader on another thread sees one whole)."""

    urgency: int = DEFAULT_URGENCY  # RFC 9218: 0 (first) to 7
    incremental: bool = False  # RFC 9218: its bytes may interleave with its peers'
    weight: int = DEFAULT_WEIGHT  # RFC 7540: 1-256, share among siblings
    depends_on: int = 0  # RFC 7540: parent stream, 0 for the root

    def with_field(self, value: bytes) -> StreamPriority:
        """This priority with a ``priority`` field value applied on top."""
        urgency, incremental = parse_field(value, self.urgency, self.incremental)
        return replace(self, urgency=urgency, incremental=incremental)

    def as_dict(self) -> dict[str, int | bool]:
        return {
            "urgency": self.urgency,
            "incremental": self.incremental,
            "weight": self.weight,
            "depends_on": self.depends_on,
        }


DEFAULT_PRIORITY = StreamPriority()


def parse_field(
    value: bytes, urgency: int = DEFAULT_URGENCY, incremental: bool = False
) -> tuple[int, bool]:
    """``u`` and ``i`` of a ``priority`` field (an RFC 8941 dictionary).

    RFC 9218 4: members other than ``u`` and ``i``, parameters, and values
    out of range or of the wrong type are ignored; the ones given override
    ``urgency`` and ``incremental``; a repeated member's last value wins.
    """
    for member in value.split(b","):
        key, _, rest = member.strip(b" \t").partition(b"=")
        item = rest.split(b";", 1)[0].strip(b" \t")
        if key == b"u":
            if item.isdigit() and len(item) == 1 and int(item) <= LOWEST_URGENCY:
                urgency = int(item)
        elif key.split(b";", 1)[0] == b"i":
            if not rest:  # a bare key is the boolean true
                incremental = True
            elif item in (b"?0", b"?1"):
                incremental = item == b"?1"
    return urgency, incremental


def parse_update(stream_id: int, payload: bytes) -> tuple[int, bytes]:
    """(prioritized stream, field value) of a PRIORITY_UPDATE frame.

    Raises ProtocolViolation (a connection error) for the frames RFC 9218
    7.1 rules out: on a stream other than 0, shorter than its stream id,
    or naming stream 0.
    """
    if stream_id != 0:
        raise ProtocolViolation("PRIORITY_UPDATE on a stream other than 0")
    if len(payload) < 4:
        raise ProtocolViolation(
            "PRIORITY_UPDATE shorter than 4 octets", ErrorCodes.FRAME_SIZE_ERROR
        )
    prioritized = int.from_bytes(payload[:4], "big") & 0x7FFFFFFF
    if prioritized == 0:
        raise ProtocolViolation("PRIORITY_UPDATE for stream 0")
    return prioritized, payload[4:]


@dataclass(slots=True)
class _Node:
    parent: int
    weight: int
    vtime: float = 0.0  # bytes sent / weight: the lowest among siblings goes next


@dataclass(slots=True)
class DependencyTree:
    """RFC 7540 5.3 dependencies of the streams prioritised that way.

    Holds the streams being served and the idle ones a client names as
    parents (Firefox used idle streams as groups), at most ``limit`` of the
    latter: the oldest idle node goes first, so a PRIORITY flood cannot grow
    it. A stream that ends hands its children to its parent, sharing its
    weight among them in proportion (RFC 7540 5.3.4).
    """

    limit: int
    nodes: dict[int, _Node] = field(default_factory=dict)
    served: set[int] = field(default_factory=set)
    floors: dict[int, float] = field(default_factory=dict)  # parent -> last vtime picked

    def set(self, sid: int, weight: int, depends_on: int, exclusive: bool) -> None:
        """Apply HEADERS priority or a PRIORITY frame (RFC 7540 5.3.3)."""
        nodes = self.nodes
        if depends_on == sid:  # h2 resets such a stream itself
            return
        node = nodes.get(sid)
        if node is None:
            node = nodes[sid] = _Node(0, DEFAULT_WEIGHT)
        if depends_on and depends_on not in nodes:  # 5.3.1: a default node
            nodes[depends_on] = _Node(0, DEFAULT_WEIGHT)
        if depends_on and sid in self.ancestors(depends_on):
            nodes[depends_on].parent = node.parent  # no cycle: it moves up first
        if exclusive:
            for other_id, other in nodes.items():
                if other.parent == depends_on and other_id != sid:
                    other.parent = sid
        node.parent, node.weight = depends_on, weight
        self._bound()

    def serve(self, sid: int) -> None:
        self.served.add(sid)

    def remove(self, sid: int) -> None:
        """The stream ended: its children move to its parent."""
        self.served.discard(sid)
        node = self.nodes.pop(sid, None)
        self.floors.pop(sid, None)
        if node is None:
            return
        children = [child for child in self.nodes.values() if child.parent == sid]
        total = sum(child.weight for child in children)
        for child in children:
            child.parent = node.parent
            child.weight = max(1, node.weight * child.weight // total)

    def ancestors(self, sid: int) -> list[int]:
        """``sid``'s parents up to (not including) the root."""
        chain: list[int] = []
        node = self.nodes.get(sid)
        while node is not None and node.parent and len(chain) <= len(self.nodes):
            chain.append(node.parent)
            node = self.nodes.get(node.parent)
        return chain

    def pick(self, ready: list[int]) -> int | None:
        """The stream of ``ready`` that sends next.

        A stream waits while one it depends on is ready (RFC 7540 5.3.1);
        among siblings the one with the lowest ``vtime`` goes, so bytes
        follow the weights (weighted fair queueing, level by level).
        """
        waiting = set(ready)
        paths = []  # root-first chains of the streams free to send
        for sid in ready:
            above = self.ancestors(sid)
            if not waiting.intersection(above):
                paths.append([*reversed(above), sid])
        depth, parent = 0, 0
        while paths:
            floor = self.floors.get(parent, 0.0)
            choice, best = 0, 0.0
            for path in paths:
                step = path[depth]
                node = self.nodes[step]
                if node.vtime < floor:  # it was idle: it starts level with the rest
                    node.vtime = floor
                if not choice or (node.vtime, step) < (best, choice):
                    choice, best = step, node.vtime
            paths = [path for path in paths if path[depth] == choice]
            if len(paths[0]) == depth + 1:
                return choice
            depth, parent = depth + 1, choice
        return None

    def sent(self, sid: int, nbytes: int) -> None:
        """Advance the virtual times on ``sid``'s chain by the bytes it sent."""
        step = sid
        for parent in [*self.ancestors(sid), 0]:
            node = self.nodes.get(step)
            if node is None:
                break
            self.floors[parent] = node.vtime
            node.vtime += nbytes / node.weight
            step = parent

    def _bound(self) -> None:
        """Drop the oldest idle nodes past ``limit`` (their children move up)."""
        if len(self.nodes) <= self.limit:
            return
        idle = [sid for sid in self.nodes if sid not in self.served]
        for sid in idle[: len(idle) - self.limit]:
            self.remove(sid)
