"""Media load benchmark: SIPp ``uac_pcap`` calls at rising concurrency against an answering side.

    python bench/media_load.py [--levels 50,100,200,300,400] [--calls-per-level N]
                               [--target engine|pyvoip|both] [--pyvoip-levels 10,25,50,100]
                               [--json results.json]

Targets:

* ``engine``: ``python -m ivr serve --sip 127.0.0.1:P --http 127.0.0.1:H --data DIR
  --flows flows/`` (plus ``--rtp-ports`` when the CLI has it), started once; SIPp
  calls it directly. Digits = delta of ``callcore_dtmf_digits_total`` on /metrics,
  its own peak concurrency = max of the sampled ``callcore_calls_active`` gauge.
* ``pyvoip`` (baseline): ``tests/peers/pyvoip_answer.py`` (pyVoIP 1.6.8) registered
  at a kamailio; SIPp calls ``sip:ivr@kamailio``. Both are started fresh for every
  level (a collapsed pyVoIP leaves dead threads behind). Digits and its own peak
  concurrency come from its stats JSON. Levels stop rising once it collapses.

Per level SIPp runs ``uac_pcap`` (PCMA + telephone-event offer, 7 s of audio
while an 8 s pause runs, RFC 4733 digit "1", 1 s pause, BYE: ~9 s per call)
with ``-l LEVEL``, ``-r LEVEL/ramp`` (LEVEL calls up within ``--ramp`` s) and
``-m calls``. Measured:

* peak concurrent calls (SIPp's CurrentCall, sampled every second), failed calls;
* digits detected by the answering side (one "1" per successful call expected);
* the answering side's outgoing RTP: captured with dumpcap (destination = SIPp's
  media ports) and analysed by bench/rtp_jitter.py: send jitter as RFC 5481 PDV
  p50/p99 (how late each packet went out behind its stream's least late packet;
  the target's figure), the deviation from a first-packet schedule p99, drift-free
  IPDV p99, clock drift, loss (definitions there);
* the answering process's CPU (utime+stime of it, its threads and its child
  processes from /proc, sampled every second; 100 % = one core): mean over the
  run and the highest one-second sample;
* SIPp's WatchdogMajor: > 0 means SIPp itself was starved and the level is void.

A target has collapsed at a level when its process died, SIPp could not finish,
more than 10 % of the calls failed, it detected digits for less than half the
successful calls, or its RTP drifted more than 100 ms per second (sending at
< ~91 % of real time). Levels stop rising after a collapse or a void level.

The machine has 2 cores and is shared: the 1-minute load average before each
level is printed with it. Figures are for comparison on this machine only.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.rtp_jitter import analyze_streams, summarize  # noqa: E402
from tests.peers import start_process, stop_process, wait_until  # noqa: E402
from tests.peers.capture import RtpCapture  # noqa: E402
from tests.peers.kamailio import Kamailio  # noqa: E402
from tests.peers.ports import free_port, free_rtp_range  # noqa: E402
from tests.peers.sipp import MEDIA_PORT_STEP, Sipp  # noqa: E402

CALL_SECONDS = 10.0
"""uac_pcap call length (~9 s) plus pyVoIP's 1 s of ringing."""
MAX_DRIFT_MS_PER_S = 100.0
"""A sender losing more than this per second (sending < ~91 % of real time) has collapsed."""


# -- CPU accounting ---------------------------------------------------------------------


def _proc_table() -> dict[int, tuple[int, float, float]]:
    """pid -> (ppid, utime+stime seconds, cutime+cstime seconds) for all processes."""
    tick = os.sysconf("SC_CLK_TCK")
    table: dict[int, tuple[int, float, float]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            text = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = text.rsplit(")", 1)[1].split()
        # fields[0] is state (field 3); utime/stime/cutime/cstime are fields 14-17.
        ppid = int(fields[1])
        own = (int(fields[11]) + int(fields[12])) / tick
        children = (int(fields[13]) + int(fields[14])) / tick
        table[int(entry)] = (ppid, own, children)
    return table


def tree_cpu_seconds(root: int) -> float:
    """CPU seconds used by ``root``, all its threads, live descendants and reaped children."""
    table = _proc_table()
    if root not in table:
        return 0.0
    kids: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in table.items():
        kids.setdefault(ppid, []).append(pid)
    total = table[root][2]
    stack = [root]
    seen: set[int] = set()
    while stack:
        pid = stack.pop()
        if pid in seen or pid not in table:
            continue
        seen.add(pid)
        total += table[pid][1]
        stack.extend(kids.get(pid, []))
    return total


def host_cpu_times() -> tuple[float, float, float]:
    """(busy, total, steal) jiffies of all CPUs from /proc/stat."""
    fields = [float(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
    total = sum(fields[:8])  # user nice system idle iowait irq softirq steal
    steal = fields[7] if len(fields) > 7 else 0.0
    return total - idle, total, steal


def host_steal_percent(
    before: tuple[float, float, float], after: tuple[float, float, float]
) -> float:
    """Share of the virtual CPUs' time the hypervisor gave to others (0-100): the
    vCPU was runnable but not running, which no process here can avoid."""
    total = after[1] - before[1]
    return 100.0 * (after[2] - before[2]) / total if total > 0 else 0.0


def host_busy_percent(
    before: tuple[float, float, float], after: tuple[float, float, float]
) -> float:
    """Share of all the machine's CPU time that was busy between two samples (0-100)."""
    busy = after[0] - before[0]
    total = after[1] - before[1]
    return 100.0 * busy / total if total > 0 else 0.0


class CpuSampler:
    """Samples a process tree's CPU every ``interval`` s in a thread."""

    def __init__(self, pid: int, interval: float = 1.0) -> None:
        self.pid = pid
        self.interval = interval
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cpu-sampler", daemon=True)
        self._t0 = 0.0
        self._c0 = 0.0
        self._t1 = 0.0
        self._c1 = 0.0
        self._last = (0.0, 0.0)

    def _run(self) -> None:
        last_t, last_c = self._t0, self._c0
        while not self._stop.wait(self.interval):
            t, c = time.monotonic(), tree_cpu_seconds(self.pid)
            if c < last_c:  # the process is gone: keep the last reading
                break
            if t > last_t:
                self.samples.append(100.0 * (c - last_c) / (t - last_t))
            last_t, last_c = t, c
            self._last = (t, c)

    def start(self) -> None:
        """Begin sampling."""
        self._t0, self._c0 = time.monotonic(), tree_cpu_seconds(self.pid)
        self._last = (self._t0, self._c0)
        self._thread.start()

    def stop(self) -> tuple[float, float]:
        """End sampling; returns (mean %, highest one-interval %)."""
        self._t1, self._c1 = time.monotonic(), tree_cpu_seconds(self.pid)
        self._stop.set()
        self._thread.join(timeout=5)
        if self._c1 < self._last[1]:  # exited before stop(): use the last sample
            self._t1, self._c1 = self._last
        mean = 100.0 * (self._c1 - self._c0) / max(1e-9, self._t1 - self._t0)
        return mean, max(self.samples, default=mean)


# -- answering sides ----------------------------------------------------------------------


def parse_metric(text: str, name: str) -> float | None:
    """Sum of all samples of metric ``name`` in Prometheus text (None if absent)."""
    total: float | None = None
    pattern = re.compile(rf"^{re.escape(name)}(?:\{{[^}}]*\}})?\s+(\S+)", re.M)
    for m in pattern.finditer(text):
        with contextlib.suppress(ValueError):
            total = (total or 0.0) + float(m.group(1))
    return total


#: Command prefix for the answering process (``--nice``); empty: normal priority.
NICE: list[str] = []
#: --realtime N: the engine's media loop on SCHED_RR N (its own option); pyVoIP, which
#: has none, runs under `chrt -r N` (all its threads), so both get the same treatment.
REALTIME: list[int] = []
NATIVE: list[bool] = []
"""Non-empty: the engine runs its media loop from the mypyc build (``--native``)."""


class Target(ABC):
    """An answering side: started, asked for figures, stopped."""

    name = "?"
    service = "ivr"
    pid: int = 0

    @abstractmethod
    def sip_address(self) -> str:
        """HOST:PORT SIPp sends its INVITEs to."""

    def start_level(self, level: int) -> None:  # noqa: B027 (an optional hook)
        """Prepare for one level (may start processes)."""

    @abstractmethod
    def digits(self) -> float | None:
        """Digits detected so far (counter; compared before/after a level)."""

    def own_active_calls(self) -> float | None:
        """The answering side's own idea of its current calls (None if unknown)."""
        return None

    def tick_counts(self) -> tuple[float, float] | None:
        """(media clock ticks so far, of which later than 5 ms), if the side reports them."""
        return None

    def late_causes(self) -> dict[str, float] | None:
        """Ticks later than 5 ms so far by cause (busy, queued, off_cpu), if reported."""
        return None

    @abstractmethod
    def alive(self) -> bool:
        """Whether the answering process still runs."""

    def end_level(self) -> dict[str, Any]:
        """Finish one level; extra figures for the report."""
        return {}

    def close(self) -> None:  # noqa: B027 (an optional hook)
        """Stop everything still running."""


class EngineTarget(Target):
    """The engine under test, started once via ``python -m ivr serve``."""

    name = "engine"

    def __init__(self, work: Path, rtp_ports: int) -> None:
        self.work = work
        self.sip_port = free_port("both")
        self.http_port = free_port("tcp")
        self.proc: subprocess.Popen[bytes] | None = None
        self.rtp_ports = rtp_ports
        self.log = work / "engine.log"

    def _metrics(self) -> str | None:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.http_port}/metrics", timeout=2
            ) as resp:
                body: bytes = resp.read()
                return body.decode(errors="replace")
        except (OSError, ValueError):
            return None

    def start(self, timeout: float = 30.0) -> None:
        """Start the engine and wait until /metrics answers; SystemExit with a reason if not."""
        if importlib.util.find_spec("ivr") is None or importlib.util.find_spec("ivr.cli") is None:
            raise SystemExit(
                "engine target: the `ivr` package is not importable yet "
                f"(looked from {ROOT}); run with --target pyvoip for the baseline only"
            )
        argv = [*NICE, sys.executable, "-m", "ivr", "serve", "--sip", f"127.0.0.1:{self.sip_port}"]
        argv += ["--http", f"127.0.0.1:{self.http_port}", "--data", str(self.work / "data")]
        argv += ["--flows", "flows/"]
        # The media process alone: its transcription workers (Whisper, niced)
        # belong on other cores; on this 2-core host they would compete with
        # SIPp and dumpcap, not with the figures asked for.
        argv += ["--transcribe-workers", "0"]
        helptext = subprocess.run(
            [sys.executable, "-m", "ivr", "serve", "--help"],
            cwd=ROOT,
            capture_output=True,
            timeout=60,
            check=False,
        )
        if helptext.returncode != 0:
            raise SystemExit(
                "engine target: `python -m ivr serve --help` failed: "
                + helptext.stderr.decode(errors="replace")[-800:]
            )
        if REALTIME:
            if b"--realtime" not in helptext.stdout:
                raise SystemExit("engine target: this `ivr serve` has no --realtime option")
            argv += ["--realtime", str(REALTIME[0])]
        if NATIVE:
            if b"--native" not in helptext.stdout:
                raise SystemExit("engine target: this `ivr serve` has no --native option")
            argv += ["--native"]
        if b"--rtp-ports" in helptext.stdout:
            low = free_rtp_range(self.rtp_ports)
            argv += ["--rtp-ports", f"{low}-{low + self.rtp_ports - 1}"]
        self.proc = start_process(argv, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT)
        self.pid = self.proc.pid
        ok = wait_until(lambda: self._metrics() is not None or not self.alive(), timeout, 0.2)
        if not ok or not self.alive():
            tail = self.log.read_text(errors="replace")[-1500:]
            rc = None if self.proc is None else self.proc.poll()
            self.close()
            why = (
                f"exited with code {rc} before serving /metrics"
                if rc is not None
                else f"did not serve /metrics within {timeout} s"
            )
            raise SystemExit(f"engine target: `python -m ivr serve` {why}; log tail:\n{tail}")
        print(f"engine: pid {self.pid}, SIP 127.0.0.1:{self.sip_port}, HTTP {self.http_port}")
        print("engine: " + " ".join(argv[1:]))

    def sip_address(self) -> str:
        return f"127.0.0.1:{self.sip_port}"

    def digits(self) -> float | None:
        text = self._metrics()
        return None if text is None else parse_metric(text, "callcore_dtmf_digits_total")

    def own_active_calls(self) -> float | None:
        # Sampled every second during a level: /health, not /metrics, whose
        # render takes the engine's loop a few milliseconds each time.
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.http_port}/health", timeout=2
            ) as resp:
                active = json.loads(resp.read())["calls_active"]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return float(active) if isinstance(active, int | float) else None

    def tick_counts(self) -> tuple[float, float] | None:
        text = self._metrics()
        if text is None:
            return None
        name = "callcore_media_tick_lateness_seconds"
        total = parse_metric(text, f"{name}_count")
        m = re.search(rf'^{name}_bucket{{le="0.005"}}\s+(\S+)', text, re.M)
        if total is None or m is None:
            return None
        return total, total - float(m.group(1))

    def late_causes(self) -> dict[str, float] | None:
        text = self._metrics()
        if text is None:
            return None
        found = re.findall(r'^callcore_media_late_ticks_total\{cause="(\w+)"\}\s+(\S+)', text, re.M)
        return {cause: float(value) for cause, value in found} or None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def close(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, signal.SIGTERM, grace=15, group=False)
            self.proc = None


class PyVoipTarget(Target):
    """pyVoIP 1.6.8 behind kamailio, both fresh for every level."""

    name = "pyvoip"

    def __init__(self, work: Path) -> None:
        self.work = work
        self.kam: Kamailio | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.stats_path = work / "pyvoip.json"
        self.level_dir = work

    def _stats(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(self.stats_path.read_text())
            return data
        except (OSError, ValueError):
            return {}

    def start_level(self, level: int) -> None:
        self.level_dir = self.work / f"pyvoip-{level}"
        self.level_dir.mkdir(parents=True, exist_ok=True)
        self.stats_path = self.level_dir / "pyvoip.json"
        self.kam = Kamailio(run_dir=self.level_dir / "kamailio")
        self.kam.start()
        n = max(100, 4 * level)
        low = free_rtp_range(n)
        chrt = ["chrt", "-r", str(REALTIME[0])] if REALTIME else []
        argv = [*chrt, *NICE, sys.executable, "-m", "tests.peers.pyvoip_answer"]
        argv += ["--registrar", self.kam.uri]
        argv += ["--user", self.service, "--sip-port", str(free_port("udp"))]
        argv += ["--rtp-low", str(low), "--rtp-high", str(low + n - 1)]
        argv += ["--stats", str(self.stats_path), "--max-seconds", "900"]
        self.proc = start_process(
            argv,
            cwd=ROOT,
            stdout=self.level_dir / "pyvoip.out",
            stderr=self.level_dir / "pyvoip.err",
        )
        self.pid = self.proc.pid
        if not wait_until(lambda: bool(self._stats().get("ready")) or not self.alive(), 30, 0.2):
            raise RuntimeError("pyVoIP did not register within 30 s")
        if not self.alive():
            err = (self.level_dir / "pyvoip.err").read_text(errors="replace")[-800:]
            raise RuntimeError(f"pyVoIP exited: {err}")

    def sip_address(self) -> str:
        assert self.kam is not None
        return self.kam.uri

    def digits(self) -> float | None:
        value = self._stats().get("digits_total")
        return None if value is None else float(value)

    def own_active_calls(self) -> float | None:
        value = self._stats().get("active_calls")
        return None if value is None else float(value)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def end_level(self) -> dict[str, Any]:
        # Let call threads count the last BYEs, then stop and read the final stats.
        wait_until(lambda: self._stats().get("active_calls", 0) == 0, 5, 0.2)
        died = not self.alive()
        self.close()
        st = self._stats()
        return {
            "pyvoip_died": died,
            "pyvoip_answered": st.get("calls_answered"),
            "pyvoip_peak_active": st.get("peak_active_calls"),
            "pyvoip_peak_threads": st.get("peak_threads"),
        }

    def close(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, signal.SIGTERM, grace=10)
            self.proc = None
        if self.kam is not None:
            self.kam.stop()
            self.kam = None


# -- one level ----------------------------------------------------------------------------


@dataclass
class LevelResult:
    """Figures of one concurrency level against one target."""

    target: str
    level: int
    calls: int
    rate: float
    load_before: float
    successful: int = 0
    failed: int = 0
    created: int = 0
    peak_sipp: int = 0
    peak_answerer: float | None = None
    digits: float | None = None
    streams: int = 0
    rtp_packets: int = 0
    rtp_lost: int = 0
    #: RFC 5481 PDV of its outgoing RTP (bench/rtp_jitter.py): the target's figure.
    pdv_p50_ms: float | None = None
    pdv_p99_ms: float | None = None
    pdv_max_ms: float | None = None
    #: PDV of bench/canary.py's streams in the same level (the host's floor: see there).
    canary_pdv_p50_ms: float | None = None
    canary_pdv_p99_ms: float | None = None
    #: Deviation from a schedule set by each stream's first packet (the older figure).
    jitter_p50_ms: float | None = None
    jitter_p99_ms: float | None = None
    jitter_max_ms: float | None = None
    ipdv_p99_ms: float | None = None
    drift_ms_per_s: float | None = None
    late_ticks_pct: float | None = None
    #: Ticks > 5 ms late by cause (the engine's callcore_media_late_ticks_total).
    late_causes: dict[str, float] | None = None
    cpu_mean: float | None = None
    cpu_peak: float | None = None
    sipp_cpu: float | None = None
    capture_cpu: float | None = None
    host_busy: float | None = None
    host_steal: float | None = None
    watchdog_major: int = 0
    capture_dropped: int = 0
    sipp_timed_out: bool = False
    answerer_died: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    note: str = ""

    @property
    def void(self) -> bool:
        """SIPp's major watchdog tripped: SIPp was overloaded, the level says nothing."""
        return self.watchdog_major > 0

    @property
    def collapse_reason(self) -> str:
        """Why the answering side counts as broken down at this level ("" if it did not)."""
        if self.answerer_died:
            return "answering process died"
        if self.sipp_timed_out:
            return "SIPp run did not finish"
        if self.created and self.failed > 0.10 * self.created:
            return f"{self.failed}/{self.created} calls failed"
        if self.successful and self.digits is not None and self.digits < 0.5 * self.successful:
            return f"only {self.digits:.0f} digits for {self.successful} calls"
        if self.drift_ms_per_s is not None and self.drift_ms_per_s > MAX_DRIFT_MS_PER_S:
            pace = 100.0 / (1.0 + self.drift_ms_per_s / 1000.0)
            return f"RTP sent at {pace:.0f} % of real time"
        return ""

    @property
    def collapsed(self) -> bool:
        """The answering side broke down at this level (see :attr:`collapse_reason`)."""
        return bool(self.collapse_reason)


def _sampler(fn: Callable[[], float | None], interval: float = 1.0) -> tuple[Any, list[float]]:
    values: list[float] = []
    stop = threading.Event()

    def run() -> None:
        while not stop.wait(interval):
            v = fn()
            if v is not None:
                values.append(v)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return (stop, t), values


def run_level(
    target: Target, level: int, calls: int, ramp: float, work: Path, keep_capture: bool = False
) -> LevelResult:
    """Run one concurrency level against an already prepared target.

    The capture (``answerer-rtp.pcapng`` in the level's folder) is deleted after
    analysis unless ``keep_capture`` (``--keep``).
    """
    rate = max(1.0, math.ceil(level / ramp))
    res = LevelResult(
        target=target.name,
        level=level,
        calls=calls,
        rate=rate,
        load_before=os.getloadavg()[0],
    )
    run_dir = work / f"{target.name}-{level}"
    run_dir.mkdir(parents=True, exist_ok=True)
    expected_s = ramp + math.ceil(calls / level) * CALL_SECONDS + calls / rate
    sipp = Sipp(
        "uac_pcap",
        remote=target.sip_address(),
        service=target.service,
        calls=calls,
        rate=rate,
        limit=level,
        timeout=expected_s + 60,
        wall_timeout=expected_s + 90,
        run_dir=run_dir / "sipp",
        extra_args=["-max_recv_loops", "5000", "-max_sched_loops", "5000"],
    )
    sipp.prepare()
    media_high = sipp.media_port + MEDIA_PORT_STEP * calls + 3
    # not inside SIPp's media range: SIPp binds those ports as its calls start
    canary_port = free_port("udp", avoid=[(sipp.media_port, media_high), (sipp.port, sipp.port)])
    cap = RtpCapture(
        ports=[canary_port],
        port_ranges=[(sipp.media_port, media_high)],
        direction="dst",
        path=run_dir / "answerer-rtp.pcapng",
        snaplen=96,
    )
    digits0 = target.digits() or 0.0
    ticks0 = target.tick_counts()
    causes0 = target.late_causes()
    cap.start()
    canary = start_canary(canary_port, run_dir)
    cpu = CpuSampler(target.pid)
    cpu.start()
    host0 = host_cpu_times()
    (stop_evt, thread), active = _sampler(target.own_active_calls)
    try:
        handle = sipp.start()
        sipp_cpu = CpuSampler(handle.pid)
        sipp_cpu.start()
        assert cap.proc is not None
        cap_cpu = CpuSampler(cap.proc.pid)
        cap_cpu.start()
        result = handle.wait(sipp.effective_wall_timeout())
        res.sipp_cpu = sipp_cpu.stop()[0]
        res.capture_cpu = cap_cpu.stop()[0]
    finally:
        stop_evt.set()
        thread.join(timeout=5)
        res.cpu_mean, res.cpu_peak = cpu.stop()
        host1 = host_cpu_times()
        res.host_busy = host_busy_percent(host0, host1)
        res.host_steal = host_steal_percent(host0, host1)
        stop_process(canary)
        cstats = cap.stop()
    # Give the answering side a moment to account the last digits / BYEs.
    time.sleep(1.0)
    digits1 = target.digits()
    res.answerer_died = not target.alive()
    res.extra = target.end_level()
    res.answerer_died = res.answerer_died or bool(res.extra.get("pyvoip_died"))
    res.digits = None if digits1 is None else digits1 - digits0
    ticks1 = target.tick_counts()
    causes1 = target.late_causes()
    if causes0 is not None and causes1 is not None:
        res.late_causes = {k: v - causes0.get(k, 0.0) for k, v in causes1.items()}
    if ticks0 is not None and ticks1 is not None and ticks1[0] > ticks0[0]:
        res.late_ticks_pct = 100.0 * (ticks1[1] - ticks0[1]) / (ticks1[0] - ticks0[0])
    s = result.stats
    res.successful, res.failed, res.created = s.successful, s.failed, s.created
    res.peak_sipp = s.peak_current_calls
    res.watchdog_major = s.watchdog_major
    res.sipp_timed_out = result.timed_out
    res.peak_answerer = max(active) if active else res.extra.get("pyvoip_peak_active")
    res.capture_dropped = cstats.dropped
    rows = cap.rows()
    streams = analyze_streams(rows)
    summary = summarize(streams, dport_range=(sipp.media_port, media_high))
    res.streams, res.rtp_packets, res.rtp_lost = summary.streams, summary.packets, summary.lost
    res.jitter_p50_ms, res.jitter_p99_ms = summary.p50_ms, summary.p99_ms
    res.jitter_max_ms, res.ipdv_p99_ms = summary.max_ms, summary.ipdv_p99_ms
    res.drift_ms_per_s = summary.drift_ms_per_s
    res.pdv_p50_ms, res.pdv_p99_ms = summary.pdv_p50_ms, summary.pdv_p99_ms
    res.pdv_max_ms = summary.pdv_max_ms
    control = summarize(streams, dport_range=(canary_port, canary_port))
    res.canary_pdv_p50_ms, res.canary_pdv_p99_ms = control.pdv_p50_ms, control.pdv_p99_ms
    notes = []
    if res.void:
        notes.append(f"VOID: SIPp WatchdogMajor={res.watchdog_major}")
    if res.sipp_timed_out:
        notes.append("SIPp killed on timeout")
    if res.answerer_died:
        notes.append("answering process died")
    if res.capture_dropped:
        notes.append(f"capture dropped {res.capture_dropped}")
    if result.returncode not in (0, None) and not res.failed:
        notes.append(f"sipp rc={result.returncode}")
    res.note = "; ".join(notes)
    if not keep_capture:
        with contextlib.suppress(OSError):
            cap.path.unlink()  # large; the figures are kept
    return res


def start_canary(port: int, run_dir: Path) -> subprocess.Popen[bytes]:
    """Start bench/canary.py at the answering side's priority, sending to ``port``."""
    argv = [*NICE, sys.executable, str(ROOT / "bench" / "canary.py"), "--port", str(port)]
    if REALTIME:
        argv += ["--realtime", str(REALTIME[0])]
    return start_process(argv, cwd=ROOT, stdout=run_dir / "canary.out", stderr=subprocess.STDOUT)


# -- reporting ----------------------------------------------------------------------------


def _f(x: float | None, fmt: str = "{:.1f}") -> str:
    return "-" if x is None else fmt.format(x)


def _causes(c: dict[str, float] | None) -> str:
    if not c:
        return "-"
    return "/".join(f"{c.get(k, 0.0):.0f}" for k in ("busy", "queued", "off_cpu"))


HEADER = (
    f"{'level':>5} {'calls':>5} {'ok':>5} {'fail':>4} {'peak':>5} {'own':>5} {'digits':>6} "
    f"{'pdv50':>6} {'pdv99':>6} {'ctl99':>6} {'dev99':>6} {'ipdv99':>6} {'drift':>5} "
    f"{'lost':>4} {'cpu%':>5} "
    f"{'cpu%max':>7} {'tick>5':>6} {'late b/q/o':>11} {'sipp%':>5} {'host%':>5} {'steal':>5} "
    f"{'wdog':>4} {'load':>5}  note"
)


def format_row(r: LevelResult) -> str:
    """One table line for a level."""
    return (
        f"{r.level:>5} {r.calls:>5} {r.successful:>5} {r.failed:>4} {r.peak_sipp:>5} "
        f"{_f(r.peak_answerer, '{:.0f}'):>5} {_f(r.digits, '{:.0f}'):>6} "
        f"{_f(r.pdv_p50_ms, '{:.2f}'):>6} {_f(r.pdv_p99_ms, '{:.2f}'):>6} "
        f"{_f(r.canary_pdv_p99_ms, '{:.2f}'):>6} "
        f"{_f(r.jitter_p99_ms, '{:.2f}'):>6} "
        f"{_f(r.ipdv_p99_ms, '{:.2f}'):>6} {_f(r.drift_ms_per_s, '{:.1f}'):>5} "
        f"{r.rtp_lost:>4} {_f(r.cpu_mean):>5} {_f(r.cpu_peak):>7} "
        f"{_f(r.late_ticks_pct, '{:.2f}'):>6} {_causes(r.late_causes):>11} "
        f"{_f(r.sipp_cpu, '{:.0f}'):>5} "
        f"{_f(r.host_busy, '{:.0f}'):>5} {_f(r.host_steal):>5} {r.watchdog_major:>4} "
        f"{r.load_before:>5.2f}  {r.note}"
    )


def print_table(title: str, rows: list[LevelResult]) -> None:
    """Print one target's table with a legend."""
    print()
    print(title)
    print(HEADER)
    for r in rows:
        print(format_row(r))
    print(
        "  peak = SIPp CurrentCall max (1 s samples); own = answering side's own peak;"
        " digits = RFC 4733 digits it detected (1 per ok call expected);\n"
        "  pdv50/pdv99 = its outgoing RTP's packet delay variation (RFC 5481: how late each"
        " packet went out behind its stream's least late one; ms): the target's send jitter;\n"
        "  ctl99 = pdv99 of bench/canary.py, a sender of 4 streams that only sleeps and sends,"
        " at the same priority in the same seconds: what the host alone did to any sender;\n"
        "  dev99 = p99 deviation from a schedule set by each stream's first packet (a late"
        " first packet counts once per packet of its call); ipdv99 = consecutive-packet"
        " delay variation p99 (ms);\n"
        "  drift = ms of lateness gained per second; lost = RTP packets missing;"
        " cpu% = answering process tree (100 = one core);\n"
        "  tick>5 = % of the engine's media clock ticks that fired more than 5 ms late;\n"
        "  late b/q/o = those late ticks by cause (media/rtp/stalls.py): busy = the loop's thread"
        " was running (engine work), queued = it waited for a CPU another task held,"
        " off = neither (hypervisor steal, or blocked);\n"
        "  sipp% = SIPp's CPU (100 = one core); host% = whole machine busy (100 = all cores);"
        " steal = % of the vCPUs' time the hypervisor ran other guests;\n"
        "  wdog = SIPp WatchdogMajor (> 0: level void);\n"
        "  load = 1-min load average before the level."
    )


# -- main ---------------------------------------------------------------------------------


def _levels(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


@contextlib.contextmanager
def _workdir(keep: Path | None) -> Iterator[Path]:
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        yield keep
        return
    path = Path(tempfile.mkdtemp(prefix="media-load-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def run_target(
    target: Target,
    levels: list[int],
    calls_per_level: int | None,
    ramp: float,
    work: Path,
    keep: bool = False,
) -> list[LevelResult]:
    """Run the levels in order against ``target``; stop after a collapse."""
    results: list[LevelResult] = []
    for level in levels:
        calls = calls_per_level or 2 * level
        print(f"[{target.name}] level {level}: {calls} calls ...", flush=True)
        try:
            target.start_level(level)
            r = run_level(target, level, calls, ramp, work, keep_capture=keep)
        except (RuntimeError, OSError) as exc:
            target.close()
            print(f"[{target.name}] level {level}: aborted: {exc}", flush=True)
            break
        results.append(r)
        print(format_row(r), flush=True)
        if r.void:
            print(f"[{target.name}] level {level} void (SIPp overloaded): not raising further")
            break
        if r.collapsed:
            print(
                f"[{target.name}] collapsed at {level} ({r.collapse_reason}): not raising further",
                flush=True,
            )
            break
    return results


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--levels", type=_levels, default=_levels("50,100,200,300,400"))
    ap.add_argument(
        "--pyvoip-levels",
        type=_levels,
        default=None,
        help="levels for the pyVoIP baseline (default: --levels)",
    )
    ap.add_argument("--calls-per-level", type=int, default=None, help="default: 2 x level")
    ap.add_argument("--target", choices=("engine", "pyvoip", "both"), default="both")
    ap.add_argument("--ramp", type=float, default=4.0, help="seconds to reach a level")
    ap.add_argument("--json", type=Path, default=None, help="write all figures here")
    ap.add_argument(
        "--keep", type=Path, default=None, help="keep run files and RTP captures in this folder"
    )
    ap.add_argument(
        "--nice",
        type=int,
        default=0,
        help="run the answering process (engine or pyVoIP alike) at this nice value, as a"
        " PBX host runs its media process at raised priority (Asterisk -p); negative needs root",
    )
    ap.add_argument(
        "--realtime",
        type=int,
        default=0,
        help="real-time priority (SCHED_RR 1-99) of the answering side's media, as a PBX host"
        " runs it (asterisk -p): the engine's --realtime, `chrt -r` for pyVoIP; needs root",
    )
    ap.add_argument(
        "--native",
        action="store_true",
        help="the engine runs its media loop from the mypyc build (`make media-native`),"
        " as `make run` does",
    )
    args = ap.parse_args(argv)
    if args.native:
        from media import native

        reason = native.BUILD.stale_reason()
        if reason is not None:
            raise SystemExit(f"media_load.py --native: {reason}: build it with `make media-native`")
        NATIVE[:] = [True]
    if args.realtime:
        REALTIME[:] = [args.realtime]
    if args.nice:
        NICE[:] = ["nice", "-n", str(args.nice)]
    for tool in ("sipp", "dumpcap", "tshark", "kamailio"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} not found (scripts/bootstrap.sh installs the peers)")

    all_results: dict[str, list[dict[str, Any]]] = {}
    tables: list[tuple[str, list[LevelResult]]] = []
    keep = args.keep is not None
    with _workdir(args.keep) as work:
        if args.target in ("engine", "both"):
            engine = EngineTarget(work / "engine", rtp_ports=min(9000, 8 * max(args.levels) + 64))
            (work / "engine").mkdir(parents=True, exist_ok=True)
            try:
                engine.start()
                rows = run_target(engine, args.levels, args.calls_per_level, args.ramp, work, keep)
            finally:
                engine.close()
            tables.append(("engine (python -m ivr serve), SIPp uac_pcap direct", rows))
        if args.target in ("pyvoip", "both"):
            pyv = PyVoipTarget(work / "pyvoip")
            (work / "pyvoip").mkdir(parents=True, exist_ok=True)
            levels = args.pyvoip_levels or args.levels
            try:
                rows = run_target(pyv, levels, args.calls_per_level, args.ramp, work, keep)
            finally:
                pyv.close()
            tables.append(("pyVoIP 1.6.8 baseline, SIPp uac_pcap -> kamailio -> pyVoIP", rows))
    for title, rows in tables:
        print_table(title, rows)
        all_results[title] = [
            {**asdict(r), "void": r.void, "collapse_reason": r.collapse_reason} for r in rows
        ]
    if args.json is not None:
        args.json.write_text(json.dumps(all_results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
