"""Why a media tick was late: the engine's own work, another task, or the host.

A lane of the media clock (:mod:`media.rtp.clock`) that fires late delays
every packet of its calls. There are three reasons it can be late, and they
call for different fixes:

* ``busy``: the loop's thread was running (our code, or the kernel working on
  its behalf: system calls, page faults): a callback or a tick took too long.
  Fix it in the engine.
* ``queued``: the thread was ready but waited for a CPU that another task of
  this operating system held (``/proc/thread-self/schedstat``'s run-queue
  wait). Give the engine real-time priority (``--realtime``) or more cores.
* ``off_cpu``: neither. After its deadline a timer-driven loop does not sleep
  on purpose, so the time went where this operating system cannot see it:
  the hypervisor ran another guest on this virtual CPU (steal), or the thread
  blocked in the kernel. No scheduling inside the guest fixes it; a dedicated
  or less crowded host does.

:func:`classify` is the pure rule. :class:`ThreadTimes` is the shell that
reads the calling thread's clocks; the clock takes one reading per tick (a
``clock_gettime`` and one ``pread`` of an already open file: a few
microseconds).
"""

from __future__ import annotations

import os
import time
from typing import Final, NamedTuple

__all__ = ["CAUSES", "LATE_THRESHOLD", "ThreadSample", "ThreadTimes", "classify"]

#: A tick later than this counts as late (the benchmark's ``tick>5`` column).
LATE_THRESHOLD: Final = 0.005
#: The causes :func:`classify` returns, in the order the metrics list them.
CAUSES: Final = ("busy", "queued", "off_cpu")


class ThreadSample(NamedTuple):
    """One reading of a thread's clocks, all in seconds."""

    wall: float
    """A monotonic wall clock."""
    cpu: float
    """CPU time the thread has used (user + system, steal excluded where the kernel can)."""
    queued: float
    """Time the thread has spent runnable but waiting for a CPU (0.0 when unknown)."""


def classify(before: ThreadSample, after: ThreadSample, idle_allowed: float) -> str:
    """The main reason for the time between two readings of the loop's thread.

    ``idle_allowed`` is how long of that interval the thread could rightly
    sleep (from ``before`` up to the late tick's deadline): sleep there is
    not a cause. Of the rest, what the thread spent running is ``busy``,
    waiting for a CPU ``queued``, and what is left ``off_cpu``; the largest
    share names the cause.
    """
    gap = max(0.0, after.wall - before.wall)
    cpu = max(0.0, after.cpu - before.cpu)
    queued = max(0.0, after.queued - before.queued)
    off = max(0.0, gap - cpu - queued - max(0.0, idle_allowed))
    if cpu >= queued and cpu >= off:
        return "busy"
    if queued >= off:
        return "queued"
    return "off_cpu"


class ThreadTimes:
    """Reads the clocks of the thread that created it: create it and call
    :meth:`sample` on that thread (the CPU time is the calling thread's).

    The run-queue wait comes from ``/proc/thread-self/schedstat`` (Linux with
    scheduler statistics), opened once (``/proc/thread-self`` is resolved at
    open time); where that file is missing or unreadable the wait reads 0.0
    and a wait counts as ``off_cpu``.
    """

    def __init__(self) -> None:
        self._fd: int | None = None
        try:
            self._fd = os.open("/proc/thread-self/schedstat", os.O_RDONLY)
            self._read_queued()
        except (OSError, ValueError, IndexError):
            self.close()

    @property
    def sees_run_queue(self) -> bool:
        """Whether the run-queue wait is known (else it reads 0.0)."""
        return self._fd is not None

    def _read_queued(self) -> float:
        assert self._fd is not None
        # "<ns on cpu> <ns waiting on a run queue> <timeslices>"
        return int(os.pread(self._fd, 96, 0).split()[1]) / 1e9

    def sample(self) -> ThreadSample:
        """The thread's wall, CPU and run-queue clocks now."""
        queued = 0.0
        if self._fd is not None:
            try:
                queued = self._read_queued()
            except (OSError, ValueError, IndexError):
                self.close()
        return ThreadSample(time.perf_counter(), time.thread_time(), queued)

    def close(self) -> None:
        """Release the file (idempotent)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)
