"""Router state as JSON-able data, so the runtime can survive restarts.

:func:`snapshot_router` writes every agent's state (state, reason and
since when, idle time, counters, lease, pending break, wrap-up) and every
call in the ACD (queue, rank, step, timers, ringing agents, callback), the
round-robin pointers and the handle-time samples behind the AHT.
Derived tables (indexes, lines, timer heap) are not stored: the Router
rebuilds them. Used through :meth:`acd.core.Router.snapshot` and
:meth:`acd.core.Router.restore`.
"""

from __future__ import annotations

import math
from dataclasses import fields
from typing import TYPE_CHECKING, Any

from acd.events import AcdError, CancelOffer, Effect
from acd.model import Agent, AgentConfig, AgentState, Call, CallState, OverflowAction

if TYPE_CHECKING:
    from acd.core import Router

__all__ = ["SNAPSHOT_VERSION", "restore_router", "snapshot_router"]

SNAPSHOT_VERSION = 1

_AGENT_FIELDS = [
    f.name for f in fields(Agent) if f.name not in ("config", "index", "removed", "timers")
]
_CALL_FIELDS = [f.name for f in fields(Call) if f.name not in ("requirement", "timers")]


def _plain(value: Any) -> Any:
    if isinstance(value, AgentState | CallState):
        return value.value
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _tuple(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_tuple(v) for v in value)
    return value


def snapshot_router(router: Router) -> dict[str, Any]:
    """See the module docstring."""
    agents = []
    for agent in router._agents.values():
        item = {name: _plain(getattr(agent, name)) for name in _AGENT_FIELDS}
        item["name"] = agent.name
        agents.append(item)
    calls = [
        {name: _plain(getattr(call, name)) for name in _CALL_FIELDS}
        for call in router._calls.values()
    ]
    return {
        "version": SNAPSHOT_VERSION,
        "now": _plain(router._now),
        "seq": router._seq,
        "agents": agents,
        "calls": calls,
        "round_robin": {queue: _plain(entry) for queue, entry in router._rr.items()},
        "handle_times": router._handle_times.snapshot(),
    }


def restore_router(
    router: Router, data: dict[str, Any], out: list[Effect]
) -> list[tuple[Call, OverflowAction, list[Agent]]]:
    """Load ``data`` into ``router`` (raw state only; the Router then
    rebuilds its tables). Returns the calls whose queue is gone, with the
    agents that were ringing for them (their offers are cancelled in ``out``)."""
    if not isinstance(data, dict) or data.get("version") != SNAPSHOT_VERSION:
        found = data.get("version") if isinstance(data, dict) else type(data).__name__
        raise AcdError(
            f"not an ACD snapshot of version {SNAPSHOT_VERSION} (found {found!r}): "
            "take it with Router.snapshot() of this version"
        )
    config = router.config
    try:
        agents: dict[str, Agent] = {}
        for index, (name, agent_config) in enumerate(config.agents.items()):
            agents[name] = Agent(config=agent_config, index=index)
        for item in data["agents"]:
            name = item["name"]
            agent = agents.get(name)
            if agent is None:
                if item.get("state") not in ("on_call", "wrap_up") or item.get("call") is None:
                    continue  # dropped from the configuration, no call to finish
                agent = agents[name] = Agent(config=AgentConfig(name), index=-1, removed=True)
                item = {**item, "pending": ["offline", "removed"]}
            for field_name in _AGENT_FIELDS:
                if field_name in item:
                    value = _tuple(item[field_name])
                    # typed as they are set (the compiled build checks attribute types)
                    if field_name == "state":
                        value = AgentState(value)
                    elif field_name == "pending" and value is not None:
                        value = (AgentState(value[0]), value[1])
                    setattr(agent, field_name, value)
            agent.state = AgentState(item["state"])
            if agent.pending is not None:
                agent.pending = (AgentState(agent.pending[0]), agent.pending[1])
        calls: dict[str, Call] = {}
        for item in data["calls"]:
            values = {name: _tuple(item[name]) for name in _CALL_FIELDS if name in item}
            values["skills"] = dict(item.get("skills", {}))
            values["ringing"] = list(item.get("ringing", []))
            values["state"] = CallState(item["state"])
            call = Call(**values)
            calls[call.id] = call
        now = data.get("now")
        router._now = -math.inf if now is None else float(now)
        router._seq = int(data["seq"])
        router._rr = {queue: _tuple(entry) for queue, entry in data.get("round_robin", {}).items()}
        router._handle_times.restore(data.get("handle_times", {}))
    except (KeyError, TypeError, ValueError) as exc:
        raise AcdError(f"damaged ACD snapshot: {exc!r}") from None
    # ringing agents the snapshot does not know any more: the call goes back
    for call in calls.values():
        if call.state is CallState.RINGING:
            call.ringing = [name for name in call.ringing if name in agents]
            if not call.ringing:
                call.state = CallState.WAITING
                call.ring_until = None
        if call.state is CallState.ANSWERED and call.agent not in agents:
            call.agent = None
    for agent in agents.values():
        if (
            agent.call is not None
            and agent.call not in calls
            and agent.state in (AgentState.RESERVED,)
        ):
            agent.state = AgentState.AVAILABLE
            agent.call = None
    router._agents = agents
    router._calls = calls
    orphans = []
    for call in sorted(calls.values(), key=lambda c: c.rank):
        if call.state is CallState.ANSWERED or call.queue in config.queues:
            continue
        released = []
        for name in call.ringing:
            agent = agents[name]
            out.append(CancelOffer(call.id, name, "queue_removed"))
            agent.call = None
            released.append(agent)
        call.ringing = []
        orphans.append((call, OverflowAction(), released))
    return orphans
