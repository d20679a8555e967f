"""RTP/RTCP sockets and the port pool they come from.

Each call gets an even RTP port and the odd RTCP port above it from a
configured range. The RTP socket is read by the media clock through the
:class:`media.rtp.poller.RtpPoller` (not by the event loop); the RTCP socket,
a packet every few seconds, is an asyncio datagram endpoint. Everything
received goes straight to a sans-I/O consumer (the call's media session).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
from collections.abc import Callable
from typing import Any

import structlog

from media.rtp.poller import RtpHandler, RtpPoller

log = structlog.get_logger("media.rtp.endpoint")

Addr = tuple[str, int]
DatagramHandler = Callable[[bytes, Addr], None]


class PortRangeExhausted(RuntimeError):
    """No free even/odd port pair is left in the configured RTP range."""


class _Socket(asyncio.DatagramProtocol):
    def __init__(self, handler: DatagramHandler) -> None:
        self.handler = handler
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.handler(data, (addr[0], addr[1]))

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable after the peer hung up: expected, not an error of ours.
        log.debug("rtp.socket.error", error=str(exc))


class RtpEndpoint:
    """An RTP socket and its RTCP socket (port + 1), bound on ``host``.

    RTP goes out through the plain non-blocking socket (asyncio's
    ``DatagramTransport.sendto`` costs about twice the system call itself, and
    the send path runs 50 times a second per call). A packet the kernel
    cannot take at once (send buffer full) is dropped and counted in
    ``send_dropped``: queueing it would only make it late, and the next
    frame is 20 ms away.
    """

    def __init__(
        self, host: str, port: int, raw: socket.socket, rtcp: _Socket, poller: RtpPoller
    ) -> None:
        self.host = host
        self.port = port
        self._raw = raw
        self._rtcp = rtcp
        self._poller = poller
        self._open = True
        self.send_dropped = 0

    def set_handlers(self, on_rtp: RtpHandler, on_rtcp: DatagramHandler) -> None:
        """Route received datagrams to the session that owns this endpoint.

        ``on_rtp(data, addr, now)`` runs from the media clock's poll;
        ``on_rtcp(data, addr)`` from the event loop.
        """
        self._poller.set_handler(self._raw, on_rtp)
        self._rtcp.handler = on_rtcp

    def send_rtp(self, data: bytes, addr: Addr) -> None:
        if not self._open:
            return
        try:
            self._raw.sendto(data, addr)
        except (BlockingIOError, InterruptedError):
            self.send_dropped += 1
        except OSError:
            pass  # ICMP unreachable from a peer that hung up: not ours to report

    def send_rtcp(self, data: bytes, addr: Addr) -> None:
        transport = self._rtcp.transport
        if transport is not None:
            transport.sendto(data, addr)

    def close(self) -> None:
        if self._open:
            self._open = False
            self._poller.remove(self._raw)
            self._raw.close()
        if self._rtcp.transport is not None:
            self._rtcp.transport.close()
            self._rtcp.transport = None
        self._rtcp.handler = _drop  # the session's handler refers back to the session


def _drop(_data: bytes, _addr: Addr) -> None:
    return None


def _bound(family: socket.AddressFamily, host: str, port: int) -> socket.socket | None:
    """A non-blocking UDP socket bound to ``host:port``, None if the port is taken."""
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        sock.bind((host, port))
    except OSError:
        sock.close()
        return None
    return sock


class RtpPortPool:
    """Allocates RTP/RTCP port pairs from ``[low, high)`` on ``host``.

    Ports are tried from a random start so that a port freed by one call is not
    reused by the next at once (late packets of the old call would latch).
    A port taken by another process is skipped.
    """

    def __init__(
        self, host: str, low: int, high: int, rng: random.Random, poller: RtpPoller
    ) -> None:
        if low % 2:
            low += 1
        if high - low < 2:
            raise ValueError(f"RTP port range {low}-{high} holds no even/odd pair")
        self.host = host
        self.low = low
        self.high = high
        self._in_use: set[int] = set()
        self._rng = rng
        self.poller = poller

    @property
    def in_use(self) -> int:
        return len(self._in_use)

    @property
    def capacity(self) -> int:
        return (self.high - self.low) // 2

    async def open(self) -> RtpEndpoint:
        """Bind a free pair; raises :class:`PortRangeExhausted` when none is left."""
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        pairs = self.capacity
        start = self._rng.randrange(pairs)
        for i in range(pairs):
            port = self.low + 2 * ((start + i) % pairs)
            if port in self._in_use:
                continue
            raw = _bound(family, self.host, port)
            if raw is None:
                continue
            # The RTCP socket is bound here too and handed over as ``sock``: with
            # ``local_addr`` the loop resolves the address first, which under
            # uvloop is a round trip through its thread pool for every call.
            rtcp_sock = _bound(family, self.host, port + 1)
            if rtcp_sock is None:
                raw.close()
                continue
            try:
                _, rtcp = await loop.create_datagram_endpoint(
                    lambda: _Socket(_drop), sock=rtcp_sock
                )
            except OSError:
                rtcp_sock.close()
                raw.close()
                continue
            self._in_use.add(port)
            self.poller.add(raw)
            return RtpEndpoint(self.host, port, raw, rtcp, self.poller)
        raise PortRangeExhausted(
            f"all {pairs} RTP port pairs in {self.low}-{self.high} are busy; "
            "widen --rtp-ports or lower the call limit"
        )

    def release(self, endpoint: RtpEndpoint) -> None:
        """Close the endpoint and give its ports back."""
        with contextlib.suppress(Exception):
            endpoint.close()
        self._in_use.discard(endpoint.port)
