"""A control sender: how late this host makes a nearly idle RTP sender, in the same run.

    python bench/canary.py --port P [--streams 4] [--ptime 20] [--seconds S]

bench/media_load.py runs one beside the answering side, at the same
scheduling priority (``chrt -r`` / ``nice``), for the length of each level.
It sends ``--streams`` G.711 RTP streams (160-byte payloads every 20 ms),
their slots spread evenly over the period like the engine's clock lanes, to
a sink socket of its own on 127.0.0.1 ``--port``. The level's capture takes
those packets too and ``bench/rtp_jitter.py`` measures their PDV exactly as
it measures the answering side's.

Why: the media target is a p99 of send lateness on a shared 2-core VM whose
hypervisor takes the vCPUs away at times (steal), with SIPp and dumpcap on
the same cores. A sender that does nothing but sleep to its deadlines and
send one packet shows what the host alone does to any sender in those same
seconds: when its p99 is near the engine's, the host set the figure; when
it stays near zero, the lateness is the engine's own.

It keeps the engine clock's rules (:mod:`media.rtp.clock`, whose limit it
imports): deadlines are
absolute (``start + n * step``, no drift), a lateness up to three periods
is caught up packet by packet, a longer one skips forward and jumps the RTP
timestamps by the periods skipped. It is written by hand because it is a
measuring tool of about a hundred lines with nothing a library would add.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass

from media.rtp.clock import MAX_CATCH_UP_PERIODS
from media.rtp.packet import rtp_header

PAYLOAD_TYPE = 8
"""PCMA, as the engine answers uac_pcap."""


@dataclass(slots=True)
class CanarySchedule:
    """When each packet of ``streams`` streams is due, and what it carries (pure).

    Slot ``i`` belongs to stream ``i % streams`` and is due at
    ``start + i * step`` where ``step = ptime / streams``.
    """

    start: float
    streams: int = 4
    ptime: float = 0.020
    slot: int = 0

    @property
    def step(self) -> float:
        """Seconds between two consecutive slots."""
        return self.ptime / self.streams

    def due(self) -> float:
        """When the current slot is due."""
        return self.start + self.slot * self.step

    def catch_up(self, now: float) -> int:
        """Skip forward when ``now`` is more than three periods past the due slot.

        Returns the periods skipped (0 when the lateness is caught up packet
        by packet instead).
        """
        late = now - self.due()
        if late <= self.ptime * MAX_CATCH_UP_PERIODS:
            return 0
        periods = int(late / self.ptime)
        self.slot += periods * self.streams
        return periods

    def packet(self, ssrc_base: int = 0x5EED0000) -> tuple[int, bytes]:
        """(stream index, RTP packet) of the current slot; advances to the next slot."""
        n, stream = divmod(self.slot, self.streams)
        samples = round(self.ptime * 8000)
        header = rtp_header(
            PAYLOAD_TYPE, n == 0, n & 0xFFFF, (n * samples) & 0xFFFFFFFF, ssrc_base + stream
        )
        self.slot += 1
        return stream, header + b"\xd5" * samples


def set_priority(realtime: int | None, nice: int | None) -> None:
    """``SCHED_RR`` at ``realtime``, or the ``nice`` value (both need root to raise)."""
    if realtime:
        os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(realtime))
    elif nice:
        os.nice(nice)


def run(port: int, streams: int, ptime: float, seconds: float | None) -> int:
    """Send until SIGTERM/SIGINT or ``seconds``; returns the packets sent."""
    stop = False

    def _stop(_sig: int, _frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", port))  # so no packet draws an ICMP error; never read
    sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    schedule = CanarySchedule(start=time.monotonic() + 0.05, streams=streams, ptime=ptime)
    slots = None if seconds is None else round(seconds / schedule.step)
    sent = 0
    while not stop and (slots is None or schedule.slot < slots):
        delay = schedule.due() - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        schedule.catch_up(time.monotonic())
        _stream, data = schedule.packet()
        out.sendto(data, ("127.0.0.1", port))
        sent += 1
    sink.close()
    out.close()
    return sent


def main(argv: Sequence[str] | None = None) -> int:
    """Command line (see the module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, required=True, help="sink UDP port on 127.0.0.1")
    ap.add_argument("--streams", type=int, default=4)
    ap.add_argument("--ptime", type=int, default=20, help="ms")
    ap.add_argument("--seconds", type=float, default=None, help="default: until SIGTERM")
    ap.add_argument("--realtime", type=int, default=None, help="SCHED_RR priority (root)")
    ap.add_argument("--nice", type=int, default=None)
    args = ap.parse_args(argv)
    if args.streams < 1:
        ap.error("--streams must be at least 1")
    set_priority(args.realtime, args.nice)
    sent = run(args.port, args.streams, args.ptime / 1000.0, args.seconds)
    print(f"canary: {sent} packets sent")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
