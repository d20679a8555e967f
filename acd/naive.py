"""The same routing policy by full scans: the reference for acd.index.

:class:`NaiveRouter` is the :class:`acd.core.Router` state machine with a
matcher that looks at every available agent and every waiting call for each
decision, sorting with :func:`acd.matching.agent_order`. It is the
straightforward implementation that the indexed one must agree with
(``tests/test_acd_stateful.py``, ``bench/acd_routing.py``) and the baseline
the benchmark measures the index against.
"""

from __future__ import annotations

from acd.core import Router
from acd.matching import Entry, Matcher, agent_order
from acd.model import Agent, Call, Requirement
from acd.strategies import Strategy

__all__ = ["NaiveMatcher", "NaiveRouter"]


class NaiveMatcher(Matcher):
    """Full-scan :class:`acd.matching.Matcher`."""

    def __init__(self) -> None:
        self._agents: dict[int, Agent] = {}
        self._calls: dict[int, Call] = {}

    def add_agent(self, agent: Agent) -> None:
        self._agents[agent.index] = agent

    def remove_agent(self, agent: Agent) -> None:
        del self._agents[agent.index]

    def add_call(self, call: Call) -> None:
        self._calls[call.seq] = call

    def remove_call(self, call: Call) -> None:
        del self._calls[call.seq]

    def agents_for(
        self, requirement: Requirement, strategy: Strategy, pointer: Entry | None, limit: int | None
    ) -> list[tuple[Agent, Entry]]:
        eligible = [
            agent
            for agent in self._agents.values()
            if requirement.matches(agent.config.skills, agent.config.groups)
        ]
        eligible.sort(key=lambda agent: agent_order(strategy, requirement, agent, pointer))
        if limit is not None:
            eligible = eligible[:limit]
        return [(agent, (strategy.key(agent), agent.index)) for agent in eligible]

    def call_for(self, agent: Agent) -> tuple[Call | None, int]:
        skills, groups = agent.config.skills, agent.config.groups
        best: Call | None = None
        count = 0
        for call in self._calls.values():
            if call.requirement.matches(skills, groups):
                count += 1
                if best is None or call.rank < best.rank:
                    best = call
        return best, count


class NaiveRouter(Router):
    """:class:`acd.core.Router` deciding by full scans (same decisions)."""

    def _make_matcher(self) -> Matcher:
        return NaiveMatcher()
