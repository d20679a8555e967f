"""Calls the engine places itself (UAC legs): agents' phones for the ACD.

:meth:`OutboundCalls.dial` takes an RTP port pair from the engine's pool,
offers PCMU/PCMA + telephone-event from it (:func:`media.sdp.build_offer`),
sends the INVITE through the UA core and returns an :class:`OutboundLeg` at
once. The UA's events for that call come back through :meth:`on_event`
(the composition root routes every event of a call this object owns here):

* ``CallProgress``: counted (``leg.progress``), nothing else;
* ``CallAnswered``: the answer is checked against our offer
  (:func:`media.sdp.parse_answer`), a :class:`~media.session.MediaSession` is
  built on the shared media clock and ``leg.outcome`` resolves to 200; an
  unusable answer is hung up (BYE) and resolves to 488;
* ``CallFailed``: ``leg.outcome`` resolves to the status (486, 603, 408 ...);
* ``CallEnded``: the leg is released (clock, session, port) and ``leg.ended``
  is set; a leg hung up before the answer resolves ``outcome`` to 487;
* ``ReinviteReceived``: answered like an inbound re-INVITE (hold/unhold);
  ``leg.on_hold`` is told;
* ``DtmfInfo``: kept in ``leg.info.digits``.

Everything a leg holds is released exactly once, in :meth:`_finish`.
"""

from __future__ import annotations

import asyncio
import random
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

from media.call import CallInfo
from media.rtp.clock import MediaClock
from media.rtp.endpoint import RtpEndpoint, RtpPortPool
from media.sdp import (
    AnswerMismatch,
    NoCommonCodec,
    SdpParseError,
    SessionDescription,
    build_offer,
    negotiate,
    parse_answer,
)
from media.session import MediaSession, MediaTotals
from media.sip import events as ev
from media.sip.errors import SipParseError
from media.sip.service import SipService
from media.sip.uri import SipUri

__all__ = ["DialError", "OutboundCalls", "OutboundLeg", "dial_target"]

log = structlog.get_logger("engine.outbound")

ANSWERED = 200
CANCELLED = 487
UNUSABLE_ANSWER = 488


class DialError(ValueError):
    """A target that cannot be called; the text says why and how to fix it."""


def dial_target(uri: str) -> tuple[str, int, str]:
    """``(host, port, transport)`` to send the INVITE for ``uri`` to (a ``sip:`` URI;
    port 5060 unless given; transport ``udp`` unless ``;transport=tcp``)."""
    try:
        parsed = SipUri.parse(uri.strip())
    except SipParseError as exc:
        raise DialError(f"cannot call {uri!r}: {exc}; write sip:USER@HOST[:PORT]") from None
    if not isinstance(parsed, SipUri) or parsed.scheme != "sip":
        raise DialError(
            f"cannot call {uri!r}: only sip: URIs are supported (no TLS); "
            "write sip:USER@HOST[:PORT]"
        )
    transport = parsed.transport or "udp"
    if transport not in ("udp", "tcp"):
        raise DialError(f"cannot call {uri!r}: transport {transport!r} (use udp or tcp)")
    return parsed.host, parsed.port or 5060, transport


@dataclass(eq=False)
class OutboundLeg:
    """One call we placed (see the module docstring)."""

    ref: ev.CallRef
    uri: str
    info: CallInfo
    offer: SessionDescription
    endpoint: RtpEndpoint
    outcome: asyncio.Future[int]
    """200 once answered with usable media, else the final status (487: we hung up first)."""
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    end_reason: str = ""
    ended_by_remote: bool = False
    session: MediaSession | None = None
    clock_key: int | None = None
    progress: list[int] = field(default_factory=list)
    answered_at: float | None = None
    finished: bool = False
    sdp_version: int = 1
    on_hold: Callable[[bool], None] | None = None
    """Told ``True``/``False`` when the far end puts the call on hold / takes it off."""
    on_digit: Callable[[str, str], None] | None = None
    """Digits the far end sends (RFC 4733, in-band or INFO)."""

    @property
    def answered(self) -> bool:
        """Whether the far end answered and media was set up."""
        return self.outcome.done() and self.outcome.result() == ANSWERED


class OutboundCalls:
    """The engine's UAC legs (see the module docstring)."""

    def __init__(
        self,
        *,
        sip: SipService,
        ports: RtpPortPool,
        clock: MediaClock,
        totals: MediaTotals,
        rng: random.Random,
        codecs: tuple[str, ...],
        jitter_ms: int,
    ) -> None:
        self.sip = sip
        self.ports = ports
        self.clock = clock
        self.totals = totals
        self.rng = rng
        self.codecs = codecs
        self.jitter_ms = jitter_ms
        self.legs: dict[ev.CallRef, OutboundLeg] = {}
        self.placed = 0

    def owns(self, ref: ev.CallRef) -> bool:
        """Whether ``ref`` is one of our legs (its events belong to :meth:`on_event`)."""
        return ref in self.legs

    # ------------------------------------------------------------------ dial
    async def dial(
        self, uri: str, *, from_uri: str, display: str = "", timeout: float = 2.0
    ) -> OutboundLeg:
        """INVITE ``uri`` (see the module docstring); raises :class:`DialError`
        for an unusable target and ``PortRangeExhausted`` without a free port."""
        host, port, transport = dial_target(uri)
        loop = asyncio.get_running_loop()
        try:
            infos = await asyncio.wait_for(
                loop.getaddrinfo(host, port, family=socket.AF_INET, type=socket.SOCK_DGRAM),
                timeout,
            )
        except (OSError, TimeoutError) as exc:
            raise DialError(
                f"cannot call {uri!r}: host {host!r} does not resolve ({exc})"
            ) from None
        address = str(infos[0][4][0])
        endpoint = await self.ports.open()
        offer = build_offer(
            local_address=self.sip.host,
            local_port=endpoint.port,
            codecs=self.codecs,
            session_id=self.rng.getrandbits(32),
            session_version=1,
        )
        party = f'"{_quoted(display)}" <{from_uri}>' if display else f"<{from_uri}>"
        now = self.sip.now()
        ref = self.sip.ua.invite(
            uri,
            dest=(address, port),
            transport=transport,
            from_uri=party,
            sdp=bytes(offer),
            now=now,
        )
        info = CallInfo(
            call_id=ref.call_id,
            caller=from_uri,
            callee=uri,
            remote_addr=(address, port),
            transport=transport,
            started=now,
            started_wall=time.time(),
            caller_name=display,
        )
        leg = OutboundLeg(ref, uri, info, offer, endpoint, loop.create_future())
        self.legs[ref] = leg
        self.placed += 1
        log.info("outbound.dial", call_id=ref.call_id, uri=uri, rtp_port=endpoint.port)
        self.sip.flush()
        return leg

    def hangup(self, leg: OutboundLeg) -> None:
        """CANCEL an unanswered leg, BYE an answered one (idempotent)."""
        if leg.finished:
            return
        self.sip.ua.hangup(leg.ref, self.sip.now())  # emits CallEnded("local") at once
        self.sip.flush()
        self._finish(leg, "local", by_remote=False)

    async def shutdown(self) -> None:
        """Hang up every leg."""
        for leg in list(self.legs.values()):
            self.hangup(leg)

    # ---------------------------------------------------------------- events
    def on_event(self, event: ev.Event) -> None:
        """One UA event of a leg we own."""
        leg = self.legs.get(event.call)
        if leg is None:
            return
        if isinstance(event, ev.CallProgress):
            leg.progress.append(event.status)
        elif isinstance(event, ev.CallAnswered):
            self._answered(leg, event.sdp)
        elif isinstance(event, ev.CallFailed):
            log.info("outbound.failed", call_id=leg.ref.call_id, status=event.status)
            _resolve(leg.outcome, event.status)
            self._finish(leg, f"failed {event.status}", by_remote=True)
        elif isinstance(event, ev.CallEnded):
            self._finish(leg, event.reason, by_remote=event.by_remote)
        elif isinstance(event, ev.ReinviteReceived):
            self._reinvite(leg, event.offer)
        elif isinstance(event, ev.DtmfInfo):
            self._digit(leg, event.digit, "info")

    def _answered(self, leg: OutboundLeg, sdp: bytes) -> None:
        try:
            media = parse_answer(leg.offer, SessionDescription.parse(sdp))
        except (SdpParseError, AnswerMismatch, NoCommonCodec) as exc:
            log.warning("outbound.bad_answer", call_id=leg.ref.call_id, error=str(exc))
            _resolve(leg.outcome, UNUSABLE_ANSWER)
            self.hangup(leg)
            return
        loop = asyncio.get_running_loop()
        session = MediaSession(
            media=media,
            send_rtp=leg.endpoint.send_rtp,
            send_rtcp=leg.endpoint.send_rtcp,
            rng=self.rng,
            totals=self.totals,
            on_digit=lambda digit, source: self._digit(leg, digit, source),
            on_playback=lambda _event: None,
            jitter_ms=self.jitter_ms,
            wall_offset=time.time() - loop.time(),
        )
        leg.endpoint.set_handlers(
            session.receive_rtp,
            lambda data, addr: session.receive_rtcp(data, addr, loop.time()),
        )
        leg.session = session
        leg.clock_key = self.clock.register(session, media.ptime)
        leg.answered_at = self.sip.now()
        log.info(
            "outbound.answered",
            call_id=leg.ref.call_id,
            uri=leg.uri,
            codec=media.codec,
            ptime=media.ptime,
            telephone_event=media.telephone_event_pt,
        )
        _resolve(leg.outcome, ANSWERED)

    def _reinvite(self, leg: OutboundLeg, offer_bytes: bytes) -> None:
        now = self.sip.now()
        session = leg.session
        if session is None:
            self.sip.ua.reject_reinvite(leg.ref, 491, now)
            return
        try:
            offer = SessionDescription.parse(offer_bytes)
            leg.sdp_version += 1
            media = negotiate(
                offer,
                local_address=self.sip.host,
                local_port=leg.endpoint.port,
                codecs=self.codecs,
                session_id=leg.offer.origin.session_id,
                session_version=leg.sdp_version,
            )
        except (SdpParseError, NoCommonCodec) as exc:
            log.info("outbound.reinvite_refused", call_id=leg.ref.call_id, error=str(exc))
            self.sip.ua.reject_reinvite(leg.ref, 488, now)
            return
        old_ptime = session.ptime
        was_held = session.direction not in ("sendrecv", "sendonly")
        session.apply(media)
        if leg.clock_key is not None and media.ptime != old_ptime:
            self.clock.unregister(leg.clock_key)
            leg.clock_key = self.clock.register(session, media.ptime)
        self.sip.ua.answer_reinvite(leg.ref, bytes(media.answer), now)
        held = media.direction not in ("sendrecv", "sendonly")
        log.info("outbound.reinvite", call_id=leg.ref.call_id, direction=media.direction)
        if held != was_held and leg.on_hold is not None:
            leg.on_hold(held)

    def _digit(self, leg: OutboundLeg, digit: str, source: str) -> None:
        leg.info.digits.append((self.sip.now(), digit, source))
        if leg.on_digit is not None:
            leg.on_digit(digit, source)

    def _finish(self, leg: OutboundLeg, reason: str, *, by_remote: bool) -> None:
        if leg.finished:
            return
        leg.finished = True
        self.legs.pop(leg.ref, None)
        _resolve(leg.outcome, CANCELLED)
        if leg.clock_key is not None:
            self.clock.unregister(leg.clock_key)
        if leg.session is not None:
            leg.session.close()
        self.ports.release(leg.endpoint)
        leg.end_reason = reason
        leg.ended_by_remote = by_remote
        leg.ended.set()
        log.info("outbound.ended", call_id=leg.ref.call_id, reason=reason, by_remote=by_remote)


def _resolve(future: asyncio.Future[int], status: int) -> None:
    if not future.done():
        future.set_result(status)


def _quoted(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')
