"""The Router's timer kinds (one armed timer per kind per agent or call).

======== ======= ====================================================
kind     owner   fires when
======== ======= ====================================================
ring     call    the offer rang ``ring_timeout`` s unanswered (RNA)
wrap     agent   the agent's wrap-up is over
lease    agent   the presence lease ran out without a heartbeat
max_wait call    the caller waited the queue's (or their) max_wait
step     call    the routing step in force ends (the next one starts)
announce call    time to announce position and estimated wait
no_agents call   no agent has been logged in for ``no_agents.after`` s
======== ======= ====================================================

Timers sit in one heap of ``(when, seq, kind, owner id, token)``; the
owner's ``timers[kind]`` holds the ``seq`` of the one armed, so a re-armed
timer replaces the old one without searching the heap.
"""

from __future__ import annotations

from typing import Final

__all__ = ["ANNOUNCE", "KINDS", "LEASE", "MAX_WAIT", "NO_AGENTS", "RING", "STEP", "WRAP"]

RING: Final = "ring"
WRAP: Final = "wrap"
LEASE: Final = "lease"
MAX_WAIT: Final = "max_wait"
STEP: Final = "step"
ANNOUNCE: Final = "announce"
NO_AGENTS: Final = "no_agents"
KINDS: Final = (RING, WRAP, LEASE, MAX_WAIT, STEP, ANNOUNCE, NO_AGENTS)
