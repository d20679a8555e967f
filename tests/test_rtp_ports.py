"""RTP/RTCP port pairs from the configured range, on real sockets."""

from __future__ import annotations

import asyncio
import random
import socket

import pytest
import uvloop

from media.rtp.endpoint import PortRangeExhausted, RtpPortPool
from media.rtp.poller import RtpPoller


def _free_even_range(pairs: int) -> int:
    """A low port such that ``pairs`` even/odd pairs above it are free right now."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.0.0.1", 0))
            low = probe.getsockname()[1] & ~1
        if low + 2 * pairs >= 65535:
            continue
        socks = []
        try:
            for port in range(low, low + 2 * pairs):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind(("127.0.0.1", port))
            return low
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free port range")


def _taken(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


async def test_a_pair_is_bound_and_given_back() -> None:
    low = _free_even_range(4)
    poller = RtpPoller()
    pool = RtpPortPool("127.0.0.1", low, low + 8, random.Random(1), poller)
    got: list[bytes] = []
    endpoint = await pool.open()
    try:
        assert endpoint.port % 2 == 0 and low <= endpoint.port < low + 8
        assert _taken(endpoint.port) and _taken(endpoint.port + 1)
        endpoint.set_handlers(lambda *_: None, lambda data, _addr: got.append(data))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
            peer.sendto(b"\x81\xc9\x00\x01rtcp", ("127.0.0.1", endpoint.port + 1))
            for _ in range(100):
                if got:
                    break
                await asyncio.sleep(0.01)
        assert got == [b"\x81\xc9\x00\x01rtcp"]  # RTCP reaches the session's handler
        assert pool.in_use == 1
    finally:
        pool.release(endpoint)
        poller.close()
    await asyncio.sleep(0)  # the RTCP transport closes on the next loop pass
    assert pool.in_use == 0
    assert not _taken(endpoint.port) and not _taken(endpoint.port + 1)


async def test_a_pair_whose_rtcp_port_is_taken_is_skipped() -> None:
    low = _free_even_range(2)
    poller = RtpPoller()
    pool = RtpPortPool("127.0.0.1", low, low + 4, random.Random(1), poller)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as other:
        other.bind(("127.0.0.1", low + 1))  # another program holds the first pair's RTCP port
        endpoint = await pool.open()
        try:
            assert endpoint.port == low + 2
            assert not _taken(low)  # the RTP socket tried for the first pair was closed
            with pytest.raises(PortRangeExhausted, match=f"{low}-{low + 4}"):
                await pool.open()
        finally:
            pool.release(endpoint)
            poller.close()


def test_the_same_on_uvloop_the_engines_loop() -> None:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(test_a_pair_is_bound_and_given_back())
        runner.run(test_a_pair_whose_rtcp_port_is_taken_is_skipped())
