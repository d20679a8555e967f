"""A raw SIP client for tests: sends bytes over UDP or TCP, reads what comes back.

It deliberately does not use the engine's own parser, so a test can send
anything (torture messages) and check the answer's status line by itself.
"""

from __future__ import annotations

import asyncio
import re
import secrets
from typing import Any

STATUS = re.compile(rb"^SIP/2\.0 (\d{3}) ")


def status_of(data: bytes) -> int | None:
    """The status code of a response, or None for anything else."""
    m = STATUS.match(data)
    return int(m.group(1)) if m else None


def options(host: str, port: int, transport: str = "UDP", local_port: int = 5099) -> bytes:
    branch = "z9hG4bK" + secrets.token_hex(8)
    tag = secrets.token_hex(4)
    return (
        f"OPTIONS sip:ping@{host}:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport} 127.0.0.1:{local_port};branch={branch};rport\r\n"
        f"Max-Forwards: 70\r\n"
        f"From: <sip:probe@127.0.0.1>;tag={tag}\r\n"
        f"To: <sip:ping@{host}>\r\n"
        f"Call-ID: {secrets.token_hex(8)}@127.0.0.1\r\n"
        f"CSeq: 1 OPTIONS\r\n"
        f"Content-Length: 0\r\n\r\n"
    ).encode()


class _Udp(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.queue.put_nowait(data)


class UdpClient:
    """One UDP socket on 127.0.0.1 talking to ``target``."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.transport: asyncio.DatagramTransport | None = None
        self.proto = _Udp()

    async def __aenter__(self) -> UdpClient:
        loop = asyncio.get_running_loop()
        self.transport, _ = await loop.create_datagram_endpoint(
            lambda: self.proto, local_addr=("127.0.0.1", 0)
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.transport is not None
        self.transport.close()

    @property
    def port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])

    def send(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.sendto(data, self.target)

    async def responses(self, wait: float) -> list[bytes]:
        """Everything received within ``wait`` seconds of the last datagram."""
        out: list[bytes] = []
        while True:
            try:
                out.append(await asyncio.wait_for(self.proto.queue.get(), wait))
            except TimeoutError:
                return out

    async def final_status(self, wait: float = 2.0, method: str = "OPTIONS") -> int | None:
        """The first final (>= 200) status to a ``method`` request within ``wait`` seconds."""
        loop = asyncio.get_running_loop()
        end = loop.time() + wait
        while loop.time() < end:
            try:
                data = await asyncio.wait_for(self.proto.queue.get(), end - loop.time())
            except TimeoutError:
                return None
            code = status_of(data)
            if (
                code is not None
                and code >= 200
                and re.search(rb"\r\nCSeq: *\d+ " + method.encode(), data)
            ):
                return code
        return None


async def tcp_exchange(
    target: tuple[str, int], data: bytes, wait: float, *, until_response: bool = False
) -> list[bytes]:
    """Send ``data`` on a new TCP connection and collect what arrives for ``wait`` s.

    With ``until_response`` it returns as soon as one complete header block arrived.
    """
    reader, writer = await asyncio.open_connection(*target)
    try:
        writer.write(data)
        await writer.drain()
        chunks = []
        loop = asyncio.get_running_loop()
        end = loop.time() + wait
        while loop.time() < end:
            try:
                chunk = await asyncio.wait_for(reader.read(65536), end - loop.time())
            except TimeoutError:
                break
            if not chunk:
                break
            chunks.append(chunk)
            if until_response and b"\r\n\r\n" in b"".join(chunks):
                break
        return [b"".join(chunks)] if chunks else []
    finally:
        writer.close()
