"""SIPp runner: built-in or file scenarios, free ports, parsed statistics.

Usage::

    uas = Sipp("uas", rtp_echo=True, calls=None).start()      # background peer
    res = Sipp("uac_pcap", remote=f"127.0.0.1:{uas.port}", calls=2, rate=2).run()
    assert res.ok and res.stats.successful == 2
    uas.stop()

    res = await Sipp("uac", remote="127.0.0.1:5060").run_async()

Every run happens in its own directory (a temp dir unless ``run_dir`` is
given) holding a ``pcap`` symlink to /usr/share/sip-tester (the built-in
``uac_pcap`` looks for ``pcap/`` in the current directory), a copy of the
scenario file if one is used, the statistics CSV (``-trace_stat -fd 1``),
the error log (``-trace_err``) and optionally the message trace. SIPp always
gets ``-i 127.0.0.1``, explicit ``-p``/``-mp`` ports and ``-nostdin``.

Per call SIPp's ``uac_pcap`` (and every scenario offering
``[auto_media_port]``) uses a fresh media port: ``-mp``, ``-mp + 4``,
``-mp + 8`` ... (one step of 4 per call, never reused within a run), so a run
of ``calls`` calls needs ``4 * calls`` free ports from ``media_port``.

SIPp binds only ``-mp`` and ``-mp + 2``: it sends each call's RTP from the
call's port through a raw socket and never binds that port, so it is free
for anyone to bind while the call runs, an engine's own RTP range included.
Whoever binds it gets the RTP the engine sends to that call; when that is
the engine itself, the new call on that port heard the other call's stream
before its own caller (in the hot-reload test, up to a tenth of the callers'
digits were lost). When the runner picks ``media_port`` itself it therefore
keeps those ports bound (see :func:`~tests.peers.ports.reserve_rtp_range`)
until SIPp ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from tests.peers import forget_process, kill_group, start_process
from tests.peers.ports import HOST, free_port, reserve_rtp_range

SIPP = "sipp"
SIPP_PCAP_DIR = Path("/usr/share/sip-tester")
BUILTIN_SCENARIOS = frozenset(
    {
        "uac",
        "uas",
        "uac_pcap",
        "regexp",
        "branchc",
        "branchs",
        "3pcc-C-A",
        "3pcc-C-B",
        "3pcc-A",
        "3pcc-B",
    }
)
MEDIA_PORT_STEP = 4
"""SIPp advances its media port by this much for every new call."""
MEDIA_PORT_WRAP = 10_000
"""SIPp's ``[auto_media_port]`` offset wraps at this many ports (2,500 calls)."""

Transport = Literal["u1", "un", "t1", "tn"]


def parse_sipp_duration(text: str) -> float:
    """Seconds from a SIPp duration field ``HH:MM:SS:uuuuuu`` (or ``HH:MM:SS``)."""
    parts = text.strip().split(":")
    if len(parts) < 3:
        raise ValueError(f"not a SIPp duration: {text!r}")
    hours, minutes, seconds = (int(p) for p in parts[:3])
    micros = int(parts[3]) if len(parts) > 3 and parts[3] else 0
    return hours * 3600 + minutes * 60 + seconds + micros / 1_000_000


@dataclass(frozen=True)
class SippStats:
    """The rows of a ``-trace_stat`` CSV (one per ``-fd`` period, the last is final)."""

    rows: tuple[dict[str, str], ...] = ()

    @classmethod
    def from_csv(cls, path: Path) -> SippStats:
        """Parse a SIPp statistics CSV (``;`` separated); a missing/empty file gives no rows."""
        if not path.exists():
            return cls(())
        with path.open(newline="", errors="replace") as fh:
            reader = csv.reader(fh, delimiter=";")
            try:
                header = next(reader)
            except StopIteration:
                return cls(())
            rows = tuple(
                dict(zip(header, row, strict=False))
                for row in reader
                if len(row) >= len(header) - 1
            )
        return cls(rows)

    @property
    def final(self) -> dict[str, str]:
        """The last row (cumulative counters at the end of the run); {} if none."""
        return self.rows[-1] if self.rows else {}

    def counter(self, name: str) -> int:
        """Integer value of column ``name`` in the final row (0 when absent)."""
        value = self.final.get(name, "")
        try:
            return int(float(value))
        except ValueError:
            return 0

    def duration(self, name: str) -> float | None:
        """Seconds in duration column ``name`` of the final row (None when absent)."""
        value = self.final.get(name)
        if not value:
            return None
        try:
            return parse_sipp_duration(value)
        except ValueError:
            return None

    @property
    def successful(self) -> int:
        """SuccessfulCall(C)."""
        return self.counter("SuccessfulCall(C)")

    @property
    def failed(self) -> int:
        """FailedCall(C)."""
        return self.counter("FailedCall(C)")

    @property
    def retransmissions(self) -> int:
        """Retransmissions(C)."""
        return self.counter("Retransmissions(C)")

    @property
    def watchdog_major(self) -> int:
        """WatchdogMajor(C): > 0 means SIPp itself was overloaded (the run is void)."""
        return self.counter("WatchdogMajor(C)")

    @property
    def watchdog_minor(self) -> int:
        """WatchdogMinor(C)."""
        return self.counter("WatchdogMinor(C)")

    @property
    def created(self) -> int:
        """TotalCallCreated."""
        return self.counter("TotalCallCreated")

    @property
    def current_calls(self) -> int:
        """CurrentCall in the final row."""
        return self.counter("CurrentCall")

    @property
    def peak_current_calls(self) -> int:
        """Highest CurrentCall over all rows (sampled every ``-fd`` period)."""
        best = 0
        for row in self.rows:
            with contextlib.suppress(ValueError):
                best = max(best, int(row.get("CurrentCall", "0") or 0))
        return best

    @property
    def response_time1(self) -> float | None:
        """ResponseTime1(C) in seconds (cumulative mean)."""
        return self.duration("ResponseTime1(C)")

    @property
    def call_length(self) -> float | None:
        """CallLength(C) in seconds (cumulative mean)."""
        return self.duration("CallLength(C)")


@dataclass
class SippResult:
    """What a finished SIPp run left behind."""

    argv: list[str]
    run_dir: Path
    returncode: int | None
    timed_out: bool
    stats: SippStats
    errors: str
    message_trace: Path | None
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        """Exit code 0 (every call succeeded) and not killed on timeout."""
        return self.returncode == 0 and not self.timed_out

    def summary(self) -> str:
        """One line for logs and assertion messages."""
        s = self.stats
        return (
            f"sipp rc={self.returncode} timed_out={self.timed_out} "
            f"ok={s.successful} failed={s.failed} created={s.created} "
            f"retrans={s.retransmissions} watchdog_major={s.watchdog_major} "
            f"peak_calls={s.peak_current_calls} errors={self.errors[-300:]!r} "
            f"stderr={self.stderr[-300:]!r} dir={self.run_dir}"
        )


@dataclass
class Sipp:
    """One SIPp invocation. Ports left at 0 are chosen free at :meth:`prepare` time.

    ``scenario`` is a built-in name (``uac``, ``uas``, ``uac_pcap`` ...) or the
    path of a scenario XML (copied into the run dir; files it references
    relative to itself must be listed in ``support_files``).
    ``timeout`` is SIPp's own ``-timeout`` (seconds); ``wall_timeout`` is when
    the runner kills the process group (default: ``timeout + 15`` or 120 s).
    """

    scenario: str | Path
    remote: str | None = None
    port: int = 0
    media_port: int = 0
    calls: int | None = 1
    rate: float | None = None
    rate_period_ms: int | None = None
    limit: int | None = None
    pause_ms: int | None = None
    timeout: float | None = None
    wall_timeout: float | None = None
    transport: Transport = "u1"
    service: str | None = None
    rtp_echo: bool = False
    trace_msg: bool = False
    stat_period_s: int = 1
    extra_args: Sequence[str] = ()
    support_files: Sequence[Path] = ()
    run_dir: Path | None = None
    media_ports_needed: int | None = None
    _argv: list[str] | None = field(default=None, init=False, repr=False)
    _own_dir: bool = field(default=False, init=False, repr=False)
    _held: list[socket.socket] = field(default_factory=list, init=False, repr=False)

    @property
    def is_builtin(self) -> bool:
        """True when ``scenario`` names a built-in scenario (``-sn``)."""
        return isinstance(self.scenario, str) and self.scenario in BUILTIN_SCENARIOS

    @property
    def name(self) -> str:
        """Short scenario name used for file names."""
        if self.is_builtin:
            return str(self.scenario)
        return Path(self.scenario).stem

    @property
    def stat_file(self) -> Path:
        """Path of the statistics CSV."""
        assert self.run_dir is not None, "call prepare() first"
        return self.run_dir / f"{self.name}_stats.csv"

    @property
    def error_file(self) -> Path:
        """Path of the unexpected-messages log."""
        assert self.run_dir is not None, "call prepare() first"
        return self.run_dir / f"{self.name}_errors.log"

    @property
    def message_file(self) -> Path:
        """Path of the message trace (written only with ``trace_msg``)."""
        assert self.run_dir is not None, "call prepare() first"
        return self.run_dir / f"{self.name}_messages.log"

    def prepare(self) -> list[str]:
        """Create the run dir, pick free ports, and return the SIPp argv."""
        if self._argv is not None:
            return self._argv
        if self.run_dir is None:
            self.run_dir = Path(tempfile.mkdtemp(prefix=f"sipp-{self.name}-"))
            self._own_dir = True
        self.run_dir.mkdir(parents=True, exist_ok=True)
        link = self.run_dir / "pcap"
        if not link.exists():
            link.symlink_to(SIPP_PCAP_DIR)
        if self.port == 0:
            self.port = free_port("both" if self.transport.startswith("t") else "udp")
        if self.media_port == 0:
            need = self.media_ports_needed
            if need is None:
                need = MEDIA_PORT_STEP * max(1, self.calls or 1) + 4
            self.media_port, socks = reserve_rtp_range(need)
            keep = self._unbound_media_ports()
            for port, sock in enumerate(socks, start=self.media_port):
                if port in keep:
                    self._held.append(sock)
                else:
                    sock.close()
        argv = [SIPP]
        if self.remote:
            argv.append(self.remote)
        if self.is_builtin:
            argv += ["-sn", str(self.scenario)]
        else:
            src = Path(self.scenario)
            dst = self.run_dir / src.name
            shutil.copyfile(src, dst)
            for extra in self.support_files:
                shutil.copyfile(extra, self.run_dir / Path(extra).name)
            argv += ["-sf", str(dst)]
        argv += ["-i", HOST, "-p", str(self.port), "-mp", str(self.media_port), "-nostdin"]
        argv += ["-t", self.transport]
        if self.calls is not None:
            argv += ["-m", str(self.calls)]
        if self.rate is not None:
            argv += ["-r", f"{self.rate:g}"]
        if self.rate_period_ms is not None:
            argv += ["-rp", str(self.rate_period_ms)]
        if self.limit is not None:
            argv += ["-l", str(self.limit)]
        if self.pause_ms is not None:
            argv += ["-d", str(self.pause_ms)]
        if self.timeout is not None:
            argv += ["-timeout", f"{self.timeout:g}s"]
        if self.service is not None:
            argv += ["-s", self.service]
        if self.rtp_echo:
            argv.append("-rtp_echo")
        argv += ["-trace_stat", "-stf", str(self.stat_file), "-fd", str(self.stat_period_s)]
        argv += ["-trace_err", "-error_file", str(self.error_file)]
        if self.trace_msg:
            argv += ["-trace_msg", "-message_file", str(self.message_file)]
        argv += list(self.extra_args)
        self._argv = argv
        return argv

    def _unbound_media_ports(self) -> set[int]:
        """The calls' RTP ports that SIPp sends from but does not bind (all
        but ``-mp`` itself; see the module docstring). A RTCP port (odd) is
        never an RTP port of an engine, which takes even ones."""
        if self.calls is None:
            return set()
        calls = min(self.calls, MEDIA_PORT_WRAP // MEDIA_PORT_STEP)
        return {self.media_port + MEDIA_PORT_STEP * k for k in range(1, calls)}

    def release_media_ports(self) -> None:
        """Close the sockets holding the calls' media ports (SIPp has ended)."""
        for sock in self._held:
            sock.close()
        self._held.clear()

    @property
    def command(self) -> list[str]:
        """The SIPp argv (prepares the run dir and ports on first use)."""
        return self.prepare()

    def effective_wall_timeout(self) -> float:
        """Seconds after which the runner kills SIPp."""
        if self.wall_timeout is not None:
            return self.wall_timeout
        if self.timeout is not None:
            return self.timeout + 15
        return 120.0

    def result(
        self, returncode: int | None, timed_out: bool, stdout: str, stderr: str
    ) -> SippResult:
        """Collect the files of a finished run into a :class:`SippResult`."""
        assert self.run_dir is not None
        errors = ""
        if self.error_file.exists():
            errors = self.error_file.read_text(errors="replace")
        return SippResult(
            argv=self.prepare(),
            run_dir=self.run_dir,
            returncode=returncode,
            timed_out=timed_out,
            stats=SippStats.from_csv(self.stat_file),
            errors=errors,
            message_trace=self.message_file if self.message_file.exists() else None,
            stdout=stdout,
            stderr=stderr,
        )

    # -- synchronous -----------------------------------------------------------------

    def start(self) -> SippProcess:
        """Start SIPp in the background (own process group)."""
        argv = self.prepare()
        assert self.run_dir is not None
        proc = start_process(
            argv,
            cwd=self.run_dir,
            stdout=self.run_dir / "stdout.txt",
            stderr=self.run_dir / "stderr.txt",
        )
        return SippProcess(self, proc)

    def run(self) -> SippResult:
        """Run to completion (killed after :meth:`effective_wall_timeout`)."""
        return self.start().wait(self.effective_wall_timeout())

    # -- asyncio ------------------------------------------------------------------------

    async def start_async(self) -> AsyncSippProcess:
        """Start SIPp as an asyncio subprocess (own process group)."""
        argv = self.prepare()
        assert self.run_dir is not None
        with (
            (self.run_dir / "stdout.txt").open("wb") as out,
            (self.run_dir / "stderr.txt").open("wb") as err,
        ):
            proc = await asyncio.create_subprocess_exec(
                *argv,
                cwd=self.run_dir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
        return AsyncSippProcess(self, proc)

    async def run_async(self) -> SippResult:
        """Run to completion without blocking the event loop."""
        handle = await self.start_async()
        return await handle.wait(self.effective_wall_timeout())

    def cleanup(self) -> None:
        """Release the held media ports; remove the run dir if the runner created it."""
        self.release_media_ports()
        if self._own_dir and self.run_dir is not None:
            shutil.rmtree(self.run_dir, ignore_errors=True)


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


class SippProcess:
    """A running SIPp (from :meth:`Sipp.start`)."""

    def __init__(self, sipp: Sipp, proc: subprocess.Popen[bytes]) -> None:
        self.sipp = sipp
        self.proc = proc
        self.result: SippResult | None = None

    @property
    def port(self) -> int:
        """SIPp's SIP port."""
        return self.sipp.port

    @property
    def media_port(self) -> int:
        """SIPp's (first) media port."""
        return self.sipp.media_port

    @property
    def pid(self) -> int:
        """Process id (also the process group id)."""
        return self.proc.pid

    def running(self) -> bool:
        """True while the process has not exited."""
        return self.proc.poll() is None

    def _finish(self, timed_out: bool) -> SippResult:
        assert self.sipp.run_dir is not None
        forget_process(self.proc)
        self.sipp.release_media_ports()
        self.result = self.sipp.result(
            self.proc.returncode,
            timed_out,
            _read(self.sipp.run_dir / "stdout.txt"),
            _read(self.sipp.run_dir / "stderr.txt"),
        )
        return self.result

    def wait(self, timeout: float) -> SippResult:
        """Wait up to ``timeout`` s for SIPp to end; kill its group if it does not."""
        if self.result is not None:
            return self.result
        timed_out = False
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            self._quit()
        kill_group(self.proc)
        return self._finish(timed_out)

    def _quit(self) -> None:
        # SIGUSR1 makes SIPp quit like the 'q' key (stats are flushed).
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGUSR1)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            kill_group(self.proc)

    def stop(self) -> SippResult:
        """Stop a background SIPp (graceful quit, then SIGKILL) and collect its result."""
        if self.result is not None:
            return self.result
        if self.proc.poll() is None:
            self._quit()
        kill_group(self.proc)
        return self._finish(False)

    def __enter__(self) -> SippProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class AsyncSippProcess:
    """A running SIPp started with :meth:`Sipp.start_async`."""

    def __init__(self, sipp: Sipp, proc: asyncio.subprocess.Process) -> None:
        self.sipp = sipp
        self.proc = proc
        self.result: SippResult | None = None

    @property
    def port(self) -> int:
        """SIPp's SIP port."""
        return self.sipp.port

    @property
    def media_port(self) -> int:
        """SIPp's (first) media port."""
        return self.sipp.media_port

    def _killpg(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)

    def _finish(self, timed_out: bool) -> SippResult:
        assert self.sipp.run_dir is not None
        self.sipp.release_media_ports()
        self.result = self.sipp.result(
            self.proc.returncode,
            timed_out,
            _read(self.sipp.run_dir / "stdout.txt"),
            _read(self.sipp.run_dir / "stderr.txt"),
        )
        return self.result

    async def _quit(self) -> None:
        self._killpg(signal.SIGUSR1)
        try:
            await asyncio.wait_for(self.proc.wait(), 5)
        except TimeoutError:
            self._killpg(signal.SIGKILL)
            await asyncio.wait_for(self.proc.wait(), 5)

    async def wait(self, timeout: float) -> SippResult:
        """Wait up to ``timeout`` s; on expiry quit SIPp (then SIGKILL its group)."""
        if self.result is not None:
            return self.result
        timed_out = False
        try:
            await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            timed_out = True
            await self._quit()
        self._killpg(signal.SIGKILL)
        return self._finish(timed_out)

    async def stop(self) -> SippResult:
        """Stop a background SIPp and collect its result."""
        if self.result is not None:
            return self.result
        if self.proc.returncode is None:
            await self._quit()
        self._killpg(signal.SIGKILL)
        return self._finish(False)


def wait_for_stat(sipp: Sipp, predicate: Callable[[SippStats], bool], timeout: float) -> SippStats:
    """Poll the stats CSV of a running SIPp until ``predicate(stats)`` holds or timeout."""
    deadline = time.monotonic() + timeout
    stats = SippStats.from_csv(sipp.stat_file)
    while not predicate(stats) and time.monotonic() < deadline:
        time.sleep(0.2)
        stats = SippStats.from_csv(sipp.stat_file)
    return stats
