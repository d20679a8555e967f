"""Real-time scheduling for the event loop thread, as a PBX runs its media.

Asterisk (``asterisk -p``) and FreeSWITCH (``-rp``) put their media threads
on a real-time policy so that a busy host (other services, a load generator,
a backup job) cannot make them wait for a CPU while packets are due. The
engine's media clock lives on the event loop, so that thread is the one to
raise: ``SCHED_RR`` at the given priority.

``SCHED_RESET_ON_FORK`` goes with it: threads and processes started later
(``asyncio.to_thread`` workers, the recording storage process, the
transcription workers) run under the normal policy, so only the loop
competes at real-time priority, and the kernel's real-time throttling
(``/proc/sys/kernel/sched_rt_runtime_us``, 95 % by default) still leaves the
rest of the machine a share should the loop ever spin.

Measured with ``bench/media_load.py`` on this 2-core VM while other engineers'
jobs kept both cores busy: at 300 calls the share of media ticks more than
5 ms late fell from 8-10 % to 0.25-0.41 % (see bench/README.md).
"""

from __future__ import annotations

import os

__all__ = ["apply_realtime", "current_policy"]


def apply_realtime(priority: int, pid: int = 0) -> str | None:
    """Put thread ``pid`` (0: the calling thread) on ``SCHED_RR`` at ``priority`` (1-99).

    Returns None on success, else why not and how to allow it (no exception:
    the engine runs on, with normal scheduling).
    """
    if not 1 <= priority <= 99:
        return f"real-time priority {priority} is out of range: use 1-99"
    if not hasattr(os, "sched_setscheduler"):
        return "this platform has no sched_setscheduler (Linux only)"
    policy = os.SCHED_RR | getattr(os, "SCHED_RESET_ON_FORK", 0)
    try:
        os.sched_setscheduler(pid, policy, os.sched_param(priority))
    except PermissionError:
        return (
            "not permitted: run as root, or give the interpreter CAP_SYS_NICE"
            " (setcap cap_sys_nice+ep), or allow it with `ulimit -r 99` / limits.conf rtprio"
        )
    except OSError as exc:
        return f"sched_setscheduler failed: {exc}"
    return None


def current_policy(pid: int = 0) -> str:
    """The scheduling policy of ``pid`` (0: this thread): ``rr``, ``fifo``, ``other``..."""
    policy = os.sched_getscheduler(pid) & ~getattr(os, "SCHED_RESET_ON_FORK", 0)
    names = {
        os.SCHED_OTHER: "other",
        os.SCHED_RR: "rr",
        os.SCHED_FIFO: "fifo",
        getattr(os, "SCHED_BATCH", -1): "batch",
        getattr(os, "SCHED_IDLE", -2): "idle",
    }
    return names.get(policy, str(policy))
