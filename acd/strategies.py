"""Agent-selection strategies, pluggable by name.

A strategy orders the available agents that meet a call's requirement; the
first one gets the call (all of them for ``ring_all``). It is data, not
code paths, so that the indexed router (:mod:`acd.index`) and the full-scan
router (:mod:`acd.naive`) apply the same order:

``key(agent)``
    the agent's sort key, smallest first. It may only read fields that do
    not change while the agent is available (``idle_since``,
    ``calls_handled``, ``talk_time``, ``index``), because the index keeps
    available agents sorted by it. End it with ``agent.index`` so the
    order is total.
``by_level``
    rank by the level on the step's primary (first) skill, highest first,
    before the key.
``rotate``
    start after the agent this queue offered last (round robin).
``ring_all``
    offer to every candidate at once; the first to answer takes the call.

The full order is ``(-level on primary skill if by_level, after-pointer
first if rotate, key)``.

Built-in strategies::

    longest_idle        longest since becoming available
    most_skilled        highest level on the primary skill, then longest idle
    fewest_calls        fewest calls handled since login, then longest idle
    least_talk_time     least talk time since login, then longest idle
    round_robin         next agent in configuration order after the last one
    ring_all            every qualifying agent at once

Register your own with :meth:`StrategyRegistry.register`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from acd.model import Agent

__all__ = ["Strategy", "StrategyRegistry", "builtin_strategies"]

SortKey = Callable[[Agent], tuple[Any, ...]]


@dataclass(frozen=True, slots=True)
class Strategy:
    """A named agent order (see the module docstring)."""

    name: str
    key: SortKey
    by_level: bool = False
    rotate: bool = False
    ring_all: bool = False
    description: str = ""


def _idle(agent: Agent) -> tuple[Any, ...]:
    return (agent.idle_since, agent.index)


def _calls(agent: Agent) -> tuple[Any, ...]:
    return (agent.calls_handled, agent.idle_since, agent.index)


def _talk(agent: Agent) -> tuple[Any, ...]:
    return (agent.talk_time, agent.idle_since, agent.index)


def _order(agent: Agent) -> tuple[Any, ...]:
    return (agent.index,)


def builtin_strategies() -> list[Strategy]:
    """The six built-in strategies (fresh objects)."""
    return [
        Strategy("longest_idle", _idle, description="longest since becoming available"),
        Strategy(
            "most_skilled",
            _idle,
            by_level=True,
            description="highest level on the primary skill, then longest idle",
        ),
        Strategy("fewest_calls", _calls, description="fewest calls handled, then longest idle"),
        Strategy("least_talk_time", _talk, description="least talk time, then longest idle"),
        Strategy(
            "round_robin",
            _order,
            rotate=True,
            description="next in configuration order after the last agent offered",
        ),
        Strategy("ring_all", _idle, ring_all=True, description="every qualifying agent at once"),
    ]


class StrategyRegistry:
    """Strategies by name. A Router owns one; there is no global registry."""

    def __init__(self, strategies: list[Strategy] | None = None) -> None:
        self._by_name: dict[str, Strategy] = {}
        for strategy in builtin_strategies() if strategies is None else strategies:
            self.register(strategy)

    def register(self, strategy: Strategy) -> None:
        """Add (or replace) a strategy."""
        self._by_name[strategy.name] = strategy

    def get(self, name: str) -> Strategy:
        """The strategy called ``name``; KeyError names the known ones."""
        try:
            return self._by_name[name]
        except KeyError:
            known = ", ".join(sorted(self._by_name))
            raise KeyError(f"unknown strategy {name!r} (known: {known})") from None

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._by_name))
