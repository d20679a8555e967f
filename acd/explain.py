"""Why an agent got a call: attached to every :class:`acd.events.Offer`.

Two paths lead to an offer, named by ``trigger``:

* a call needs an agent (``call_arrived``, ``requeued`` after a ring-no-answer
  or decline, ``step_relaxed`` when a routing step widened the requirement,
  ``redispatch`` after reconfigure/restore): the queue's strategy ordered
  the available agents that meet the step in force; ``candidates`` lists
  the first few in that order (the chosen ones first, the runners-up after);
* an agent became available (``agent_available``): the ACD gave them the
  waiting call ranked first (highest priority, then longest waiting,
  across all queues) among the ``calls_eligible`` calls they can take.
  Before this instant no waiting call had an available agent, so the agent
  was the only candidate and no strategy was needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from acd.model import AgentConfig, Requirement

__all__ = ["Candidate", "Considered", "Explanation"]


@dataclass(frozen=True, slots=True)
class Candidate:
    """An agent the strategy looked at: their level on each required skill,
    how long they had been idle, and the strategy's sort key (smaller first)."""

    agent: str
    levels: tuple[tuple[str, int], ...]
    idle_for: float
    key: tuple[Any, ...]


Considered = tuple[tuple[AgentConfig, float, tuple[Any, ...]], ...]
"""The candidates as the router saw them: (agent configuration, seconds idle,
strategy sort key) each."""


@dataclass(slots=True, unsafe_hash=True, init=False)
class Explanation:
    """Why this offer: trigger, queue, strategy, the step in force and its
    requirement, the call's priority and wait, and the candidates.

    Built on every offer, so the router stores only what it already holds at
    decision time (``considered``: each candidate's configuration, which is
    immutable, their idle time then and their sort key); :attr:`candidates`,
    :meth:`text` and :meth:`to_dict` format it when asked."""

    trigger: str
    queue: str
    strategy: str
    step: int
    requirement: Requirement
    priority: int
    waited: float
    considered: Considered
    chosen: int = 1
    """How many of ``candidates`` were offered the call (all for ring-all)."""
    calls_eligible: int | None = None

    def __init__(
        self,
        trigger: str,
        queue: str,
        strategy: str,
        step: int,
        requirement: Requirement,
        priority: int,
        waited: float,
        considered: Considered,
        chosen: int = 1,
        calls_eligible: int | None = None,
    ) -> None:
        self.trigger = trigger
        self.queue = queue
        self.strategy = strategy
        self.step = step
        self.requirement = requirement
        self.priority = priority
        self.waited = waited
        self.considered = considered
        self.chosen = chosen
        self.calls_eligible = calls_eligible

    @property
    def candidates(self) -> tuple[Candidate, ...]:
        """The agents the strategy looked at, the chosen ones first, with
        their level on each skill of the requirement."""
        skills = self.requirement.skills
        return tuple(
            Candidate(
                config.name,
                tuple((name, config.skills.get(name, 0)) for name, _ in skills),
                idle_for,
                key,
            )
            for config, idle_for, key in self.considered
        )

    def text(self) -> str:
        """One line for logs and the agent's screen."""
        head = (
            f"{self.trigger}: queue {self.queue} step {self.step + 1} "
            f"({self.requirement.describe()}), priority {self.priority}, "
            f"waited {self.waited:.1f}s"
        )
        candidates = self.candidates
        chosen = candidates[: self.chosen]
        names = ", ".join(_describe(c) for c in chosen)
        if self.trigger == "agent_available":
            return f"{head}; {names} became available; first of {self.calls_eligible} calls"
        rest = candidates[self.chosen :]
        text = f"{head}; {self.strategy} chose {names}"
        if rest:
            text += "; next: " + ", ".join(_describe(c) for c in rest)
        return text

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (for logs and the call's history)."""
        return {
            "trigger": self.trigger,
            "queue": self.queue,
            "strategy": self.strategy,
            "step": self.step,
            "requirement": {
                "skills": dict(self.requirement.skills),
                "groups": sorted(self.requirement.groups),
            },
            "priority": self.priority,
            "waited": self.waited,
            "candidates": [
                {
                    "agent": c.agent,
                    "levels": dict(c.levels),
                    "idle_for": c.idle_for,
                    "key": list(c.key),
                }
                for c in self.candidates
            ],
            "chosen": self.chosen,
            "calls_eligible": self.calls_eligible,
        }


def _describe(candidate: Candidate) -> str:
    levels = " ".join(f"{name}={level}" for name, level in candidate.levels)
    return f"{candidate.agent} ({levels + ', ' if levels else ''}idle {candidate.idle_for:.1f}s)"
