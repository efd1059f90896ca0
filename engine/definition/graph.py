"""A workflow's declared moves, indexed once: the one answer to "where does this lead?"

Validation (reachability), the states' reading order, execution and replay (which
moves are legal), operations and the console (which states lie ahead) all ask this
graph; nothing else walks the edges.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType


@dataclass(frozen=True, slots=True)
class Edge:
    """A declared move: ``trigger`` takes the run from ``source`` to ``dest``."""

    trigger: str
    source: str
    dest: str


@dataclass(frozen=True, slots=True)
class Graph:
    """Declared moves by source state, in the order they were declared."""

    edges: tuple[Edge, ...]
    out: Mapping[str, tuple[Edge, ...]]

    @classmethod
    def of(cls, edges: Iterable[Edge]) -> Graph:
        """The graph of ``edges`` (validation reports a trigger declared twice from a state;
        the first declared answers ``destination``)."""
        listed = tuple(edges)
        out: dict[str, list[Edge]] = {}
        for edge in listed:
            out.setdefault(edge.source, []).append(edge)
        return cls(listed, MappingProxyType({s: tuple(moves) for s, moves in out.items()}))

    def destination(self, state: str, trigger: str) -> str | None:
        """Where ``trigger`` leads from ``state``, or ``None`` if that move is not declared."""
        return next((e.dest for e in self.out.get(state, ()) if e.trigger == trigger), None)

    def triggers_from(self, state: str) -> tuple[str, ...]:
        """The triggers declared from ``state``, sorted."""
        return tuple(sorted({e.trigger for e in self.out.get(state, ())}))

    def sources(self) -> frozenset[str]:
        """The states that have at least one move out."""
        return frozenset(self.out)

    def ahead_of(self, start: str) -> tuple[str, ...]:
        """States reachable from ``start`` by one or more moves, nearest first (breadth
        first, each state's moves in declared order); ``start`` itself only if a cycle
        leads back to it."""
        seen: dict[str, None] = {}
        queue = deque([start])
        while queue:
            for edge in self.out.get(queue.popleft(), ()):
                if edge.dest not in seen:
                    seen[edge.dest] = None
                    queue.append(edge.dest)
        return tuple(seen)

    def reading_order(self, initial: str, states: Iterable[str]) -> tuple[str, ...]:
        """``states`` as people read a workflow: from ``initial`` breadth first, then
        any the initial state does not lead to, sorted."""
        order = [initial, *(s for s in self.ahead_of(initial) if s != initial)]
        return (*order, *sorted(set(states) - set(order)))
