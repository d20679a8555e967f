"""Rebuilding the Router's derived tables: at start, on reconfigure, on restore.

The Router's state is its agents and calls; everything else is derived
and rebuilt here from them and the configuration: agent order, which
agents can serve which queue (and how many are logged in), the serving
tallies behind the EWT, the queue lines, the matcher's indexes and the
timer heap. :func:`settle` then restores the routing rule (no waiting
call beside an idle qualified agent) after the configuration or state
changed under it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from acd.events import CancelOffer, Effect
from acd.ewt import ServingAgents
from acd.model import AcdConfig, Agent, AgentState, Call, CallState, OverflowAction
from acd.timers import ANNOUNCE, LEASE, MAX_WAIT, NO_AGENTS, RING, WRAP

if TYPE_CHECKING:
    from acd.core import Router

__all__ = ["install", "orphans", "settle"]

Orphan = tuple[Call, OverflowAction, list[Agent]]


def install(router: Router, config: AcdConfig) -> None:
    """(Re)build every derived table for ``config`` from the agents and
    calls as they are: agent order, queue membership, staffing, lines,
    the matcher and the timers."""
    previous = router._agents
    router.config = config
    router._by_index = []
    router._agents = {}
    for index, (name, agent_config) in enumerate(config.agents.items()):
        agent = previous.get(name)
        if agent is None:
            agent = Agent(config=agent_config, index=index)
        agent.config = agent_config
        agent.index = index
        agent.removed = False
        router._agents[name] = agent
        router._by_index.append(agent)
    departed = -1
    for name, agent in previous.items():
        if name not in config.agents and agent.state is not AgentState.OFFLINE:
            agent.removed = True
            agent.index = departed
            departed -= 1
            router._agents[name] = agent
    router._queue_agents = {}
    router._agent_queues = {}
    by_skill: dict[str, list[Agent]] = {}
    for agent in router._by_index:
        for skill in agent.config.skills:
            by_skill.setdefault(skill, []).append(agent)
    for name, queue in config.queues.items():
        members: set[int] = set()
        for step in queue.steps:
            requirement = step.requirement
            pool: list[Agent] = router._by_index
            if requirement.skills:
                pool = min((by_skill.get(skill, []) for skill, _ in requirement.skills), key=len)
            for agent in pool:
                if requirement.matches(agent.config.skills, agent.config.groups):
                    members.add(agent.index)
        router._queue_agents[name] = sorted(members)
        for index in router._queue_agents[name]:
            router._agent_queues[index] = (*router._agent_queues.get(index, ()), name)
    router._staffed = {name: 0 for name in config.queues}
    # queues served by the same agents share one tally (an agent's change of
    # state then updates it once, however many of those queues there are)
    shared: dict[tuple[int, ...], ServingAgents] = {}
    router._serving = {}
    for name in config.queues:
        members_key = tuple(router._queue_agents[name])
        tally = shared.get(members_key)
        if tally is None:
            tally = shared[members_key] = ServingAgents()
        router._serving[name] = tally
    router._agent_pools = {}
    for index, queue_names in router._agent_queues.items():
        tallies: list[ServingAgents] = []
        for queue_name in queue_names:
            tally = router._serving[queue_name]
            if not any(tally is seen for seen in tallies):
                tallies.append(tally)
        router._agent_pools[index] = tuple(tallies)
    router._matcher = router._make_matcher()
    router._in_matcher = set()
    router._timers = []
    for agent in router._by_index:
        if agent.state is not AgentState.OFFLINE:
            for queue_name in router._agent_queues.get(agent.index, ()):
                router._staffed[queue_name] += 1
        router._serve(agent, agent.state, 1)
        if agent.state is AgentState.AVAILABLE:
            router._in_matcher.add(agent.name)
            router._matcher.add_agent(agent)
    for agent in router._agents.values():
        if agent.wrap_until is not None and agent.state is AgentState.WRAP_UP:
            router._schedule(agent.wrap_until, WRAP, agent)
        if agent.lease_until is not None and agent.state is not AgentState.OFFLINE:
            router._schedule(agent.lease_until, LEASE, agent)
    router._lines = {name: [] for name in config.queues}
    router._in_queue = {name: 0 for name in config.queues}
    router._call_ids = {}
    router._rr = {queue: entry for queue, entry in router._rr.items() if queue in config.queues}
    for call in router._calls.values():
        found = config.queues.get(call.queue)
        if found is None or call.state is CallState.ANSWERED:
            continue
        queue = found
        router._in_queue[call.queue] += 1
        call.priority = queue.priority + call.own_priority
        limit = (
            call.max_wait
            if len(call.visited) <= 1 and call.max_wait is not None
            else queue.max_wait
        )
        if limit is None or call.callback is not None or call.expired:
            call.max_wait_at = None  # expired: overflows if its offer fails
        else:
            call.max_wait_at = call.entered_at + limit
            router._schedule(call.max_wait_at, MAX_WAIT, call)
        router._set_step(call, max(router._now, call.entered_at))
        if call.state is CallState.RINGING and call.ring_until is not None:
            router._schedule(call.ring_until, RING, call, call.offer_seq)
        if call.next_announce is not None:
            if queue.announce is None:
                call.next_announce = None
            else:
                router._schedule(call.next_announce, ANNOUNCE, call)
        if call.no_agents_until is not None:
            router._schedule(call.no_agents_until, NO_AGENTS, call)
        if call.state is CallState.WAITING:
            router._wait(call)


def orphans(router: Router, config: AcdConfig, out: list[Effect]) -> list[Orphan]:
    """Calls of queues missing from ``config``: cancel their offers."""
    orphans = []
    for call in sorted(router._calls.values(), key=lambda c: c.rank):
        if call.state is CallState.ANSWERED or call.queue in config.queues:
            continue
        queue = router.config.queues.get(call.queue)
        action = queue.overflow if queue is not None else OverflowAction()
        released = []
        for name in call.ringing:
            agent = router._agents[name]
            out.append(CancelOffer(call.id, name, "queue_removed"))
            agent.call = None
            released.append(agent)
        call.ringing = []
        orphans.append((call, action, released))
    return orphans


def settle(
    router: Router,
    now: float,
    orphans: list[Orphan],
    out: list[Effect],
) -> None:
    """After (re)installing a config: orphans overflow, freed agents
    take calls, empty queues apply their policy, every waiting call
    gets a chance (in rank order) so the routing rule holds again."""
    for call, action, _ in orphans:
        router._overflow_with(call, action, "queue_removed", now, out)
    for _, _, released in orphans:
        for agent in released:
            if agent.name in router._agents and agent.state is AgentState.RESERVED:
                router._release(agent, now, out)
    for call in sorted(router._calls.values(), key=lambda c: c.rank):
        if call.state is CallState.WAITING and call.id in router._calls:
            queue = router.config.queues[call.queue]
            router._no_agents(call, queue, now, out)
    for call in sorted(router._calls.values(), key=lambda c: c.rank):
        if call.state is CallState.WAITING and call.seq in router._call_ids:
            router._dispatch_call(call, now, "redispatch", out)
