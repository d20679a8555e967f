"""The two questions a routing decision asks, and the order that answers them.

The Router keeps its own state machine and asks a :class:`Matcher`:

``agents_for(requirement, strategy, pointer, limit)``
    available agents meeting ``requirement``, in the strategy's order
    (:func:`agent_order`), at most ``limit`` (``None``: all);
``call_for(agent)``
    the waiting call ranked first (``Call.rank``: highest priority, then
    earliest ``enqueued_at``, then arrival) whose requirement the agent
    meets, and how many waiting calls they meet.

It tells the matcher which agents are available (``add_agent`` /
``remove_agent``) and which calls wait, with which requirement
(``add_call`` / ``remove_call``). :mod:`acd.index` answers from indexes,
:mod:`acd.naive` by scanning everything; both must give the same answers.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from acd.model import Agent, Call, Requirement
from acd.strategies import Strategy

__all__ = ["Entry", "Matcher", "agent_order"]

Entry = tuple[tuple[Any, ...], int]
"""An available agent in a strategy's index: (strategy key, agent index)."""


class Matcher(ABC):
    """Finds agents for calls and calls for agents (see module docstring).

    The abstract base class of the matchers, implemented by
    :class:`acd.index.IndexedMatcher` and :class:`acd.naive.NaiveMatcher`
    (not a Protocol: in the compiled build, acd.native, the Router then calls
    its matcher's methods directly)."""

    @abstractmethod
    def add_agent(self, agent: Agent) -> None: ...

    @abstractmethod
    def remove_agent(self, agent: Agent) -> None: ...

    @abstractmethod
    def add_call(self, call: Call) -> None: ...

    @abstractmethod
    def remove_call(self, call: Call) -> None: ...

    @abstractmethod
    def agents_for(
        self, requirement: Requirement, strategy: Strategy, pointer: Entry | None, limit: int | None
    ) -> list[tuple[Agent, Entry]]: ...

    @abstractmethod
    def call_for(self, agent: Agent) -> tuple[Call | None, int]: ...


def agent_order(
    strategy: Strategy, requirement: Requirement, agent: Agent, pointer: Entry | None
) -> tuple[Any, ...]:
    """The full sort key of an available agent for a strategy: level on the
    primary skill first (highest first) when ``by_level``, then agents after
    the round-robin ``pointer`` before the others when ``rotate``, then the
    strategy's key and the agent index."""
    entry: Entry = (strategy.key(agent), agent.index)
    parts: list[Any] = []
    if strategy.by_level and requirement.skills:
        parts.append(-agent.config.skills.get(requirement.skills[0][0], 0))
    if strategy.rotate and pointer is not None:
        parts.append(0 if entry > pointer else 1)
    parts.append(entry)
    return tuple(parts)
