"""kamailio runner: /work/shared/peers/kamailio.cfg (registrar + stateful proxy) on a free port.

Usage::

    with Kamailio() as kam:            # starts, waits until it answers OPTIONS
        print(kam.port, kam.uri)        # 127.0.0.1:<free port>, UDP and TCP
    # stopped (SIGTERM to the group, SIGKILL after a grace period)

The shared config listens on 127.0.0.1:15060; the runner rewrites every
``127.0.0.1:15060`` to the chosen port and writes the copy into the run dir.
The command is ``kamailio -f CFG -DD -E -P PIDFILE -Y RUNDIR -m 64 -M 8``
(foreground, log to stderr, which goes to ``kamailio.log`` in the run dir).
"""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from tests.peers import start_process, stop_process
from tests.peers.ports import HOST, free_port

KAMAILIO = "kamailio"
SHARED_CFG = Path("/work/shared/peers/kamailio.cfg")
TEMPLATE_ADDR = "127.0.0.1:15060"


def render_config(template: str, port: int) -> str:
    """The shared kamailio.cfg with its listen/alias address moved to ``port``."""
    if TEMPLATE_ADDR not in template:
        raise ValueError(f"template does not contain {TEMPLATE_ADDR}")
    return template.replace(TEMPLATE_ADDR, f"{HOST}:{port}")


def sip_options(port: int, timeout: float = 1.0, host: str = HOST, user: str = "") -> str | None:
    """Send one OPTIONS over UDP to ``host:port``; return the status line or None."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind((HOST, 0))
        sock.settimeout(timeout)
        lport = sock.getsockname()[1]
        branch = f"z9hG4bK{random.getrandbits(48):x}"
        tag = f"{random.getrandbits(32):x}"
        call_id = f"{random.getrandbits(64):x}@{HOST}"
        target = f"sip:{user + '@' if user else ''}{host}:{port}"
        msg = (
            f"OPTIONS {target} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {HOST}:{lport};branch={branch};rport\r\n"
            f"Max-Forwards: 70\r\n"
            f"From: <sip:probe@{HOST}:{lport}>;tag={tag}\r\n"
            f"To: <{target}>\r\n"
            f"Call-ID: {call_id}\r\n"
            f"CSeq: 1 OPTIONS\r\n"
            f"Contact: <sip:probe@{HOST}:{lport}>\r\n"
            f"Accept: application/sdp\r\n"
            f"Content-Length: 0\r\n\r\n"
        )
        sock.sendto(msg.encode(), (host, port))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                data = sock.recv(65535)
            except (TimeoutError, ConnectionRefusedError):
                return None
            line = data.split(b"\r\n", 1)[0].decode(errors="replace")
            if call_id.encode() in data and not line.startswith("SIP/2.0 1"):
                return line
        return None
    finally:
        sock.close()


class Kamailio:
    """A kamailio process on ``127.0.0.1:port`` (UDP and TCP)."""

    def __init__(
        self,
        port: int = 0,
        run_dir: Path | None = None,
        template: Path = SHARED_CFG,
        shm_mb: int = 64,
        pkg_mb: int = 8,
    ) -> None:
        self.port = port or free_port("both")
        self._own_dir = run_dir is None
        self.run_dir = run_dir or Path(tempfile.mkdtemp(prefix="kamailio-"))
        self.template = template
        self.shm_mb = shm_mb
        self.pkg_mb = pkg_mb
        self.cfg_path = self.run_dir / "kamailio.cfg"
        self.pid_file = self.run_dir / "kamailio.pid"
        self.log_path = self.run_dir / "kamailio.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def uri(self) -> str:
        """``127.0.0.1:port``."""
        return f"{HOST}:{self.port}"

    @property
    def command(self) -> list[str]:
        """The kamailio argv."""
        return [
            KAMAILIO,
            "-f",
            str(self.cfg_path),
            "-DD",
            "-E",
            "-P",
            str(self.pid_file),
            "-Y",
            str(self.run_dir),
            "-m",
            str(self.shm_mb),
            "-M",
            str(self.pkg_mb),
        ]

    def log(self) -> str:
        """Everything kamailio logged so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def start(self, timeout: float = 20.0) -> None:
        """Write the config, start kamailio, wait until it answers OPTIONS with 200."""
        if self.proc is not None:
            raise RuntimeError("kamailio already started")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.cfg_path.write_text(render_config(self.template.read_text(), self.port))
        check = subprocess.run(
            [KAMAILIO, "-c", "-f", str(self.cfg_path)],
            capture_output=True,
            timeout=30,
            check=False,
        )
        if check.returncode != 0:
            raise RuntimeError(f"kamailio config check failed: {check.stderr.decode()[-800:]}")
        self.proc = start_process(
            self.command, cwd=self.run_dir, stdout=self.log_path, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"kamailio exited ({self.proc.returncode}): {self.log()[-800:]}")
            status = sip_options(self.port, timeout=0.5)
            if status and status.startswith("SIP/2.0 200"):
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(
            f"kamailio did not answer OPTIONS within {timeout} s: {self.log()[-800:]}"
        )

    def running(self) -> bool:
        """True while the main process is alive."""
        return self.proc is not None and self.proc.poll() is None

    def child_pids(self) -> list[int]:
        """PIDs of the processes in kamailio's process group (main + children)."""
        if self.proc is None:
            return []
        pids: list[int] = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[2]) == self.proc.pid:  # pgrp
                pids.append(int(entry))
        return pids

    def stop(self) -> int | None:
        """SIGTERM the main process (it stops its children), SIGKILL the group after 10 s."""
        if self.proc is None:
            return None
        return stop_process(self.proc, signal.SIGTERM, grace=10.0, group=False)

    def cleanup(self) -> None:
        """Remove the run dir if the runner created it."""
        if self._own_dir:
            shutil.rmtree(self.run_dir, ignore_errors=True)

    def __enter__(self) -> Kamailio:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _main() -> None:
    with Kamailio() as kam:
        print("kamailio on", kam.uri, "pids", kam.child_pids())
        print("OPTIONS ->", sip_options(kam.port))
    print(re.sub(r"\n+", "\n", kam.log())[-400:])


if __name__ == "__main__":
    _main()
