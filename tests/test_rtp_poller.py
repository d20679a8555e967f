"""The RTP poller on real UDP sockets (127.0.0.1, ports chosen by the kernel)."""

from __future__ import annotations

import socket
import time

import pytest

from media.rtp.poller import RtpPoller

Addr = tuple[str, int]


def _bound() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    sock.bind(("127.0.0.1", 0))
    return sock


def _wait_ready(poller: RtpPoller, sockets: int) -> None:
    """Loopback delivery happens inside ``sendto``; a short pause covers a slow kernel."""
    time.sleep(0.02)


def test_each_socket_delivers_to_its_handler_with_the_tick_time() -> None:
    poller = RtpPoller()
    a, b, sender = _bound(), _bound(), _bound()
    got: list[tuple[str, bytes, Addr, float]] = []
    poller.add(a, lambda data, addr, now: got.append(("a", data, addr, now)))
    poller.add(b)  # no handler yet: dropped
    sender.sendto(b"one", a.getsockname())
    sender.sendto(b"early", b.getsockname())
    _wait_ready(poller, 2)
    assert poller.poll(12.5) == 2
    assert got == [("a", b"one", sender.getsockname(), 12.5)]
    poller.set_handler(b, lambda data, addr, now: got.append(("b", data, addr, now)))
    sender.sendto(b"two", b.getsockname())
    _wait_ready(poller, 1)
    assert poller.poll(13.0) == 1
    assert got[-1] == ("b", b"two", sender.getsockname(), 13.0)
    assert poller.poll(13.5) == 0  # nothing left
    assert poller.read == 3
    for s in (a, b, sender):
        s.close()
    poller.close()


def test_one_datagram_per_socket_per_poll_the_rest_at_the_next() -> None:
    poller = RtpPoller()
    sock, sender = _bound(), _bound()
    got: list[bytes] = []
    poller.add(sock, lambda data, addr, now: got.append(data))
    for i in range(3):
        sender.sendto(bytes([i]), sock.getsockname())
    _wait_ready(poller, 1)
    assert [poller.poll(float(i)) for i in range(4)] == [1, 1, 1, 0]
    assert got == [b"\x00", b"\x01", b"\x02"]  # in order, none lost
    sock.close()
    sender.close()
    poller.close()


def test_a_failing_handler_does_not_stop_the_other_sockets() -> None:
    poller = RtpPoller()
    bad, good, sender = _bound(), _bound(), _bound()
    got: list[bytes] = []

    def broken(data: bytes, addr: Addr, now: float) -> None:
        raise RuntimeError("bug")

    poller.add(bad, broken)
    poller.add(good, lambda data, addr, now: got.append(data))
    sender.sendto(b"x", bad.getsockname())
    sender.sendto(b"y", good.getsockname())
    _wait_ready(poller, 2)
    assert poller.poll(1.0) == 2
    assert got == [b"y"]
    assert poller.handler_errors == 1
    for s in (bad, good, sender):
        s.close()
    poller.close()


def test_removed_sockets_are_not_read_and_removal_is_idempotent() -> None:
    poller = RtpPoller()
    sock, sender = _bound(), _bound()
    got: list[bytes] = []
    poller.add(sock, lambda data, addr, now: got.append(data))
    assert len(poller) == 1
    poller.remove(sock)
    poller.remove(sock)
    assert len(poller) == 0
    sender.sendto(b"late", sock.getsockname())
    time.sleep(0.02)
    assert poller.poll(1.0) == 0
    assert got == []
    assert sock.recvfrom(64)[0] == b"late"  # still in the socket: only the poller let go
    sock.close()
    sender.close()
    poller.close()


@pytest.mark.parametrize("count", [300])
def test_hundreds_of_sockets_in_one_pass(count: int) -> None:
    poller = RtpPoller()
    socks = [_bound() for _ in range(count)]
    sender = _bound()
    got: dict[int, bytes] = {}
    for i, s in enumerate(socks):
        poller.add(s, lambda data, addr, now, i=i: got.__setitem__(i, data))
        sender.sendto(i.to_bytes(2, "big"), s.getsockname())
    _wait_ready(poller, count)
    assert poller.poll(0.0) == count
    assert got == {i: i.to_bytes(2, "big") for i in range(count)}
    for s in socks:
        s.close()
    sender.close()
    poller.close()
