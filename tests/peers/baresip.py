"""baresip runner: a real softphone as caller or auto-answering agent, driven over ctrl_tcp.

Usage::

    with Baresip(tone_hz=440) as caller:                 # starts, connects ctrl_tcp
        caller.dial("sip:ivr@127.0.0.1:5060")
        caller.wait_for_event(lambda e: e["type"] == "CALL_ESTABLISHED", 10)
        caller.send_dtmf("123#")                          # RFC 4733, spaced digits
        caller.hangup()
        caller.wait_for_event(lambda e: e["type"] == "CALL_CLOSED", 10)
    caller.sent_wav, caller.received_wav                  # sndfile dumps of the call

    agent = Baresip(auto_answer=True).start()             # answers sip:agent@127.0.0.1:PORT
    ... agent.sip_uri ...
    agent.stop()

    agent = Baresip(auto_answer=True, registrar_port=kam.port).start()
    agent.wait_registered()                               # now reachable as sip:agent@kamailio

Config comes from /work/shared/peers/baresip-config.template and
baresip-accounts.template (placeholders SIP_PORT, PROMPT_WAV_8K_S16_MONO,
RTP_FIRST, RTP_LAST, CTRL_PORT, RECORD_DIR, REGISTRAR_PORT). Without a
registrar the account gets ``regint=0`` (no REGISTER); with ``registrar_port``
it registers there every 60 s. ``auto_answer=False`` switches the account to
``answermode=manual``.

Facts found by running baresip 1.0.0 (Debian baresip-core) here:

* ``sndfile`` writes two WAVs per call in ``RECORD_DIR``:
  ``dump-<time>-enc.wav`` is what baresip SENDS (its aufile source, before
  encoding) and ``dump-<time>-dec.wav`` is what it RECEIVES (decoded). This
  was established with two baresips playing different tones at each other.
* ``sndcode=X`` sends RFC 4733 telephone-event (payload type 101, marker on
  the first packet) when the peer's SDP has telephone-event; one digit per
  command. A digit is 9 updates every 20 ms (duration up to 1440 = 180 ms) plus
  3 end packets, interleaved with the audio packets: ~240 ms on the wire.
  Digits given back-to-back are queued by baresip and never overlap (checked
  with "45" sent without a gap: the second starts after the first's end
  packets). The receiving baresip reports CALL_DTMF_START (param = digit) and
  CALL_DTMF_END events.
* Against a peer whose answer has no telephone-event (``sipp -sn uas``
  answers ``RTP/AVP 0``) baresip sends no DTMF at all: neither payload type
  101 nor in-band tones.
* Its own REGISTER result (``agent@127.0.0.1: {0/UDP/v4} 200 OK``) comes
  before ctrl_tcp is connected; :meth:`Baresip.wait_registered` reads the log.
* The aufile source ends the call when the WAV ends, so the source is padded
  with silence to ``duration + 30`` seconds.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from tests.peers import start_process, stop_process
from tests.peers.ports import HOST, free_port, free_rtp_range

BARESIP = "baresip"
PEERS = Path("/work/shared/peers")
CONFIG_TEMPLATE = PEERS / "baresip-config.template"
ACCOUNTS_TEMPLATE = PEERS / "baresip-accounts.template"
RATE = 8000

Event = dict[str, Any]
_REGISTERED = re.compile(r"\{\d+/UDP/v4\} 200 OK")


def write_wav(path: Path, pcm: np.ndarray, rate: int = RATE) -> None:
    """Write mono int16 ``pcm`` as a WAV file."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.asarray(pcm, dtype="<i2").tobytes())


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """Read a 16-bit WAV; returns (mono int16 samples, sample rate)."""
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2:
            raise ValueError(f"{path}: not 16-bit")
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        if w.getnchannels() > 1:
            data = data.reshape(-1, w.getnchannels())[:, 0]
        return data.copy(), w.getframerate()


def tone(freq: float, seconds: float, level: float = 0.3, rate: int = RATE) -> np.ndarray:
    """A sine tone as int16 samples."""
    t = np.arange(int(seconds * rate)) / rate
    return (np.sin(2 * np.pi * freq * t) * level * 32767).astype(np.int16)


def dominant_frequency(pcm: np.ndarray, rate: int = RATE) -> float:
    """Frequency (Hz) of the FFT peak of ``pcm`` (0.0 for silence)."""
    x = pcm.astype(np.float64)
    if len(x) == 0 or not np.any(x):
        return 0.0
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    spec[0] = 0.0
    return float(np.argmax(spec) * rate / len(x))


def prepare_source(
    dst: Path, seconds: float, src: Path | None = None, tone_hz: float | None = None
) -> Path:
    """Write baresip's aufile source: ``src`` (converted to 8 kHz s16 mono if needed)
    or a tone, padded with silence to ``seconds``."""
    if src is not None:
        try:
            pcm, rate = read_wav(src)
        except (ValueError, wave.Error):
            rate = 0
            pcm = np.zeros(0, dtype=np.int16)
        if rate != RATE:
            conv = dst.with_suffix(".conv.wav")
            subprocess.run(
                [
                    "sox",
                    str(src),
                    "-r",
                    str(RATE),
                    "-c",
                    "1",
                    "-b",
                    "16",
                    "-e",
                    "signed",
                    str(conv),
                ],
                check=True,
                capture_output=True,
                timeout=60,
            )
            pcm, rate = read_wav(conv)
    elif tone_hz is not None:
        pcm = tone(tone_hz, seconds)
    else:
        pcm = np.zeros(0, dtype=np.int16)
    total = int(seconds * RATE)
    if len(pcm) < total:
        pcm = np.concatenate([pcm, np.zeros(total - len(pcm), dtype=np.int16)])
    write_wav(dst, pcm)
    return dst


class CtrlClient:
    """ctrl_tcp client: netstring-framed JSON commands, responses and events."""

    def __init__(self, port: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        last: OSError | None = None
        while True:
            try:
                self.sock = socket.create_connection((HOST, port), timeout=1.0)
                break
            except OSError as exc:
                last = exc
                if time.monotonic() > deadline:
                    raise RuntimeError(f"ctrl_tcp on port {port} not reachable: {last}") from exc
                time.sleep(0.1)
        self.sock.settimeout(0.2)
        self.events: list[Event] = []
        self.responses: dict[str, Event] = {}
        self._cond = threading.Condition()
        self._closed = False
        self._token = 0
        self._reader = threading.Thread(target=self._read_loop, name="baresip-ctrl", daemon=True)
        self._reader.start()

    def _read_loop(self) -> None:
        buf = b""
        while not self._closed:
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            if not data:
                break
            buf += data
            while True:
                head, sep, rest = buf.partition(b":")
                if not sep or not head.isdigit():
                    break
                n = int(head)
                if len(rest) < n + 1:
                    break
                payload, buf = rest[:n], rest[n + 1 :]
                try:
                    msg = json.loads(payload)
                except ValueError:
                    continue
                with self._cond:
                    if msg.get("response"):
                        self.responses[str(msg.get("token", ""))] = msg
                    elif msg.get("event"):
                        self.events.append(msg)
                    self._cond.notify_all()
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def command(self, command: str, params: str = "", timeout: float = 5.0) -> Event:
        """Send one command and wait for its response (``{"ok": bool, "data": str}``)."""
        with self._cond:
            self._token += 1
            token = f"t{self._token}"
        msg = json.dumps({"command": command, "params": params, "token": token}).encode()
        self.sock.sendall(str(len(msg)).encode() + b":" + msg + b",")
        deadline = time.monotonic() + timeout
        with self._cond:
            while token not in self.responses:
                left = deadline - time.monotonic()
                if left <= 0 or self._closed:
                    raise TimeoutError(f"no response to {command}={params}")
                self._cond.wait(left)
            return self.responses.pop(token)

    def wait_for_event(
        self, predicate: Callable[[Event], bool], timeout: float, start: int = 0
    ) -> Event:
        """First event (from index ``start``) matching ``predicate``; TimeoutError if none."""
        deadline = time.monotonic() + timeout
        with self._cond:
            i = start
            while True:
                while i < len(self.events):
                    ev = self.events[i]
                    i += 1
                    if predicate(ev):
                        return ev
                left = deadline - time.monotonic()
                if left <= 0 or self._closed:
                    types = [e.get("type") for e in self.events]
                    raise TimeoutError(f"no matching baresip event; got {types}")
                self._cond.wait(left)

    def close(self) -> None:
        """Close the connection and stop the reader thread."""
        self._closed = True
        with contextlib.suppress(OSError):
            self.sock.close()
        self._reader.join(timeout=2)


class Baresip:
    """One baresip process in its own folder, on free SIP / RTP / ctrl ports."""

    def __init__(
        self,
        *,
        auto_answer: bool = False,
        user: str = "agent",
        sip_port: int = 0,
        ctrl_port: int = 0,
        rtp_ports: int = 20,
        registrar_port: int | None = None,
        source_wav: Path | None = None,
        tone_hz: float | None = None,
        duration: float = 60.0,
        run_dir: Path | None = None,
        sip_trace: bool = False,
    ) -> None:
        self.auto_answer = auto_answer
        self.user = user
        self.sip_port = sip_port or free_port("both")
        self.ctrl_port = ctrl_port or free_port("tcp")
        self.rtp_first = free_rtp_range(rtp_ports)
        self.rtp_last = self.rtp_first + rtp_ports - 1
        self.registrar_port = registrar_port
        self.source_wav = source_wav
        self.tone_hz = tone_hz
        self.duration = duration
        self._own_dir = run_dir is None
        self.run_dir = run_dir or Path(tempfile.mkdtemp(prefix="baresip-"))
        self.record_dir = self.run_dir / "rec"
        self.log_path = self.run_dir / "baresip.log"
        self.sip_trace = sip_trace
        self.proc: subprocess.Popen[bytes] | None = None
        self.ctrl: CtrlClient | None = None

    # -- set-up ------------------------------------------------------------------------

    @property
    def sip_uri(self) -> str:
        """The account's address as a caller would dial it directly."""
        return f"sip:{self.user}@{HOST}:{self.sip_port}"

    @property
    def argv(self) -> list[str]:
        """The baresip command line."""
        argv = [BARESIP, "-f", str(self.run_dir), "-4", "-n", HOST, "-t", f"{int(self.duration)}"]
        if self.sip_trace:
            argv.append("-s")
        return argv

    def write_config(self) -> None:
        """Render config + accounts from the shared templates into the run dir."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.record_dir.mkdir(exist_ok=True)
        source = prepare_source(
            self.run_dir / "source.wav", self.duration + 30, self.source_wav, self.tone_hz
        )
        cfg = CONFIG_TEMPLATE.read_text()
        for key, value in {
            "PROMPT_WAV_8K_S16_MONO": str(source),
            "SIP_PORT": str(self.sip_port),
            "RTP_FIRST": str(self.rtp_first),
            "RTP_LAST": str(self.rtp_last),
            "CTRL_PORT": str(self.ctrl_port),
            "RECORD_DIR": str(self.record_dir),
        }.items():
            if key not in cfg:
                raise ValueError(f"{CONFIG_TEMPLATE} lacks placeholder {key}")
            cfg = cfg.replace(key, value)
        (self.run_dir / "config").write_text(cfg)
        acc = ACCOUNTS_TEMPLATE.read_text()
        reg_port = self.registrar_port if self.registrar_port is not None else self.sip_port
        acc = acc.replace("REGISTRAR_PORT", str(reg_port)).replace(
            "sip:agent@", f"sip:{self.user}@"
        )
        if self.registrar_port is None:
            acc = acc.replace("regint=60", "regint=0")
        if not self.auto_answer:
            acc = acc.replace("answermode=auto", "answermode=manual")
        (self.run_dir / "accounts").write_text(acc)

    def log(self) -> str:
        """baresip's console output so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def start(self, timeout: float = 15.0) -> Baresip:
        """Start baresip and connect to its ctrl_tcp port; returns self."""
        if self.proc is not None:
            raise RuntimeError("baresip already started")
        self.write_config()
        self.proc = start_process(
            self.argv, cwd=self.run_dir, stdout=self.log_path, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout
        while "baresip is ready" not in self.log():
            if self.proc.poll() is not None:
                raise RuntimeError(f"baresip exited ({self.proc.returncode}): {self.log()[-800:]}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"baresip not ready within {timeout} s: {self.log()[-800:]}")
            time.sleep(0.05)
        try:
            self.ctrl = CtrlClient(self.ctrl_port, timeout=max(1.0, deadline - time.monotonic()))
        except RuntimeError:
            self.stop()
            raise
        return self

    def registered(self) -> bool:
        """True once baresip logged a 200 OK to its REGISTER.

        (The REGISTER_OK event is usually sent before the ctrl_tcp client
        connects, so the console log is what tells.)
        """
        return _REGISTERED.search(self.log()) is not None

    def wait_registered(self, timeout: float = 10.0) -> None:
        """Wait until :meth:`registered`; RuntimeError with the log tail if not."""
        deadline = time.monotonic() + timeout
        while not self.registered():
            if time.monotonic() > deadline or (
                self.proc is not None and self.proc.poll() is not None
            ):
                raise RuntimeError(f"baresip did not register: {self.log()[-600:]}")
            time.sleep(0.05)

    def stop(self) -> int | None:
        """Quit baresip (``quit`` command, then SIGTERM/SIGKILL) and close ctrl_tcp."""
        if self.ctrl is not None:
            with contextlib.suppress(OSError, TimeoutError):
                self.ctrl.command("quit", timeout=1.0)
            self.ctrl.close()
        if self.proc is None:
            return None
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=3)
        return stop_process(self.proc, signal.SIGTERM, grace=5.0)

    def cleanup(self) -> None:
        """Remove the run dir if the runner created it."""
        if self._own_dir:
            shutil.rmtree(self.run_dir, ignore_errors=True)

    def __enter__(self) -> Baresip:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- control -------------------------------------------------------------------------

    def _ctrl(self) -> CtrlClient:
        if self.ctrl is None:
            raise RuntimeError("baresip not started")
        return self.ctrl

    def command(self, command: str, params: str = "", timeout: float = 5.0) -> Event:
        """Any ctrl_tcp command; returns baresip's response object."""
        return self._ctrl().command(command, params, timeout)

    def dial(self, uri: str) -> Event:
        """Place a call to ``uri``."""
        return self.command("dial", uri)

    def answer(self) -> Event:
        """Answer the ringing call (when not in auto-answer mode)."""
        return self.command("accept")

    def hangup(self) -> Event:
        """Hang up the current call."""
        return self.command("hangup")

    def send_dtmf(self, digits: str, gap: float = 0.25) -> None:
        """Send ``digits`` one ``sndcode`` at a time, ``gap`` seconds apart.

        baresip sends each as RFC 4733 events (~240 ms on the wire) when the
        peer negotiated telephone-event and queues digits itself, so ``gap``
        only spaces the commands (0 is fine).
        """
        for i, d in enumerate(digits):
            if i:
                time.sleep(gap)
            resp = self.command("sndcode", d)
            if not resp.get("ok", False):
                raise RuntimeError(f"sndcode {d!r} refused: {resp}")

    @property
    def events(self) -> list[Event]:
        """All events received so far (dicts with ``type``, ``param``, ``id`` ...)."""
        return list(self._ctrl().events)

    def wait_for_event(
        self, predicate: Callable[[Event], bool] | str, timeout: float = 10.0, start: int = 0
    ) -> Event:
        """First event from index ``start`` matching ``predicate`` (or of that type name)."""
        if isinstance(predicate, str):
            name = predicate

            def pred(e: Event) -> bool:
                return e.get("type") == name

            return self._ctrl().wait_for_event(pred, timeout, start)
        return self._ctrl().wait_for_event(predicate, timeout, start)

    # -- recordings ------------------------------------------------------------------------

    def _dumps(self, suffix: str) -> list[Path]:
        return sorted(self.record_dir.glob(f"dump-*-{suffix}.wav"))

    @property
    def sent_wavs(self) -> list[Path]:
        """All ``-enc`` dumps: the audio baresip sent, one per call, oldest first."""
        return self._dumps("enc")

    @property
    def received_wavs(self) -> list[Path]:
        """All ``-dec`` dumps: the audio baresip received, one per call, oldest first."""
        return self._dumps("dec")

    @property
    def sent_wav(self) -> Path | None:
        """The latest call's sent-audio dump."""
        found = self.sent_wavs
        return found[-1] if found else None

    @property
    def received_wav(self) -> Path | None:
        """The latest call's received-audio dump."""
        found = self.received_wavs
        return found[-1] if found else None
