"""SIP timer values (RFC 3261 §17 and Table 4, RFC 6026 §8.4 and §8.11), as data.

Everything here is arithmetic on the three base values; nothing reads a clock.
Over a reliable transport (TCP) the retransmission timers A, E and G are not
used and the wait timers D, I, J and K are zero (the state is left at once).

=====  ===================  ==========================  ======================
timer  transaction          unreliable (UDP)            reliable (TCP)
=====  ===================  ==========================  ======================
A      INVITE client        T1, doubling, no cap        not used
B      INVITE client        64*T1                       64*T1
D      INVITE client        max(32 s, 64*T1)            0
E      non-INVITE client    T1, doubling up to T2       not used
F      non-INVITE client    64*T1                       64*T1
G      INVITE server        T1, doubling up to T2       not used
H      INVITE server        64*T1                       64*T1
I      INVITE server        T4                          0
J      non-INVITE server    64*T1                       0
K      non-INVITE client    T4                          0
L      INVITE server        64*T1 (RFC 6026 Accepted)   64*T1
M      INVITE client        64*T1 (RFC 6026 Accepted)   64*T1
=====  ===================  ==========================  ======================
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from media.sip.errors import SipUsageError


@dataclass(frozen=True)
class TimerConfig:
    """The base timer values, in seconds.

    ``t1`` is the round-trip estimate (0.5 s), ``t2`` the longest interval
    between retransmissions of non-INVITE requests and INVITE responses (4 s),
    ``t4`` the longest time a message stays in the network (5 s).
    """

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0

    def __post_init__(self) -> None:
        if not (self.t1 > 0 and self.t2 >= self.t1 and self.t4 >= 0):
            raise SipUsageError(
                f"SIP timers need t1 > 0, t2 >= t1, t4 >= 0 (got t1={self.t1}, "
                f"t2={self.t2}, t4={self.t4})"
            )

    @property
    def transaction_timeout(self) -> float:
        """64*T1: timers B, F, H, L, M (and J over UDP)."""
        return 64 * self.t1

    def timer_d(self, reliable: bool) -> float:
        """Wait for final-response retransmissions in INVITE client Completed."""
        return 0.0 if reliable else max(32.0, 64 * self.t1)

    def timer_i(self, reliable: bool) -> float:
        """Wait for ACK retransmissions in INVITE server Confirmed."""
        return 0.0 if reliable else self.t4

    def timer_j(self, reliable: bool) -> float:
        """Wait for request retransmissions in non-INVITE server Completed."""
        return 0.0 if reliable else 64 * self.t1

    def timer_k(self, reliable: bool) -> float:
        """Wait for response retransmissions in non-INVITE client Completed."""
        return 0.0 if reliable else self.t4

    def next_interval(self, interval: float, *, capped: bool) -> float:
        """The retransmission interval after ``interval``: doubled, capped at T2 if asked."""
        doubled = interval * 2
        return min(doubled, self.t2) if capped else doubled


class Timed(Protocol):
    """Anything with named timers: is ``when`` one of its running deadlines?"""

    def has_deadline(self, when: float) -> bool: ...


T = TypeVar("T", bound=Timed)


class TimerHeap(Generic[T]):
    """The deadlines of many timed objects, earliest first, in O(log n).

    Every time an object arms a timer it ``push``es the deadline. Entries
    go stale when a timer is stopped or re-armed, or the object ends; an
    entry is live only while ``item.has_deadline(when)``, and stale ones are
    dropped when they reach the top.
    """

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, T]] = []
        self._pushed = 0

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, when: float, item: T) -> None:
        self._pushed += 1
        heapq.heappush(self._heap, (when, self._pushed, item))

    def earliest(self) -> float | None:
        """The earliest live deadline, or None."""
        heap = self._heap
        while heap and not heap[0][2].has_deadline(heap[0][0]):
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def pop_due(self, now: float) -> list[T]:
        """Every object with a live deadline at or before ``now`` (each once), earliest first."""
        due: list[T] = []
        seen: set[int] = set()
        heap = self._heap
        while heap and heap[0][0] <= now:
            when, _, item = heapq.heappop(heap)
            if item.has_deadline(when) and id(item) not in seen:
                seen.add(id(item))
                due.append(item)
        return due
