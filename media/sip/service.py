"""The asyncio shell around the sans-I/O :class:`UserAgent`.

It is the only place where SIP meets the event loop: received bytes go into
``UserAgent.receive(..., now)``, queued datagrams go out on the transport they
name, one timer is armed for ``UserAgent.next_deadline()``, and events are
handed to the application callback in order. The loop's monotonic clock is
read here and nowhere below.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

import structlog

from media.sip.events import Event
from media.sip.transport import TcpTransport, UdpTransport
from media.sip.useragent import UserAgent

log = structlog.get_logger("media.sip.service")

Addr = tuple[str, int]


class SipService:
    """Binds a :class:`UserAgent` to UDP and TCP sockets on ``host:port``.

    ``on_event`` is called synchronously for every UA event; it may call back
    into the UA (answer, reject, hangup ...) and must then call :meth:`flush`
    (or rely on the flush that follows every input).
    """

    def __init__(self, ua: UserAgent, on_event: Callable[[Event], None]) -> None:
        self.ua = ua
        self._on_event = on_event
        self.udp = UdpTransport(self._received)
        self.tcp = TcpTransport(self._received)
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._flushing = False
        self.host = ""
        self.port = 0

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        assert self._loop is not None, "SipService.start() was not called"
        return self._loop

    def now(self) -> float:
        """The loop's monotonic time: the ``now`` every UA call is given."""
        return self.loop.time()

    async def start(self, host: str, port: int) -> None:
        """Listen on UDP and TCP; ``port=0`` picks a port free for both.

        Raises OSError naming the address when it is taken.
        """
        self._loop = asyncio.get_running_loop()
        for _attempt in range(50 if port == 0 else 1):
            # Bind the socket here, not through local_addr: uvloop's bind error
            # loses errno and strerror ("could not bind"), ours names the cause.
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_DGRAM)
            try:
                sock.bind((host, port))
            except OSError as exc:
                sock.close()
                raise OSError(exc.errno, f"SIP UDP {host}:{port}: {exc.strerror}") from None
            sock.setblocking(False)
            transport, _ = await self._loop.create_datagram_endpoint(lambda: self.udp, sock=sock)
            self.host, self.port = transport.get_extra_info("sockname")[:2]
            try:
                await self.tcp.listen(host, self.port)
                return
            except OSError as exc:
                transport.close()
                self.udp.transport = None
                if port != 0:
                    raise OSError(exc.errno, f"SIP TCP {host}:{port}: {exc.strerror}") from None
        raise OSError(f"no port on {host} was free for both SIP UDP and TCP")

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self.udp.transport is not None:
            self.udp.transport.close()
        await self.tcp.close()

    def _received(self, data: bytes, addr: Addr, transport: str) -> None:
        self.ua.receive(data, addr, transport, self.now())
        self.flush()

    def _on_timer(self) -> None:
        self._timer = None
        self.ua.handle_timer(self.now())
        self.flush()

    def flush(self) -> None:
        """Send what the UA queued, deliver its events, re-arm its timer."""
        if self._flushing:  # re-entered from an event handler: the outer loop drains
            return
        self._flushing = True
        try:
            while True:
                out = self.ua.datagrams_to_send()
                for item in out:
                    if item.transport == "tcp":
                        self.tcp.send(item.data, item.addr)
                    else:
                        self.udp.send(item.data, item.addr)
                event = self.ua.next_event()
                if event is None and not out:
                    break
                if event is not None:
                    try:
                        self._on_event(event)
                    except Exception:  # the application's bug must not kill signalling
                        log.exception("sip.event_handler_failed", event=type(event).__name__)
        finally:
            self._flushing = False
        self._arm_timer()

    def _arm_timer(self) -> None:
        deadline = self.ua.next_deadline()
        if self._timer is not None:
            if deadline is not None and self._timer.when() == deadline:
                return
            self._timer.cancel()
            self._timer = None
        if deadline is not None:
            self._timer = self.loop.call_at(deadline, self._on_timer)
