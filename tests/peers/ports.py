"""Free ports on 127.0.0.1, chosen at run time by binding and releasing them.

There is an unavoidable race between releasing a port and the peer binding it;
the helpers pick random ports (not the kernel's sequential ephemeral ones) from
a range away from the usual fixed ports, so that parallel test runs rarely
collide.
"""

from __future__ import annotations

import random
import socket
from collections.abc import Sequence
from typing import Literal

HOST = "127.0.0.1"
LOW = 20000
HIGH = 60000
_ATTEMPTS = 200

Kind = Literal["udp", "tcp", "both"]


def _can_bind(port: int, kind: Kind) -> bool:
    kinds: list[int] = []
    if kind in ("udp", "both"):
        kinds.append(socket.SOCK_DGRAM)
    if kind in ("tcp", "both"):
        kinds.append(socket.SOCK_STREAM)
    socks: list[socket.socket] = []
    try:
        for st in kinds:
            s = socket.socket(socket.AF_INET, st)
            socks.append(s)
            s.bind((HOST, port))
        return True
    except OSError:
        return False
    finally:
        for s in socks:
            s.close()


def free_port(kind: Kind = "udp", avoid: Sequence[tuple[int, int]] = ()) -> int:
    """A port on 127.0.0.1 free for ``kind`` ("udp", "tcp" or "both": a SIP listener),
    in none of the inclusive ranges ``avoid`` (ports another peer will bind later)."""
    rng = random.Random()
    candidates: Sequence[int] = range(LOW, HIGH)
    if avoid:
        candidates = [p for p in candidates if not any(lo <= p <= hi for lo, hi in avoid)]
    for _ in range(_ATTEMPTS if candidates else 0):
        port = rng.choice(candidates)
        if _can_bind(port, kind):
            return port
    raise RuntimeError(
        f"no free {kind} port found on {HOST} in {_ATTEMPTS} attempts"
        + (f" outside {list(avoid)}" if avoid else "")
    )


def free_udp_port() -> int:
    """A UDP port free on 127.0.0.1."""
    return free_port("udp")


def free_tcp_port() -> int:
    """A TCP port free on 127.0.0.1."""
    return free_port("tcp")


def reserve_rtp_range(n: int) -> tuple[int, list[socket.socket]]:
    """``n`` consecutive UDP ports on 127.0.0.1 bound now: ``(base, sockets)``.

    The base is even; ``sockets[i]`` holds ``base + i`` until it is closed.
    Each socket's receive buffer is the smallest the kernel allows, so a
    held port that traffic is sent to drops it at once instead of queueing.
    Close a socket right before the peer that should own its port binds it.
    """
    if n < 1 or n > (HIGH - LOW) // 4:
        raise ValueError(f"cannot reserve {n} ports")
    rng = random.Random()
    for _ in range(_ATTEMPTS):
        base = rng.randrange(LOW, HIGH - n, 2)
        socks: list[socket.socket] = []
        try:
            for port in range(base, base + n):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)
                s.bind((HOST, port))
        except OSError:
            for s in socks:
                s.close()
            continue
        return base, socks
    raise RuntimeError(f"no {n} consecutive free UDP ports on {HOST} in {_ATTEMPTS} attempts")


def free_rtp_range(n: int) -> int:
    """Base of ``n`` consecutive free UDP ports on 127.0.0.1; the base is even.

    ``free_rtp_range(200)`` returns ``base`` with ``base .. base+199`` all free
    at the time of the call (and nothing keeps them free afterwards: a peer
    that does not bind a port it receives on needs :func:`reserve_rtp_range`).
    """
    base, socks = reserve_rtp_range(n)
    for s in socks:
        s.close()
    return base
