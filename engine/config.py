"""Engine configuration: defaults < environment < command line, in one place.

Each field says what it is for. ``EngineConfig.from_env`` reads ``CALLCORE_*``
variables over the defaults; the CLI then overrides what it was given.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from recordings.retention import RetentionError, parse_retention

DEFAULT_SOUNDS = Path("/usr/share/asterisk/sounds/en")
TRANSCRIBE_BACKENDS = ("default", "vosk")  # recordings.stt.BACKENDS (not imported: keeps it light)


def parse_hostport(text: str, *, what: str) -> tuple[str, int]:
    """``"127.0.0.1:5060"`` -> ``("127.0.0.1", 5060)``, with an error naming ``what``."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{what}: expected HOST:PORT (e.g. 127.0.0.1:5060), got {text!r}")
    return host.strip("[]"), int(port)


def parse_range(text: str, *, what: str) -> tuple[int, int]:
    """``"20000-30000"`` -> ``(20000, 30000)``, with an error naming ``what``."""
    low, sep, high = text.partition("-")
    if not sep or not low.isdigit() or not high.isdigit() or int(low) >= int(high):
        raise ValueError(f"{what}: expected LOW-HIGH (e.g. 20000-30000), got {text!r}")
    return int(low), int(high)


@dataclass(frozen=True)
class EngineConfig:
    """Everything the composition root needs to start an engine."""

    sip_host: str = "127.0.0.1"
    """Address the SIP UDP and TCP listeners bind to (and advertise in Contact/SDP)."""
    sip_port: int = 5060
    """SIP port (UDP and TCP); 0 picks a free one (tests)."""
    http_host: str = "127.0.0.1"
    """Address of the HTTP API (/health, /metrics)."""
    http_port: int = 8080
    """HTTP port; 0 picks a free one."""
    rtp_low: int = 20000
    """First port of the RTP range (even ports carry RTP, odd RTCP)."""
    rtp_high: int = 30000
    """End of the RTP range (exclusive)."""
    data_dir: Path = Path("var")
    """Where captures, recordings, the database and caches live."""
    flows_dir: Path = Path("flows")
    """Folder of the YAML flows and their prompts."""
    sounds_dirs: tuple[Path, ...] = field(default_factory=lambda: (DEFAULT_SOUNDS,))
    """Where ``sound:NAME`` prompts are looked up (after ``flows/prompts``)."""
    ring_seconds: float = 0.0
    """How long to send 180 Ringing before answering (0 answers at once)."""
    codecs: tuple[str, ...] = ("PCMU", "PCMA")
    """Codecs we accept, in no particular order (the offerer's order wins)."""
    jitter_ms: int = 60
    """Receive jitter buffer depth."""
    capture: bool = True
    """Record every answered call: a stereo WAV (left caller, right what the caller heard)
    in ``data_dir/recordings/YYYY/MM/DD/`` and a row in ``data_dir/callcore.db``."""
    region: str = "US"
    """Where phone numbers written without ``+`` are read (ISO 3166 code: US, GB, JP ...),
    for the customer history's E.164 numbers."""
    retention: str = ""
    """Retention override: ``DEFAULT; QUEUE=DAYS; ...`` (0: for ever), e.g. ``365; billing=90``.
    The policy is written in ``flows/queues.yaml`` (``retention: {days: N}`` per queue and
    under ``defaults:``); what this gives replaces the file's default and those queues.
    Recordings under legal hold are kept whatever either says."""
    retention_every: float = 3600.0
    """Seconds between retention passes (the first runs at start-up)."""
    transcribe: bool = True
    """Queue each finished recording for the transcription workers (``ivr transcribe``)."""
    transcribe_workers: int = 1
    """Transcription worker processes the engine starts, restarts when they die and stops
    with it (niced, one model each); 0: none (run ``ivr transcribe-workers`` elsewhere)."""
    transcribe_backend: str = "default"
    """Speech-to-text of those workers: ``default`` (faster-whisper, the packaged Whisper
    tiny.en) or ``vosk``."""
    transcribe_model: str = ""
    """Model folder of that backend (empty: the packaged Whisper model, or
    ``CALLCORE_VOSK_MODEL`` / ``CALLCORE_WHISPER_MODEL``)."""
    transcribe_threads: int = 1
    """Model threads per worker (one per worker keeps N workers on N cores)."""
    transcribe_nice: int = 10
    """Niceness added to each worker, so the calls' media keeps the CPU (0-19)."""
    max_calls: int = 2000
    """Calls beyond this are refused with 503 and Retry-After."""
    shutdown_grace: float = 3.0
    """Seconds to wait for BYE answers on shutdown, and for the transcription workers to
    finish their job in hand (then they are stopped and the job waits for the next start)."""
    loop: str = "uvloop"
    """Event loop: ``uvloop`` (default, measured faster on the media path) or ``asyncio``."""
    realtime: int = 0
    """Real-time priority (``SCHED_RR``, 1-99) of the event loop thread, which carries the
    media clock, as a PBX runs its media (``asterisk -p``); 0: normal scheduling. Needs root
    or CAP_SYS_NICE; threads and processes started later run normally (engine.realtime)."""

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> EngineConfig:
        """Defaults overridden by ``CALLCORE_<FIELD>`` environment variables."""
        env = dict(os.environ if env is None else env)
        cfg = cls()
        changes: dict[str, object] = {}
        for f in fields(cls):
            raw = env.get(f"CALLCORE_{f.name.upper()}")
            if raw is None:
                continue
            current = getattr(cfg, f.name)
            try:
                if isinstance(current, bool):
                    changes[f.name] = raw.lower() in ("1", "true", "yes", "on")
                elif isinstance(current, int):
                    changes[f.name] = int(raw)
                elif isinstance(current, float):
                    changes[f.name] = float(raw)
                elif isinstance(current, Path):
                    changes[f.name] = Path(raw)
                elif isinstance(current, tuple):
                    items = [x for x in raw.split(",") if x]
                    is_paths = current and isinstance(current[0], Path)
                    changes[f.name] = tuple(Path(x) for x in items) if is_paths else tuple(items)
                else:
                    changes[f.name] = raw
            except ValueError as exc:
                raise ValueError(f"CALLCORE_{f.name.upper()}={raw!r}: {exc}") from None
        result = replace(cfg, **changes)  # type: ignore[arg-type]
        if result.loop not in ("uvloop", "asyncio"):
            raise ValueError(f"CALLCORE_LOOP={result.loop!r}: use uvloop or asyncio")
        if not 0 <= result.realtime <= 99:
            raise ValueError(
                f"CALLCORE_REALTIME={result.realtime}: use 1-99 (real-time priority) or 0 (off)"
            )
        try:
            parse_retention(result.retention)
        except RetentionError as exc:
            raise ValueError(f"CALLCORE_RETENTION={result.retention!r}: {exc}") from None
        problem = result.transcription_problem()
        if problem:
            raise ValueError(f"CALLCORE_{problem}") from None
        return result

    def transcription_problem(self) -> str | None:
        """What is wrong with the ``transcribe_*`` settings, as ``FIELD=value: fix``; None: fine."""
        if self.transcribe_workers < 0:
            return f"TRANSCRIBE_WORKERS={self.transcribe_workers}: give 0 (none) or more"
        if self.transcribe_backend not in TRANSCRIBE_BACKENDS:
            known = ", ".join(TRANSCRIBE_BACKENDS)
            return f"TRANSCRIBE_BACKEND={self.transcribe_backend!r}: use one of {known}"
        if self.transcribe_threads < 1:
            return f"TRANSCRIBE_THREADS={self.transcribe_threads}: give 1 or more"
        if not 0 <= self.transcribe_nice <= 19:
            return f"TRANSCRIBE_NICE={self.transcribe_nice}: give 0 to 19"
        return None
