"""Packet capture of RTP on the loopback interface (dumpcap) and row extraction (tshark).

Usage::

    cap = RtpCapture(port_ranges=[(20000, 20999)], path=tmp / "rtp.pcapng")
    cap.start()                 # returns once dumpcap really captures
    ...                         # traffic
    stats = cap.stop()          # dumpcap's own packets captured / dropped
    rows = cap.rows()           # list[bench.rtp_jitter.RtpRow]
    summary = summarize(analyze_streams(rows), sport_range=(20000, 20999))

``start()`` proves the capture is live: the BPF filter also admits a private
probe port, and probe datagrams are sent to it until dumpcap's packet counter
moves. The probes are not RTP (tshark's heuristic rejects them), so they never
show up in :meth:`RtpCapture.rows`.
"""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.rtp_jitter import TSHARK_FIELDS, RtpRow, parse_tshark_fields
from tests.peers import start_process, stop_process
from tests.peers.ports import HOST, free_udp_port

DUMPCAP = "dumpcap"
TSHARK = "tshark"
_PROBE = b"probe-not-rtp"
_COUNT = re.compile(rb"Packets(?: captured)?: (\d+)")
_DROPS = re.compile(rb"received/dropped on interface '[^']*': (\d+)/(\d+)")


@dataclass(frozen=True)
class CaptureStats:
    """dumpcap's own end-of-capture report."""

    captured: int
    received: int
    dropped: int


def bpf_for(
    ports: Sequence[int] = (),
    port_ranges: Sequence[tuple[int, int]] = (),
    direction: str = "",
) -> str:
    """BPF expression for UDP on ``ports`` / ``port_ranges``; direction "", "src" or "dst"."""
    if direction not in ("", "src", "dst"):
        raise ValueError(f"direction must be '', 'src' or 'dst', not {direction!r}")
    prefix = f"{direction} " if direction else ""
    terms = [f"{prefix}port {p}" for p in ports]
    terms += [f"{prefix}portrange {lo}-{hi}" for lo, hi in port_ranges]
    if not terms:
        return "udp"
    return "udp and (" + " or ".join(terms) + ")"


class RtpCapture:
    """dumpcap on ``lo`` with a UDP port filter, written to a pcapng file."""

    def __init__(
        self,
        ports: Sequence[int] = (),
        port_ranges: Sequence[tuple[int, int]] = (),
        *,
        direction: str = "",
        path: Path | None = None,
        interface: str = "lo",
        snaplen: int = 128,
        buffer_mib: int = 64,
    ) -> None:
        self.filter = bpf_for(ports, port_ranges, direction)
        if path is None:
            path = Path(tempfile.mkdtemp(prefix="rtpcap-")) / "rtp.pcapng"
        self.path = path
        self.interface = interface
        self.snaplen = snaplen
        self.buffer_mib = buffer_mib
        self.stderr_path = path.with_suffix(".dumpcap.txt")
        self.proc: subprocess.Popen[bytes] | None = None
        self.stats: CaptureStats | None = None
        self._probe_port = 0

    @property
    def command(self) -> list[str]:
        """The dumpcap argv (valid after :meth:`start` chose the probe port)."""
        bpf = f"({self.filter}) or (udp and dst port {self._probe_port})"
        return [
            DUMPCAP,
            "-i",
            self.interface,
            "-f",
            bpf,
            "-s",
            str(self.snaplen),
            "-B",
            str(self.buffer_mib),
            "-w",
            str(self.path),
        ]

    def _stderr(self) -> bytes:
        try:
            return self.stderr_path.read_bytes()
        except FileNotFoundError:
            return b""

    def _count(self) -> int:
        found = _COUNT.findall(self._stderr())
        return int(found[-1]) if found else 0

    def start(self, timeout: float = 15.0) -> None:
        """Start dumpcap and return once it has captured a probe datagram."""
        if self.proc is not None:
            raise RuntimeError("capture already started")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._probe_port = free_udp_port()
        self.proc = start_process(self.command, stdout=subprocess.DEVNULL, stderr=self.stderr_path)
        deadline = time.monotonic() + timeout
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            while True:
                if self.proc.poll() is not None:
                    err = self._stderr().decode(errors="replace")
                    raise RuntimeError(f"dumpcap exited ({self.proc.returncode}): {err}")
                if b"Capturing on" in self._stderr():
                    sock.sendto(_PROBE, (HOST, self._probe_port))
                    if self._count() > 0:
                        return
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"dumpcap did not start capturing within {timeout} s")
                time.sleep(0.05)
        finally:
            sock.close()

    def stop(self) -> CaptureStats:
        """Stop dumpcap (SIGTERM: it flushes the file and reports drops) once it has
        caught up: packets still in its kernel buffer at SIGTERM are never written."""
        if self.proc is None:
            raise RuntimeError("capture not started")
        if self.stats is not None:
            return self.stats
        self._drain()
        stop_process(self.proc, signal.SIGTERM, grace=10.0)
        text = self._stderr()
        drops = _DROPS.search(text)
        self.stats = CaptureStats(
            captured=self._count(),
            received=int(drops.group(1)) if drops else 0,
            dropped=int(drops.group(2)) if drops else 0,
        )
        return self.stats

    def _drain(self, timeout: float = 3.0, settle: float = 0.3) -> None:
        """Send a last probe and wait until dumpcap's count has moved past it and
        then held still for ``settle`` s (it reports as it writes, in order)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        before = self._count()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto(_PROBE, (HOST, self._probe_port))
        deadline = time.monotonic() + timeout
        last, since = before, time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.05)
            count = self._count()
            if count != last:
                last, since = count, time.monotonic()
            elif count > before and time.monotonic() - since >= settle:
                return

    def rows(self, display_filter: str = "rtp", timeout: float = 300.0) -> list[RtpRow]:
        """RTP rows of the capture file (tshark with heuristic RTP on)."""
        return read_rtp_rows(self.path, display_filter, timeout)

    def __enter__(self) -> RtpCapture:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.stats is None:
            self.stop()


def tshark_command(path: Path, display_filter: str = "rtp") -> list[str]:
    """The tshark argv extracting :data:`TSHARK_FIELDS` from ``path``."""
    argv = [TSHARK, "-n", "-r", str(path), "-o", "rtp.heuristic_rtp:TRUE", "-T", "fields"]
    for name in TSHARK_FIELDS:
        argv += ["-e", name]
    if display_filter:
        argv += ["-Y", display_filter]
    return argv


def read_rtp_rows(path: Path, display_filter: str = "rtp", timeout: float = 300.0) -> list[RtpRow]:
    """Run tshark on a capture file and parse its RTP rows."""
    out = subprocess.run(
        tshark_command(path, display_filter),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"tshark failed ({out.returncode}): {out.stderr.decode()[-500:]}")
    return parse_tshark_fields(out.stdout.decode(errors="replace"))
