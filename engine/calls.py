"""Call handling: SIP events in, media sessions and application tasks out.

``CallManager`` turns UA events into calls. An INVITE is negotiated (488 when
no codec matches), given an RTP port pair and a media session, rung for
``ring_seconds`` and answered; the application coroutine then runs with a
:class:`~media.call.Call`. BYE, CANCEL, no-ACK and shutdown all end in the
same place, :meth:`CallManager._finish`, so every call is released once.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog

from engine.metrics import EngineMetrics
from media.call import Call, CallHungUp, CallInfo
from media.rtp.clock import MediaClock
from media.rtp.endpoint import PortRangeExhausted, RtpEndpoint, RtpPortPool
from media.sdp import NoCommonCodec, SdpParseError, SessionDescription, negotiate
from media.session import MediaSession, MediaTotals
from media.sip import events as ev
from media.sip.service import SipService
from recordings.recorder import Recorder

log = structlog.get_logger("engine.calls")

Application = Callable[[Call], Awaitable[None]]


@dataclass
class _Leg:
    """Engine-side bookkeeping of one inbound call."""

    ref: ev.CallRef
    info: CallInfo
    endpoint: RtpEndpoint | None = None
    session: MediaSession | None = None
    call: Call | None = None
    clock_key: int | None = None
    task: asyncio.Task[None] | None = None
    answered: bool = False
    finished: bool = False
    sdp_version: int = 1


class CallManager:
    """Owns every call of the engine (see module docstring)."""

    def __init__(
        self,
        *,
        sip: SipService,
        ports: RtpPortPool,
        clock: MediaClock,
        metrics: EngineMetrics,
        totals: MediaTotals,
        application: Application,
        rng: random.Random,
        codecs: tuple[str, ...],
        ring_seconds: float,
        jitter_ms: int,
        recorder: Recorder | None,
        max_calls: int,
    ) -> None:
        self.sip = sip
        self.ports = ports
        self.clock = clock
        self.metrics = metrics
        self.totals = totals
        self.application = application
        self.rng = rng
        self.codecs = codecs
        self.ring_seconds = ring_seconds
        self.jitter_ms = jitter_ms
        self.recorder = recorder
        self.max_calls = max_calls
        self.legs: dict[ev.CallRef, _Leg] = {}
        self.finished_calls: list[CallInfo] = []
        self._tasks: set[asyncio.Task[None]] = set()

    # --------------------------------------------------------------- events
    def on_event(self, event: ev.Event) -> None:
        """Dispatch one UA event (called by :class:`SipService`)."""
        if isinstance(event, ev.IncomingCall):
            self._incoming(event)
        elif isinstance(event, ev.CallCancelled):
            self._finish(event.call, "cancelled")
        elif isinstance(event, ev.CallEnded):
            self._finish(event.call, event.reason)
        elif isinstance(event, ev.ReinviteReceived):
            self._reinvite(event)
        elif isinstance(event, ev.ReferStatus):
            leg = self.legs.get(event.call)
            if leg is not None and leg.call is not None:
                leg.call.refer_status(event.status)
        elif isinstance(event, ev.DtmfInfo):
            leg = self.legs.get(event.call)
            if leg is not None and leg.session is not None:
                leg.session.inject_digit(event.digit, "info")

    def _incoming(self, event: ev.IncomingCall) -> None:
        now = self.sip.now()
        req = event.request
        info = CallInfo(
            call_id=event.call.call_id,
            caller=str(req.from_.uri),
            callee=str(req.uri),
            remote_addr=event.remote_addr,
            transport=event.transport,
            started=now,
            started_wall=time.time(),
            caller_name=req.from_.display or "",
        )
        if len(self.legs) >= self.max_calls:
            self.sip.ua.reject(event.call, 503, now, headers=[("Retry-After", "5")])
            self.metrics.calls_total.labels("rejected").inc()
            return
        try:
            offer = SessionDescription.parse(event.offer)
        except SdpParseError as exc:
            log.info("call.bad_sdp", call_id=info.call_id, error=str(exc))
            self.sip.ua.reject(event.call, 400, now, reason="Bad SDP")
            self.metrics.calls_total.labels("rejected").inc()
            return
        leg = _Leg(event.call, info)
        self.legs[event.call] = leg
        self.metrics.calls_active.set(len(self.legs))
        self._spawn(self._setup(leg, offer))

    async def _setup(self, leg: _Leg, offer: SessionDescription) -> None:
        ua = self.sip.ua
        try:
            endpoint = await self.ports.open()
        except PortRangeExhausted as exc:
            log.warning("call.no_rtp_port", call_id=leg.info.call_id, error=str(exc))
            ua.reject(leg.ref, 503, self.sip.now(), headers=[("Retry-After", "5")])
            self.sip.flush()
            self._finish(leg.ref, "no-port")
            return
        if leg.finished:  # cancelled while we were binding
            self.ports.release(endpoint)
            return
        leg.endpoint = endpoint
        try:
            media = negotiate(
                offer,
                local_address=self.sip.host,
                local_port=endpoint.port,
                codecs=self.codecs,
                session_id=self.rng.getrandbits(32),
                session_version=leg.sdp_version,
            )
        except NoCommonCodec as exc:
            log.info("call.no_common_codec", call_id=leg.info.call_id, error=str(exc))
            ua.reject(leg.ref, 488, self.sip.now())
            self.sip.flush()
            self._finish(leg.ref, "rejected")
            return
        leg.answer = media.answer  # type: ignore[attr-defined]
        loop = asyncio.get_running_loop()
        session = MediaSession(
            media=media,
            send_rtp=endpoint.send_rtp,
            send_rtcp=endpoint.send_rtcp,
            rng=self.rng,
            totals=self.totals,
            on_digit=lambda digit, source: self._digit(leg, digit, source),
            on_playback=lambda event: leg.call.playback_finished(event) if leg.call else None,
            jitter_ms=self.jitter_ms,
            wall_offset=time.time() - loop.time(),
        )
        endpoint.set_handlers(
            session.receive_rtp,
            lambda data, addr: session.receive_rtcp(data, addr, loop.time()),
        )
        leg.session = session
        leg.call = Call(leg.ref, leg.info, session, self, loop)
        if self.ring_seconds > 0:
            if not ua.ring(leg.ref, self.sip.now()):
                self.sip.flush()
                return
            self.sip.flush()
            await asyncio.sleep(self.ring_seconds)
            if leg.finished:
                return
        if not ua.answer(leg.ref, bytes(media.answer), self.sip.now()):
            self.sip.flush()  # cancelled in the meantime: never a late 200
            self._finish(leg.ref, "cancelled")
            return
        self.sip.flush()
        leg.answered = True
        if self.recorder is not None:  # recorded from the answer on
            session.capture = self.recorder.open(leg.info, session)
        leg.clock_key = self.clock.register(session, media.ptime)
        log.info(
            "call.answered",
            call_id=leg.info.call_id,
            caller=leg.info.caller,
            codec=media.codec,
            ptime=media.ptime,
            telephone_event=media.telephone_event_pt,
            rtp_port=endpoint.port,
        )
        leg.task = self._spawn(self._run_application(leg))
        # A finished task keeps its exception (CancelledError at hang-up), whose
        # traceback holds this leg: drop it, or leg and task form a cycle.
        leg.task.add_done_callback(lambda _task: setattr(leg, "task", None))

    async def _run_application(self, leg: _Leg) -> None:
        assert leg.call is not None
        try:
            await self.application(leg.call)
        except CallHungUp:
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("call.application_failed", call_id=leg.info.call_id)
        if not leg.finished:
            self.hangup_call(leg.ref)

    def _digit(self, leg: _Leg, digit: str, source: str) -> None:
        self.metrics.dtmf_digits.labels(source).inc()
        paused = leg.session is not None and leg.session.capture_paused
        log.info(  # a digit keyed inside a secure pause is never logged (PCI)
            "call.digit", call_id=leg.info.call_id, digit="*" if paused else digit, source=source
        )
        if leg.call is not None:
            leg.call.digit_received(digit, source)

    def _reinvite(self, event: ev.ReinviteReceived) -> None:
        leg = self.legs.get(event.call)
        now = self.sip.now()
        if leg is None or leg.session is None or leg.endpoint is None:
            self.sip.ua.reject_reinvite(event.call, 491, now)
            return
        try:
            offer = SessionDescription.parse(event.offer)
            leg.sdp_version += 1
            media = negotiate(
                offer,
                local_address=self.sip.host,
                local_port=leg.endpoint.port,
                codecs=self.codecs,
                session_id=leg.session.media.answer.origin.session_id,
                session_version=leg.sdp_version,
            )
        except (SdpParseError, NoCommonCodec) as exc:
            log.info("call.reinvite_refused", call_id=leg.info.call_id, error=str(exc))
            self.sip.ua.reject_reinvite(event.call, 488, now)
            return
        old_ptime = leg.session.ptime
        leg.session.apply(media)
        if leg.clock_key is not None and media.ptime != old_ptime:
            self.clock.unregister(leg.clock_key)
            leg.clock_key = self.clock.register(leg.session, media.ptime)
        self.sip.ua.answer_reinvite(event.call, bytes(media.answer), now)
        log.info("call.reinvite", call_id=leg.info.call_id, direction=media.direction)

    # ------------------------------------------------------------- teardown
    def hangup_call(self, ref: ev.CallRef) -> None:
        """Hang up from our side: BYE (or a final answer if not yet answered)."""
        leg = self.legs.get(ref)
        if leg is None or leg.finished:
            return
        self.sip.ua.hangup(ref, self.sip.now())
        self.sip.flush()
        self._finish(ref, "local-hangup")

    def refer_call(self, ref: ev.CallRef, target_uri: str) -> bool:
        """Send a REFER (blind transfer) on an answered call; False if not possible."""
        leg = self.legs.get(ref)
        if leg is None or leg.finished or not leg.answered:
            return False
        sent = self.sip.ua.refer(ref, target_uri, self.sip.now())
        self.sip.flush()
        if sent:
            log.info("call.refer", call_id=leg.info.call_id, target=target_uri)
        return sent

    def _finish(self, ref: ev.CallRef, reason: str) -> None:
        leg = self.legs.pop(ref, None)
        if leg is None or leg.finished:
            return
        leg.finished = True
        if leg.clock_key is not None:
            self.clock.unregister(leg.clock_key)
        if leg.session is not None:
            leg.session.close()
        if leg.endpoint is not None:
            self.ports.release(leg.endpoint)
        if leg.call is not None:
            leg.call.mark_ended(reason)
        if leg.task is not None and not leg.task.done():
            leg.task.cancel()
        if self.recorder is not None and leg.answered:
            self._recording_done(leg, reason)
        outcome = (
            "answered" if leg.answered else ("cancelled" if reason == "cancelled" else "failed")
        )
        self.metrics.calls_total.labels(outcome).inc()
        self.metrics.calls_active.set(len(self.legs))
        self.finished_calls.append(leg.info)
        del self.finished_calls[:-1000]
        log.info("call.ended", call_id=leg.info.call_id, reason=reason, outcome=outcome)

    def _recording_done(self, leg: _Leg, reason: str) -> None:
        """Tell the recorder once the application (flow, ACD) has reported everything."""
        recorder = self.recorder
        assert recorder is not None
        call_id = leg.info.call_id
        task = leg.task
        if task is None or task.done():
            recorder.call_done(call_id, reason)
        else:
            task.add_done_callback(lambda _task: recorder.call_done(call_id, reason))

    def _spawn(self, coro: Awaitable[None]) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def shutdown(self, grace: float) -> None:
        """BYE every call, give the peers ``grace`` seconds to answer, release all."""
        for ref in list(self.legs):
            leg = self.legs[ref]
            if leg.answered:
                self.hangup_call(ref)
            else:
                self.sip.ua.reject(ref, 503, self.sip.now(), reason="Shutting Down")
                self.sip.flush()
                self._finish(ref, "shutdown")
        deadline = self.sip.now() + grace
        while self.sip.ua.next_deadline() is not None and self.sip.now() < deadline:
            if not self.sip.ua.pending_transactions():
                break
            await asyncio.sleep(0.05)
        for task in list(self._tasks):
            task.cancel()
