"""Runners for real external peers (SIPp, baresip, kamailio, dumpcap/tshark, pyVoIP).

Every runner talks only to 127.0.0.1 on ports chosen free at run time, works in
its own temporary directory, starts its process in a new process group and
kills that group when stopped (or at interpreter exit, as a last resort).

Shared helpers for the runners live here: process-group start/stop and an
atexit safety net.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

__all__ = [
    "forget_process",
    "kill_group",
    "start_process",
    "stop_process",
    "wait_until",
]

_LIVE: dict[int, subprocess.Popen[bytes]] = {}


def _kill_all_at_exit() -> None:
    for proc in list(_LIVE.values()):
        kill_group(proc)


atexit.register(_kill_all_at_exit)


def start_process(
    argv: Sequence[str],
    *,
    cwd: Path | None = None,
    stdout: int | Path | None = None,
    stderr: int | Path | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in a new session (own process group), stdin closed.

    ``stdout``/``stderr`` may be a path (the file is created) or a
    ``subprocess`` constant. The process is remembered and killed at
    interpreter exit if nobody stopped it.
    """

    def _target(spec: int | Path | None) -> int | None:
        if isinstance(spec, Path):
            return os.open(spec, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        return spec

    out = _target(stdout)
    err = _target(stderr)
    try:
        proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            env=env,
            start_new_session=True,
        )
    finally:
        for spec, fd in ((stdout, out), (stderr, err)):
            if isinstance(spec, Path) and fd is not None:
                os.close(fd)
    _LIVE[proc.pid] = proc
    return proc


def forget_process(proc: subprocess.Popen[bytes]) -> None:
    """Drop ``proc`` from the atexit kill list (it has been reaped)."""
    _LIVE.pop(proc.pid, None)


def kill_group(proc: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
    """Send ``sig`` to the process group of ``proc`` (ignore if already gone)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)
    if sig == signal.SIGKILL:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
        forget_process(proc)


def stop_process(
    proc: subprocess.Popen[bytes],
    sig: int = signal.SIGTERM,
    grace: float = 5.0,
    *,
    group: bool = True,
) -> int | None:
    """Stop ``proc``: ``sig`` to its group (or only to it when ``group`` is false),
    wait up to ``grace`` s, then SIGKILL whatever is left of the group.

    Returns the exit code (negative for a signal), or None if it could not be reaped.
    """
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if group:
                os.killpg(proc.pid, sig)
            else:
                proc.send_signal(sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace)
    # Whatever is left in the group (children, threads' helpers) goes too.
    kill_group(proc, signal.SIGKILL)
    forget_process(proc)
    return proc.returncode


def wait_until(predicate: Callable[[], object], timeout: float, interval: float = 0.05) -> bool:
    """Poll the callable ``predicate`` until it returns truthy or ``timeout`` s pass."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
