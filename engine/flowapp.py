"""The flow driver: runs an IVR flow on each answered call.

:class:`FlowApplication` is the engine's application coroutine when the flows
folder holds flows. For each call it takes the current flow set *once*
(``current()``; the hot-reload registry hands out snapshots), starts a
:class:`~ivr.runtime.FlowRun` for the dialed number (request-URI user) and
executes the actions it returns on the :class:`~media.call.Call`:

* Play: prompts from the :class:`~engine.flowprompts.PromptLibrary`
  (rendered ahead by :func:`~engine.flowprompts.prerender`); with barge-in a
  key stops the prompt (a key typed before it skips it), without barge-in
  keys pressed during it are discarded. A part that cannot be played is
  logged and skipped.
* CollectDigits: ``Call.get_digit`` with the first and inter-digit timeouts.
* Lookup: ``history`` through a :class:`CustomerDirectory` (run in a thread),
  ``http`` through aiohttp (200 + JSON object = found, 404 = not found,
  anything else or the timeout = error).
* Enqueue: a :class:`QueuePort`; the default :class:`NoAgentsQueue` answers
  ``no_agents`` until the ACD is wired, so flows take their overflow branch.
* Transfer: SIP REFER (``Call.transfer``); an extension becomes
  ``sip:EXT@<the address the call came from>``.
* SetRecording: a secure pause (PCI DSS) of the call's recording through the
  :class:`RecordingPort` (:class:`recordings.recorder.Recorder`); without one
  the result is not ok and the flow goes on.
* RecordVoicemail: the caller's audio (left channel of the call's capture)
  into ``voicemail_dir/<mailbox>/<call-id>.wav`` plus a ``.json`` with who,
  when and how long, until ``max_length``, the finish digit or hang-up.

Every node entered is logged (``flow.node``) and counted
(``callcore_flow_node_visits_total``); every run is counted by entry flow and
outcome (``callcore_flow_calls_total``) and kept in :attr:`recent` (served at
``GET /calls/recent``).
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import aiohttp
import numpy as np
import structlog

from engine.config import EngineConfig
from engine.flowprompts import PrerenderReport, PromptLibrary, prerender
from engine.metrics import EngineMetrics
from ivr.actions import (
    Action,
    CollectDigits,
    DigitsResult,
    Enqueue,
    Hangup,
    Lookup,
    LookupResult,
    Play,
    PlayResult,
    PromptItem,
    QueueResult,
    RecordingResult,
    RecordVoicemail,
    Result,
    SetRecording,
    Transfer,
    TransferResult,
    VoicemailResult,
)
from ivr.loader import FlowSet, flow_files
from ivr.runtime import FlowRun, FlowRuntimeError, FlowSetLike, Limits
from ivr.versions import DB_NAME
from media.call import Call, CallHungUp, CallInfo
from media.capture import CallCapture, StreamingWavWriter
from media.prompts.sounds import SoundLibrary
from media.prompts.tts import TtsRenderer
from media.sip.errors import SipParseError
from media.sip.uri import SipUri
from recordings.contacts import SqliteContacts

__all__ = [
    "CustomerDirectory",
    "FlowApplication",
    "FlowCallRecord",
    "NoAgentsQueue",
    "QueuePort",
    "RecordingPort",
    "prerender",
    "recent_calls",
    "start_flow_application",
    "transfer_uri",
    "uri_user",
]

log = structlog.get_logger("engine.flowapp")

RATE = 8000


class CustomerDirectory(Protocol):
    """Customer records by phone number, account or e-mail (blocking; run in a thread)."""

    def get(self, key: str) -> Mapping[str, Any] | None: ...


class QueuePort(Protocol):
    """The ACD as the flow driver sees it: hand over a caller, learn how it ended."""

    async def enqueue(self, call: Call, request: Enqueue) -> QueueResult: ...


class RecordingPort(Protocol):
    """The call recorder as the flow driver sees it (secure pause and resume)."""

    def pause(self, call_id: str, *, by: str, reason: str = "pci") -> Any: ...

    def resume(self, call_id: str, *, by: str) -> Any: ...


class NoAgentsQueue:
    """The queue port until the ACD is wired: no agent anywhere, at once."""

    async def enqueue(self, call: Call, request: Enqueue) -> QueueResult:
        """Always ``no_agents``, announcing nothing."""
        return QueueResult("no_agents")


@dataclass
class FlowCallRecord:
    """One finished flow run, as listed by ``GET /calls/recent``."""

    call_id: str
    flow: str
    digest: str
    caller: str
    called: str
    started: str
    ended: str = ""
    outcome: str = ""
    detail: str | None = None
    path: list[dict[str, str]] = field(default_factory=list)
    voicemail: dict[str, Any] | None = None
    """The message left (mailbox, audio path, seconds ...), when the caller left one."""

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


def uri_user(text: str) -> str:
    """The user part of a SIP URI (the number), the rest of a ``tel:`` URI, else the text."""
    try:
        uri = SipUri.parse(text.strip().strip("<>"))
    except SipParseError:
        return text
    if isinstance(uri, SipUri):
        return uri.user or uri.host
    return uri.rest.split(";", 1)[0]


def transfer_uri(to: str, info: CallInfo) -> str:
    """``to`` as a URI: as given with a scheme, else ``sip:TO@<where the call came from>``
    (the PBX that sent the call resolves the extension)."""
    if ":" in to.split("@", 1)[0]:
        return to
    host, port = info.remote_addr
    hostport = f"[{host}]" if ":" in host else host
    if port != 5060:
        hostport += f":{port}"
    return f"sip:{to}@{hostport}"


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:120] or "_"


class _CallerTrack:
    """Capture sink: the caller's channel (left) to a mono WAV, at most ``limit`` samples."""

    def __init__(self, writer: StreamingWavWriter, limit: int) -> None:
        self.writer = writer
        self.limit = limit
        self.samples = 0

    @property
    def full(self) -> bool:
        return self.samples >= self.limit

    def write(self, block: np.ndarray) -> None:
        take = min(len(block), self.limit - self.samples)
        if take > 0:
            self.writer.write(block[:take, 0:1])
            self.samples += take

    def close(self) -> None:
        """Nothing: the recording closes the writer itself."""


class FlowApplication:
    """Runs flows on calls (see the module docstring).

    ``current`` returns the flow set for a new call (a fixed one, or the
    reload registry's current snapshot). ``clock`` gives the aware time
    handed to the runtime (UTC wall clock by default).
    """

    def __init__(
        self,
        current: Callable[[], FlowSetLike],
        prompts: PromptLibrary,
        metrics: EngineMetrics,
        *,
        voicemail_dir: Path,
        directory: CustomerDirectory | None = None,
        queue: QueuePort | None = None,
        limits: Limits | None = None,
        transfer_timeout: float = 32.0,
        clock: Callable[[], datetime] = _utcnow,
        recent_size: int = 200,
    ) -> None:
        self.current = current
        #: False while no flow set is live (the engine plays the greeting instead).
        self.serving = True
        self.prompts = prompts
        self.metrics = metrics
        self.voicemail_dir = Path(voicemail_dir)
        self.directory = directory
        self.queue: QueuePort = queue or NoAgentsQueue()
        self._records: dict[str, FlowCallRecord] = {}
        """Runs in progress by call id (a voicemail is noted on its record)."""
        self.recorder: RecordingPort | None = None
        """Set by the engine when calls are recorded (``recording`` nodes pause it)."""
        self.limits = limits or Limits()
        self.transfer_timeout = transfer_timeout
        self.clock = clock
        self.recent: deque[FlowCallRecord] = deque(maxlen=recent_size)
        self.on_record: list[Callable[[FlowCallRecord], None]] = []
        """Told about each finished run (the recorder keeps it with the recording)."""
        self._http: aiohttp.ClientSession | None = None

    async def prerender(self, flowset: FlowSetLike) -> PrerenderReport:
        """Render every static prompt of ``flowset`` before it takes calls."""
        return await prerender(flowset, self.prompts)

    async def close(self) -> None:
        """Close the HTTP client and the TTS renderers."""
        if self._http is not None:
            await self._http.close()
            self._http = None
        await asyncio.to_thread(self.prompts.close)

    # ------------------------------------------------------------------ a call
    async def __call__(self, call: Call) -> None:
        info = call.info
        clog = log.bind(call_id=info.call_id)
        try:
            flowset = self.current()  # the snapshot this call keeps to its end
        except LookupError as exc:  # the registry has no valid flow set published
            clog.error("flow.unavailable", error=str(exc))
            self.metrics.flow_calls.labels("-", "no_flows").inc()
            return
        caller, called = uri_user(info.caller), uri_user(info.callee)
        caller_name = info.caller_name
        started = self.clock()
        digest = str(getattr(flowset, "digest", ""))
        try:
            run = FlowRun(
                flowset,
                caller=caller,
                called=called,
                call_id=info.call_id,
                now=started,
                caller_name=caller_name,
                limits=self.limits,
            )
        except FlowRuntimeError as exc:
            clog.warning("flow.no_route", called=called, error=str(exc))
            self.metrics.flow_calls.labels("-", "no_route").inc()
            self.recent.append(
                FlowCallRecord(
                    info.call_id,
                    "-",
                    digest,
                    caller,
                    called,
                    started.isoformat(),
                    ended=started.isoformat(),
                    outcome="no_route",
                    detail=str(exc),
                )
            )
            return
        clog = clog.bind(flow=run.entry)
        clog.info("flow.started", caller=caller, called=called, digest=digest[:12])
        record = FlowCallRecord(
            info.call_id, run.entry, digest, caller, called, started.isoformat()
        )
        self._records[info.call_id] = record
        seen = 0
        action: Action = run.start(started)
        try:
            while True:
                seen = self._visits(run, seen, clog)
                if isinstance(action, Hangup):
                    break
                result = await self._execute(call, run, action, clog)
                action = run.resume(result, self.clock())
        except (CallHungUp, asyncio.CancelledError):
            by_engine = call.end_reason in ("local-hangup", "shutdown")
            action = run.caller_hung_up(self.clock(), by_engine=by_engine)
            raise
        except Exception as exc:
            clog.exception("flow.driver_failed")
            action = run.ended or Hangup("error", f"driver: {exc}")
            run.ended = action
        finally:
            self._visits(run, seen, clog)
            self._finish(run, record, clog)

    def _visits(self, run: FlowRun, seen: int, clog: Any) -> int:
        for visit in run.path[seen:]:
            clog.info("flow.node", node_flow=visit.flow, node=visit.node, type=visit.type)
            self.metrics.flow_node_visits.labels(visit.flow, visit.node).inc()
        return len(run.path)

    def _finish(self, run: FlowRun, record: FlowCallRecord, clog: Any) -> None:
        end = run.ended or Hangup("error", "the run did not finish")
        record.ended = self.clock().isoformat()
        record.outcome = end.reason
        record.detail = end.detail
        record.path = [
            {"flow": v.flow, "node": v.node, "type": v.type, "at": v.at.isoformat()}
            for v in run.path
        ]
        self.recent.append(record)
        self._records.pop(record.call_id, None)
        for listener in self.on_record:
            try:
                listener(record)
            except Exception:
                clog.exception("flow.record_listener_failed")
        self.metrics.flow_calls.labels(run.entry, end.reason).inc()
        if end.reason == "error":
            clog.error("flow.error", error=end.detail, path=run.labels()[-8:])
        clog.info("flow.ended", outcome=end.reason, detail=end.detail, nodes=len(run.path))

    # ---------------------------------------------------------------- actions
    async def _execute(self, call: Call, run: FlowRun, action: Action, clog: Any) -> Result:
        if isinstance(action, Play):
            return await self._play(call, action, getattr(run.flowset, "folder", None), clog)
        if isinstance(action, CollectDigits):
            return await self._collect(call, action)
        if isinstance(action, Lookup):
            return await self.lookup(action, clog)
        if isinstance(action, Enqueue):
            clog.info("flow.enqueue", queue=action.queue, skills=dict(action.skills))
            return await self.queue.enqueue(call, action)
        if isinstance(action, Transfer):
            return await self._transfer(call, action, clog)
        if isinstance(action, RecordVoicemail):
            return await self._voicemail(call, run, action, clog)
        if isinstance(action, SetRecording):
            return self._set_recording(call, action, clog)
        raise TypeError(f"unknown action {action!r}")

    async def _play(self, call: Call, action: Play, folder: Path | None, clog: Any) -> PlayResult:
        def failed(item: PromptItem, error: str) -> None:
            clog.warning("flow.prompt_failed", part=repr(item)[:120], error=error)

        audio = await self.prompts.parts(action.parts, failed, folder=folder)
        if action.barge_in:  # (checked after a call-time render, which may take a while)
            typed = await call.get_digit(0)  # typed ahead: the caller already answered
            if typed is not None:
                return PlayResult(typed)
        if not audio:
            return PlayResult(None)
        if not action.barge_in:
            await call.play(audio, interruptible=False)
            call.flush_digits()
            return PlayResult(None)
        if await call.play(audio, interruptible=True):
            return PlayResult(None)
        return PlayResult(await call.get_digit(0.5))  # the key that cut the prompt

    async def _collect(self, call: Call, action: CollectDigits) -> DigitsResult:
        digits = ""
        wait = action.first_timeout
        while len(digits) < action.max_digits:
            digit = await call.get_digit(wait)
            if digit is None:
                return DigitsResult(digits, timed_out=True)
            if action.terminator is not None and digit == action.terminator:
                return DigitsResult(digits, timed_out=False)
            digits += digit
            wait = action.inter_digit_timeout
        return DigitsResult(digits, timed_out=False)

    async def lookup(self, action: Lookup, clog: Any = log) -> LookupResult:
        """A customer record: history (the directory, in a thread, within the
        timeout) or http (200 + JSON object; 404 = not found). Failures come
        back as ``LookupResult.error``, never as exceptions."""
        if action.source == "history":
            directory = self.directory
            if directory is None:
                result = LookupResult(None, "no customer directory is configured")
            else:
                try:
                    record = await asyncio.wait_for(
                        asyncio.to_thread(directory.get, action.key), action.timeout
                    )
                    result = LookupResult(record)
                except TimeoutError:
                    result = LookupResult(None, f"timed out after {action.timeout:g} s")
                except Exception as exc:  # a broken directory must not end the call
                    result = LookupResult(None, f"{type(exc).__name__}: {exc}")
        else:
            result = await self._http_lookup(action)
        clog.info(
            "flow.lookup",
            source=action.source,
            url=action.url,
            found=result.record is not None,
            error=result.error,
        )
        return result

    async def _http_lookup(self, action: Lookup) -> LookupResult:
        assert action.url is not None
        if self._http is None:
            self._http = aiohttp.ClientSession()
        try:
            async with self._http.get(
                action.url,
                timeout=aiohttp.ClientTimeout(total=action.timeout),
                headers={"Accept": "application/json"},
            ) as resp:
                if resp.status == 404:
                    return LookupResult(None)
                if resp.status != 200:
                    return LookupResult(None, f"HTTP {resp.status} from {action.url}")
                body = await resp.json(content_type=None)
        except TimeoutError:
            return LookupResult(None, f"timed out after {action.timeout:g} s: {action.url}")
        except (aiohttp.ClientError, ValueError) as exc:
            return LookupResult(None, f"{type(exc).__name__}: {exc}")
        if not isinstance(body, dict):
            return LookupResult(None, f"{action.url} did not return a JSON object")
        return LookupResult(body)

    def _set_recording(self, call: Call, action: SetRecording, clog: Any) -> RecordingResult:
        if self.recorder is None:
            clog.warning("flow.recording_unavailable", hint="calls are not recorded (capture off)")
            return RecordingResult(False, "calls are not recorded")
        try:
            if action.paused:
                self.recorder.pause(call.info.call_id, by="flow", reason=action.reason)
            else:
                self.recorder.resume(call.info.call_id, by="flow")
        except Exception as exc:  # RecordingError: already paused, not paused, not recorded
            clog.warning("flow.recording_refused", paused=action.paused, error=str(exc))
            return RecordingResult(False, str(exc))
        return RecordingResult(True)

    async def _transfer(self, call: Call, action: Transfer, clog: Any) -> TransferResult:
        uri = transfer_uri(action.to, call.info)
        ok, status = await call.transfer(uri, timeout=self.transfer_timeout)
        clog.info("flow.transfer", target=uri, ok=ok, status=status)
        return TransferResult(ok, status)

    async def _voicemail(
        self, call: Call, run: FlowRun, action: RecordVoicemail, clog: Any
    ) -> VoicemailResult:
        folder = self.voicemail_dir / _safe(action.mailbox)
        path = folder / f"{_safe(call.info.call_id)}.wav"
        writer = StreamingWavWriter(path, channels=1)
        track = _CallerTrack(writer, int(action.max_length * RATE))
        session = call.session
        capture = session.capture
        own = capture is None
        if capture is None:
            capture = session.capture = CallCapture([])
        capture.flush()  # what is already decoded belongs before the beep
        capture.sinks.append(track)
        loop = asyncio.get_running_loop()
        # Received audio reaches the capture about a second late (decoded in
        # batches): past max_length, wait that long for the last of it.
        deadline = loop.time() + action.max_length + 1.2
        try:
            while not track.full:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                digit = await call.get_digit(min(remaining, 0.25))
                if digit is not None and digit == action.finish_digit:
                    break
        finally:  # also on hang-up: session.close() flushed the rest into the track
            if not capture.closed:
                capture.flush()
            if track in capture.sinks:
                capture.sinks.remove(track)
            if own and session.capture is capture and not session.closed:
                session.capture = None
            result = self._store_voicemail(writer, track, call, run, action)
            record = self._records.get(call.info.call_id)
            if record is not None and result.path is not None:
                record.voicemail = {
                    "mailbox": action.mailbox,
                    "audio": result.path,
                    "seconds": round(result.seconds, 3),
                    "recorded_at": run.now.isoformat(),
                }
            clog.info(
                "flow.voicemail",
                mailbox=action.mailbox,
                path=result.path,
                seconds=round(result.seconds, 2),
            )
        return result

    @staticmethod
    def _store_voicemail(
        writer: StreamingWavWriter,
        track: _CallerTrack,
        call: Call,
        run: FlowRun,
        action: RecordVoicemail,
    ) -> VoicemailResult:
        writer.close()
        path = writer.path
        if track.samples == 0:
            path.unlink(missing_ok=True)
            return VoicemailResult(None, 0.0)
        seconds = track.samples / RATE
        meta = {
            "mailbox": action.mailbox,
            "call_id": call.info.call_id,
            "caller": run.caller,
            "called": run.called,
            "flow": run.flow,
            "recorded_at": run.now.isoformat(),
            "seconds": seconds,
            "audio": path.name,
        }
        path.with_suffix(".json").write_text(json.dumps(meta, indent=2))
        return VoicemailResult(str(path), seconds)


async def start_flow_application(
    config: EngineConfig, metrics: EngineMetrics
) -> FlowApplication | None:
    """The flow application for ``config.flows_dir``, not serving yet.

    None when the folder holds no flow file (the engine plays the greeting).
    Otherwise the application starts with no flow set: the engine's hot
    reload (:class:`engine.reload.FlowReload`) loads, validates and prerenders
    the folder once and makes it live (or the last stored version when the
    folder does not load; its errors name file:line:column and the fix).
    Until a version is live the engine plays the greeting
    (see ``FlowApplication.serving``).
    """
    folder = config.flows_dir
    if not flow_files(folder):
        log.info("flows.none", folder=str(folder))
        return None
    sounds = SoundLibrary([folder / "prompts", *config.sounds_dirs])
    prompts = PromptLibrary(
        flows_dir=folder, sounds=sounds, tts=TtsRenderer(config.data_dir / "tts")
    )

    def no_flows_yet() -> FlowSet:
        raise LookupError(f"no valid flows in {folder} yet")

    app = FlowApplication(
        no_flows_yet,
        prompts,
        metrics,
        voicemail_dir=config.data_dir / "voicemail",
        directory=SqliteContacts(config.data_dir / DB_NAME, region=config.region),
    )
    app.serving = False
    return app


def recent_calls(
    finished: Iterable[CallInfo], records: Iterable[FlowCallRecord], limit: int = 50
) -> list[dict[str, Any]]:
    """Finished calls, newest first, each with its flow run when it had one."""
    by_id = {r.call_id: r for r in records}
    out: list[dict[str, Any]] = []
    for info in list(finished)[::-1][:limit]:
        item: dict[str, Any] = {
            "call_id": info.call_id,
            "caller": info.caller,
            "callee": info.callee,
            "started": datetime.fromtimestamp(info.started_wall, UTC).isoformat(),
            "digits": "".join(d for _, d, _ in info.digits),
        }
        record = by_id.get(info.call_id)
        if record is not None:
            item["flow"] = record.as_dict()
        out.append(item)
    return out
