"""Asyncio shells for SIP over UDP and TCP.

The only I/O of the SIP stack lives here. Both transports hand raw bytes and the
peer's address to a sans-I/O consumer (the :class:`~media.sip.useragent.UserAgent`
through :class:`SipEndpoint`), and send whatever it queued. TCP is framed by
``Content-Length`` with :class:`~media.sip.stream.StreamParser`; a connection
whose framing breaks is closed (RFC 3261 §18.3).

Connections are keyed by the peer's ``(host, port)`` so that a response or an
in-dialog request for a TCP peer goes back over the connection it came on.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import structlog

from media.sip.stream import StreamParser

log = structlog.get_logger("media.sip.transport")

Addr = tuple[str, int]
Receiver = Callable[[bytes, Addr, str], None]


class UdpTransport(asyncio.DatagramProtocol):
    """SIP over UDP: one socket for all peers."""

    def __init__(self, receiver: Receiver) -> None:
        self._receiver = receiver
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # The selector loop's datagram transport does not subclass DatagramTransport.
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if data in (b"\r\n", b"\r\n\r\n"):  # RFC 5626 keep-alive: answered by nothing on UDP
            return
        self._receiver(data, (addr[0], addr[1]), "udp")

    def error_received(self, exc: Exception) -> None:
        log.warning("sip.udp.error", error=str(exc))

    def send(self, data: bytes, addr: Addr) -> None:
        """Send one datagram; silently dropped before the socket is ready."""
        if self.transport is not None:
            self.transport.sendto(data, addr)


class TcpConnection(asyncio.Protocol):
    """One SIP-over-TCP connection, framed by Content-Length."""

    def __init__(self, owner: TcpTransport, peer: Addr | None = None) -> None:
        self._owner = owner
        self._parser = StreamParser()
        self.peer: Addr | None = peer
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        name = transport.get_extra_info("peername")
        self.peer = (name[0], name[1])
        self._owner._register(self)

    def data_received(self, data: bytes) -> None:
        assert self.peer is not None
        try:
            frames = self._parser.feed_raw(data)
        except ValueError as exc:  # framing broken: nothing after this can be trusted
            log.warning("sip.tcp.framing_error", peer=self.peer, error=str(exc))
            if self.transport is not None:
                self.transport.close()
            return
        for frame in frames:
            if frame == b"":  # double-CRLF ping (RFC 5626 §3.5.1): answer with a pong
                if self.transport is not None:
                    self.transport.write(b"\r\n")
                continue
            self._owner.receiver(frame, self.peer, "tcp")

    def connection_lost(self, exc: Exception | None) -> None:
        self._owner._unregister(self)

    def send(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)


class TcpTransport:
    """SIP over TCP: a listening socket plus outgoing connections by peer address."""

    def __init__(self, receiver: Receiver) -> None:
        self.receiver = receiver
        self._connections: dict[Addr, TcpConnection] = {}
        self._pending: dict[Addr, asyncio.Task[None]] = {}
        self._backlog: dict[Addr, list[bytes]] = {}
        self.server: asyncio.Server | None = None

    def _register(self, conn: TcpConnection) -> None:
        assert conn.peer is not None
        self._connections[conn.peer] = conn

    def _unregister(self, conn: TcpConnection) -> None:
        if conn.peer is not None and self._connections.get(conn.peer) is conn:
            del self._connections[conn.peer]

    async def listen(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(lambda: TcpConnection(self), host, port)

    def send(self, data: bytes, addr: Addr) -> None:
        """Send on the connection to ``addr``, opening one if there is none."""
        conn = self._connections.get(addr)
        if conn is not None:
            conn.send(data)
            return
        self._backlog.setdefault(addr, []).append(data)
        if addr not in self._pending:
            self._pending[addr] = asyncio.get_running_loop().create_task(self._connect(addr))

    async def _connect(self, addr: Addr) -> None:
        loop = asyncio.get_running_loop()
        try:
            _, conn = await loop.create_connection(lambda: TcpConnection(self), addr[0], addr[1])
            for data in self._backlog.pop(addr, []):
                conn.send(data)
        except OSError as exc:
            dropped = len(self._backlog.pop(addr, []))
            log.warning("sip.tcp.connect_failed", peer=addr, error=str(exc), dropped=dropped)
        finally:
            self._pending.pop(addr, None)

    async def close(self) -> None:
        for task in list(self._pending.values()):
            task.cancel()
        for conn in list(self._connections.values()):
            if conn.transport is not None:
                conn.transport.close()
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await self.server.wait_closed()
