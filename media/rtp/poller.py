"""Received RTP is read by the media clock's ticks, not by the event loop.

Every call's RTP socket sits in one ``epoll`` set that the media clock polls
(timeout 0) once per lane tick, right after the lane's streams have sent
their frames (:mod:`media.rtp.clock`). The event loop itself never watches
RTP sockets.

Why: with the loop reading each socket as its packets arrive, a 300-call
engine could wake up for almost every one of its ~10,000 incoming packets a
second, and each wake-up is a trip through the scheduler and the loop's
bookkeeping before the packet's callback runs (``perf`` at 300 calls:
``finish_task_switch`` alone was 7 % of the engine's CPU). Polled at the
ticks, the loop wakes for the ticks (200 a second with four 20 ms lanes)
and for signalling, and reads every ready socket in one pass (same run
conditions: 808 -> 74 voluntary context switches a second). A received
packet waits at most one lane spacing (5 ms) longer, far inside the jitter
buffer's cushion; its arrival time is the tick's ``now``.

One datagram per ready socket per poll: the set is level-triggered, so a
socket with more queued (after a stall) is ready again at the next poll,
5 ms later, and draining never costs a failed read per socket.

The epoll set is the only I/O here; what a packet means is the handler's
business (:meth:`media.session.MediaSession.receive_rtp`, sans-I/O).
"""

from __future__ import annotations

import contextlib
import select
import socket
from collections.abc import Callable

import structlog

log = structlog.get_logger("media.rtp.poller")

Addr = tuple[str, int]
RtpHandler = Callable[[bytes, Addr, float], None]
"""``(datagram, source address, now)``; ``now`` is the polling tick's loop time."""

#: Largest datagram read (a 30 ms G.711 packet is 252 bytes; jumbo RTP is refused by size).
MAX_DATAGRAM = 2048


def _drop(_data: bytes, _addr: Addr, _now: float) -> None:
    return None


class RtpPoller:
    """The epoll set of every open RTP socket and the handler of each.

    :meth:`add` a bound non-blocking socket, :meth:`set_handler` once its
    session exists, :meth:`poll` from the media clock, :meth:`remove` before
    closing the socket.
    """

    def __init__(self) -> None:
        self._epoll = select.epoll()
        self._sockets: dict[int, tuple[socket.socket, RtpHandler]] = {}
        self.read = 0
        """Datagrams read so far."""
        self.handler_errors = 0

    def __len__(self) -> int:
        return len(self._sockets)

    def add(self, sock: socket.socket, handler: RtpHandler = _drop) -> None:
        """Watch ``sock`` (bound, non-blocking); its datagrams go to ``handler``."""
        fd = sock.fileno()
        self._epoll.register(fd, select.EPOLLIN)
        self._sockets[fd] = (sock, handler)

    def set_handler(self, sock: socket.socket, handler: RtpHandler) -> None:
        """Route ``sock``'s datagrams to ``handler`` from now on."""
        fd = sock.fileno()
        if fd in self._sockets:
            self._sockets[fd] = (sock, handler)

    def remove(self, sock: socket.socket) -> None:
        """Stop watching ``sock`` (idempotent; call before closing it)."""
        fd = sock.fileno()
        if self._sockets.pop(fd, None) is not None:
            # Already closed by someone else: the kernel dropped it from the set.
            with contextlib.suppress(OSError):
                self._epoll.unregister(fd)

    def poll(self, now: float) -> int:
        """Read one datagram from each socket that has one; returns how many."""
        sockets = self._sockets
        count = 0
        for fd, _mask in self._epoll.poll(0):
            entry = sockets.get(fd)
            if entry is None:
                continue
            sock, handler = entry
            try:
                data, addr = sock.recvfrom(MAX_DATAGRAM)
            except OSError:  # nothing after all, or an ICMP error queued on the socket
                continue
            count += 1
            try:
                handler(data, (addr[0], addr[1]), now)
            except Exception:  # one call's broken packet must not stop the others' reads
                self.handler_errors += 1
                log.exception("rtp.handler_failed", fd=fd)
        self.read += count
        return count

    def close(self) -> None:
        """Close the epoll set (the sockets belong to their endpoints)."""
        self._sockets.clear()
        self._epoll.close()
