"""A pyVoIP 1.6.8 answering phone for interop tests and the load baseline (GPL-3, test-only).

Run as its own process (never imported by the engine)::

    python -m tests.peers.pyvoip_answer --registrar 127.0.0.1:KAM --user ivr \\
        --sip-port P --rtp-low L --rtp-high H --stats stats.json [--prompt WAV]

It REGISTERs ``sip:USER@127.0.0.1`` at the registrar (kamailio), answers every
call (pyVoIP rings one second first), plays the prompt and counts the RFC 4733
digits it receives. The prompt is converted to what pyVoIP's ``write_audio``
expects: raw 8-bit unsigned linear PCM, 8 kHz mono (it encodes that to G.711
itself). The stats JSON (calls offered/answered/ended, digits, peak concurrent
calls, thread count) is rewritten every second and on SIGTERM/SIGINT, after
which the phone hangs up, de-registers and the process exits.

A ``ready`` key is true once the registration succeeded; callers wait for it.

Reaching it: SIPp -> kamailio -> registered pyVoIP user, e.g.
``sipp -sn uac_pcap 127.0.0.1:KAM -s ivr``. kamailio's location lookup sends
the INVITE to pyVoIP; the shared kamailio.cfg routes SIPp's in-dialog ACK/BYE
(no Route header) by the registered contact too.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_PROMPT = Path("/usr/share/asterisk/sounds/en/demo-congrats.wav")
MAX_CALL_SECONDS = 600.0


def prompt_u8(path: Path) -> bytes:
    """Load a 16-bit mono WAV (8 kHz) as raw 8-bit unsigned PCM, pyVoIP's audio format."""
    import wave

    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2 or w.getframerate() != 8000:
            raise ValueError(f"{path}: need 16-bit 8 kHz audio")
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        if w.getnchannels() > 1:
            pcm = pcm.reshape(-1, w.getnchannels())[:, 0]
    return ((pcm.astype(np.int32) >> 8) + 128).astype(np.uint8).tobytes()


class Stats:
    """Thread-safe counters, dumped as JSON."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.Lock()
        self.data: dict[str, Any] = {
            "ready": False,
            "pid": os.getpid(),
            "calls_offered": 0,
            "calls_answered": 0,
            "calls_ended": 0,
            "answer_errors": 0,
            "active_calls": 0,
            "peak_active_calls": 0,
            "digits_total": 0,
            "digits": {},
            "threads": 0,
            "peak_threads": 0,
            "stopped": False,
        }

    def add(self, key: str, n: int = 1) -> None:
        """Increment counter ``key``."""
        with self.lock:
            self.data[key] += n
            if key == "active_calls":
                self.data["peak_active_calls"] = max(
                    self.data["peak_active_calls"], self.data["active_calls"]
                )

    def digit(self, d: str) -> None:
        """Count one received digit."""
        with self.lock:
            self.data["digits_total"] += 1
            self.data["digits"][d] = self.data["digits"].get(d, 0) + 1

    def set(self, key: str, value: Any) -> None:
        """Set ``key``."""
        with self.lock:
            self.data[key] = value

    def write(self) -> None:
        """Atomically rewrite the JSON file."""
        with self.lock:
            n = threading.active_count()
            self.data["threads"] = n
            self.data["peak_threads"] = max(self.data["peak_threads"], n)
            text = json.dumps(self.data, indent=1, sort_keys=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(self.path)


def build_phone(args: argparse.Namespace, stats: Stats, prompt: bytes) -> Any:
    """Construct the pyVoIP phone whose calls count digits into ``stats``."""
    from pyVoIP.VoIP import CallState, VoIPCall, VoIPPhone

    class CountingCall(VoIPCall):
        """A pyVoIP call that also counts every RFC 4733 digit it decodes."""

        def dtmf_callback(self, code: str) -> None:
            stats.digit(code)
            super().dtmf_callback(code)

    class CountingPhone(VoIPPhone):
        """pyVoIP's documented extension point: _create_Call builds our call class."""

        def _create_Call(self, request: Any, sess_id: int) -> None:
            call_id = request.headers["Call-ID"]
            self.calls[call_id] = CountingCall(
                self, CallState.RINGING, request, sess_id, self.myIP, sendmode=self.recvmode
            )

    def on_call(call: Any) -> None:
        stats.add("calls_offered")
        try:
            call.answer()
        except Exception:
            stats.add("answer_errors")
            return
        stats.add("calls_answered")
        stats.add("active_calls")
        try:
            call.write_audio(prompt)
            deadline = time.monotonic() + MAX_CALL_SECONDS
            while call.state == CallState.ANSWERED and time.monotonic() < deadline:
                time.sleep(0.2)
        finally:
            stats.add("active_calls", -1)
            stats.add("calls_ended")

    host, _, port = args.registrar.rpartition(":")
    return CountingPhone(
        host,
        int(port),
        args.user,
        args.password,
        myIP="127.0.0.1",
        callCallback=on_call,
        sipPort=args.sip_port,
        rtpPortLow=args.rtp_low,
        rtpPortHigh=args.rtp_high,
    )


def main(argv: list[str] | None = None) -> int:
    """Register, answer calls until SIGTERM/SIGINT (or --max-seconds), dump stats."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--registrar", required=True, help="HOST:PORT of kamailio")
    ap.add_argument("--user", default="ivr")
    ap.add_argument("--password", default="")
    ap.add_argument("--sip-port", type=int, required=True)
    ap.add_argument("--rtp-low", type=int, required=True)
    ap.add_argument("--rtp-high", type=int, required=True)
    ap.add_argument("--prompt", type=Path, default=DEFAULT_PROMPT)
    ap.add_argument("--stats", type=Path, required=True)
    ap.add_argument("--max-seconds", type=float, default=3600.0)
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore")

    stats = Stats(args.stats)
    stop = threading.Event()

    def on_signal(_sig: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    phone = build_phone(args, stats, prompt_u8(args.prompt))
    stats.write()
    try:
        phone.start()
        stats.set("ready", True)
        stats.write()
        deadline = time.monotonic() + args.max_seconds
        while not stop.wait(1.0) and time.monotonic() < deadline:
            stats.write()
    except Exception as exc:
        stats.set("error", f"{type(exc).__name__}: {exc}")
    finally:
        # Call threads notice a BYE within their 0.2 s poll: let them count it.
        time.sleep(0.5)
        stats.set("stopped", True)
        stats.write()
        stopper = threading.Thread(target=phone.stop, daemon=True)
        stopper.start()
        stopper.join(timeout=5.0)
        stats.write()
    # pyVoIP leaves non-daemon timer threads behind; do not wait for them.
    os._exit(0)


if __name__ == "__main__":
    raise SystemExit(main())
