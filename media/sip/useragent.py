"""The SIP user-agent core: UAS and UAC behaviour over transactions, sans I/O.

Inputs: ``receive(data, addr, transport, now)``, ``handle_timer(now)`` and the
call-control methods (``answer``, ``reject``, ``hangup``, ``invite`` ...).
Outputs: ``datagrams_to_send()``, ``next_event()``, ``next_deadline()``.

Rules it keeps:

* every request gets exactly one final response, and a CANCELled INVITE gets
  487 and never a 200 (``answer`` after a CANCEL returns False);
* responses go back to the address the request came from (RFC 3581
  behaviour, always on: ``force_rport``), never to a host named in a Via;
* a malformed request is answered 400 (505 for a bad version) when enough of
  it parsed to build an answer, otherwise dropped and counted; no input can
  raise out of ``receive``.
"""

from __future__ import annotations

import random
import secrets
from collections import deque
from dataclasses import dataclass, field

import structlog

from media.dtmf.info import DtmfBodyError, parse_dtmf, parse_dtmf_relay
from media.sip import events as ev
from media.sip.auth import Challenge, authorization
from media.sip.dialog import Dialog
from media.sip.errors import SipParseError, SipUsageError
from media.sip.events import CallRef, Outgoing
from media.sip.headers import MAGIC_COOKIE, NameAddr
from media.sip.message import Request, Response, make_request, make_response, parse_message
from media.sip.transaction import ClientTransaction, ServerTransaction, State, Timers
from media.sip.uri import SipUri

log = structlog.get_logger("media.sip.useragent")

Addr = tuple[str, int]
ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, NOTIFY, REFER"
KNOWN_METHODS = frozenset(m.strip() for m in ALLOW.split(","))
ACCEPT = "application/sdp, application/dtmf-relay, application/dtmf"
SINGLE = ("To", "From", "Call-ID", "CSeq", "Max-Forwards", "Content-Type")
MANDATORY = ("Via", "To", "From", "Call-ID", "CSeq")


@dataclass
class _Call:
    ref: CallRef
    role: str  # "uas" or "uac"
    invite: Request
    addr: Addr
    transport: str
    local_tag: str
    dialog: Dialog | None = None
    state: str = "early"  # early, answered, confirmed, ended
    server_key: tuple[str, ...] | None = None
    final_sent: bool = False
    cancelled: bool = False
    answer_2xx: bytes | None = None
    retransmit_at: float | None = None
    retransmit_interval: float = 0.0
    give_up_at: float | None = None
    # UAC
    branch: str = ""
    cancel_pending: bool = False
    provisional_seen: bool = False
    credentials: tuple[str, str] | None = None
    auth_tries: int = 0
    ack: bytes | None = None
    from_uri: str = ""
    target: str = ""
    sdp: bytes = b""
    extra_headers: list[tuple[str, str]] = field(default_factory=list)
    reinvite_tx: tuple[str, ...] | None = None  # server key of a pending re-INVITE
    own_reinvite: str | None = None  # branch of our pending re-INVITE


class UserAgent:
    """The UA core (see module docstring)."""

    def __init__(
        self,
        *,
        local_host: str,
        local_port: int,
        user_agent: str = "callcore",
        t1: float = 0.5,
        t2: float = 4.0,
        t4: float = 5.0,
        supported_extensions: frozenset[str] = frozenset(),
        force_rport: bool = True,
        rng: random.Random | None = None,
    ) -> None:
        self.local_host = local_host
        self.local_port = local_port
        self.user_agent = user_agent
        self.timers = Timers(t1, t2, t4)
        self.supported = supported_extensions
        self.force_rport = force_rport
        self._rng = rng
        self._out: list[Outgoing] = []
        self._events: deque[ev.Event] = deque()
        self._server: dict[tuple[str, ...], ServerTransaction] = {}
        self._client: dict[tuple[str, str], ClientTransaction] = {}
        self._client_owner: dict[tuple[str, str], _Call] = {}
        self._calls: dict[int, _Call] = {}
        self._by_invite: dict[tuple[str, ...], _Call] = {}
        self._by_dialog: dict[tuple[str, str, str], _Call] = {}
        self._merged: dict[tuple[str, str, int, str], tuple[str, ...]] = {}
        self._next_id = 0
        self.counters: dict[tuple[str, str], int] = {}
        self.parse_errors = 0

    # ------------------------------------------------------------- helpers
    def _token(self, nbytes: int = 8) -> str:
        if self._rng is not None:
            return f"{self._rng.getrandbits(nbytes * 8):0{nbytes * 2}x}"
        return secrets.token_hex(nbytes)

    def _branch(self) -> str:
        return MAGIC_COOKIE + self._token(8)

    def _count(self, direction: str, kind: str) -> None:
        key = (direction, kind)
        self.counters[key] = self.counters.get(key, 0) + 1

    def _via(self, transport: str) -> str:
        return f"SIP/2.0/{transport.upper()} {self.local_host}:{self.local_port}"

    def _contact(self, transport: str = "udp") -> str:
        suffix = ";transport=tcp" if transport == "tcp" else ""
        return f"<sip:callcore@{self.local_host}:{self.local_port}{suffix}>"

    def _send(self, data: bytes, addr: Addr, transport: str, kind: str) -> None:
        self._out.append(Outgoing(data, addr, transport))
        self._count("out", kind)

    def _flush_tx(self, tx: ServerTransaction | ClientTransaction) -> None:
        for data in tx.outbox:
            kind = tx.request.method if isinstance(tx, ClientTransaction) else _status_kind(data)
            self._send(data, tx.addr, tx.transport, kind)
        tx.outbox.clear()

    def _respond(
        self,
        tx: ServerTransaction,
        status: int,
        now: float,
        *,
        reason: str | None = None,
        to_tag: str | None = None,
        body: bytes = b"",
        content_type: str | None = None,
        headers: list[tuple[str, str]] | None = None,
    ) -> Response:
        extra = list(headers or [])
        extra.append(("Server", self.user_agent))
        resp = make_response(
            tx.request,
            status,
            reason,
            to_tag=to_tag,
            body=body,
            content_type=content_type,
            headers=extra,
        )
        _mark_received(resp, tx.addr)
        tx.respond(resp, now)
        self._flush_tx(tx)
        return resp

    # --------------------------------------------------------------- output
    def datagrams_to_send(self) -> list[Outgoing]:
        """What to send now, in order."""
        out, self._out = self._out, []
        return out

    def next_event(self) -> ev.Event | None:
        return self._events.popleft() if self._events else None

    def next_deadline(self) -> float | None:
        times: list[float] = []
        for stx in self._server.values():
            d = stx.next_deadline()
            if d is not None:
                times.append(d)
        for ctx in self._client.values():
            d = ctx.next_deadline()
            if d is not None:
                times.append(d)
        for call in self._calls.values():
            if call.retransmit_at is not None:
                times.append(call.retransmit_at)
                if call.give_up_at is not None:
                    times.append(call.give_up_at)
        return min(times) if times else None

    def pending_transactions(self) -> int:
        """Client transactions still waiting for a final response."""
        return sum(
            1
            for tx in self._client.values()
            if tx.state in (State.TRYING, State.CALLING, State.PROCEEDING)
        )

    def handle_timer(self, now: float) -> None:
        """Fire every timer due at ``now``."""
        for key, stx in list(self._server.items()):
            d = stx.next_deadline()
            if d is not None and now >= d:
                stx.handle_timer(now)
                self._flush_tx(stx)
            if stx.state == State.TERMINATED:
                del self._server[key]
                if stx.ack_timeout:
                    call = self._by_invite.get(key)
                    if call is not None and call.state != "ended":
                        self._end(call, "no-ack", by_remote=True)
        for ckey, ctx in list(self._client.items()):
            d = ctx.next_deadline()
            if d is not None and now >= d:
                ctx.handle_timer(now)
                self._flush_tx(ctx)
            if ctx.state == State.TERMINATED:
                del self._client[ckey]
                owner = self._client_owner.pop(ckey, None)
                if ctx.timed_out and owner is not None:
                    self._client_timeout(owner, ctx)
        for call in list(self._calls.values()):
            if call.retransmit_at is None:
                continue
            if now >= call.retransmit_at or (
                call.give_up_at is not None and now >= call.give_up_at
            ):
                self._retransmit_2xx(call, now)
        self._collect()

    def _retransmit_2xx(self, call: _Call, now: float) -> None:
        if call.give_up_at is not None and now >= call.give_up_at:
            call.retransmit_at = None
            log.info("sip.no_ack", call_id=call.ref.call_id)
            self._send_bye(call, now)
            self._end(call, "no-ack", by_remote=True)
            return
        if call.answer_2xx is not None:
            self._send(call.answer_2xx, call.addr, call.transport, "2xx")
        call.retransmit_interval = min(call.retransmit_interval * 2, self.timers.t2)
        call.retransmit_at = now + call.retransmit_interval

    def _collect(self) -> None:
        for call in list(self._calls.values()):
            if call.state != "ended":
                continue
            busy = any(owner is call for owner in self._client_owner.values())
            if call.retransmit_at is None and not busy:
                del self._calls[call.ref.id]
                if call.dialog is not None:
                    self._by_dialog.pop(_dialog_key(call.dialog), None)
                if call.server_key is not None and call.server_key not in self._server:
                    self._by_invite.pop(call.server_key, None)

    # ---------------------------------------------------------------- input
    def receive(self, data: bytes, addr: Addr, transport: str, now: float) -> None:
        """Process one datagram or framed TCP message; never raises."""
        try:
            self._receive(data, addr, transport, now)
        except Exception:  # a bug of ours must not take signalling down
            log.exception("sip.receive_failed", peer=addr, size=len(data))
            self.parse_errors += 1

    def _receive(self, data: bytes, addr: Addr, transport: str, now: float) -> None:
        try:
            msg = parse_message(data, stream=transport != "udp")
        except SipParseError as exc:
            self.parse_errors += 1
            self._count("in", "malformed")
            partial = exc.partial
            if isinstance(partial, Request) and partial.method not in ("ACK",):
                self._reply_stateless(partial, exc.status, exc.reason, addr, transport)
            log.info("sip.parse_error", peer=addr, status=exc.status, reason=exc.reason)
            return
        if isinstance(msg, Response):
            self._count("in", f"{msg.status // 100}xx")
            self._on_response(msg, addr, now)
        else:
            self._count("in", msg.method if msg.method in KNOWN_METHODS else "other")
            self._on_request(msg, addr, transport, now)

    def _reply_stateless(
        self, req: Request, status: int, reason: str, addr: Addr, transport: str
    ) -> None:
        if not req.headers.get("Via"):
            return  # nothing to route a response by: drop (RFC 3261 §8.2.6)
        resp = make_response(req, status, _reason_phrase(reason, status))
        _mark_received(resp, addr)
        self._send(bytes(resp), addr, transport, f"{status // 100}xx")

    def _validate(self, req: Request) -> tuple[int, str] | None:
        """Semantic checks of RFC 3261 §8.2 / RFC 4475 §3.1.2 and §3.3."""
        for name in MANDATORY:
            if req.headers.get(name) is None:
                return 400, f"Missing {name} header"
        for name in SINGLE:
            if req.headers.count(name) > 1:
                return 400, f"Multiple {name} headers"
        try:
            req.vias  # noqa: B018 - parse to validate
            req.from_  # noqa: B018
            to = req.to
            cseq = req.cseq
            req.contact  # noqa: B018
        except SipParseError as exc:
            return 400, exc.reason
        if cseq.method != req.method:
            return 400, f"CSeq method {cseq.method} does not match {req.method}"
        date = req.headers.get("Date")
        if date is not None and not date.strip().endswith("GMT"):
            return 400, "Date must be in GMT"
        mf = req.headers.get("Max-Forwards")
        if mf is not None and not mf.strip().isdigit():
            return 400, "Invalid Max-Forwards"
        del to
        return None

    def _tx_key(self, req: Request, method: str) -> tuple[str, ...]:
        top = req.vias[0]
        branch = top.branch or ""
        if branch.startswith(MAGIC_COOKIE) and len(branch) > len(MAGIC_COOKIE):
            return ("3261", branch, top.host, str(top.port or 5060), method)
        # RFC 2543 fallback (RFC 4475 inv2543, badbranch): match on the dialog fields
        return (
            "2543",
            req.uri,
            req.from_.tag or "",
            req.call_id,
            str(req.cseq.seq),
            str(top),
            method,
        )

    def _on_request(self, req: Request, addr: Addr, transport: str, now: float) -> None:
        problem = self._validate(req)
        if problem is not None:
            if req.method != "ACK":
                self._reply_stateless(req, problem[0], problem[1], addr, transport)
            return
        if req.method == "ACK":
            self._on_ack(req, now)
            return
        if req.method == "CANCEL":
            self._on_cancel(req, addr, transport, now)
            return
        key = self._tx_key(req, req.method)
        existing = self._server.get(key)
        if existing is not None:
            existing.on_retransmission()
            self._flush_tx(existing)
            return
        tx = ServerTransaction(key, req, addr, transport, self.timers)
        self._server[key] = tx
        uri = req.request_uri
        if not uri.is_sip and getattr(uri, "scheme", "") != "tel":
            self._respond(tx, 416, now)
            return
        if isinstance(uri, SipUri) and uri.headers:
            self._respond(tx, 400, now, reason="Headers Not Allowed In Request-URI")
            return
        required = {r.strip().lower() for r in req.headers.get_all("Require")} - self.supported
        if required:
            self._respond(tx, 420, now, headers=[("Unsupported", ", ".join(sorted(required)))])
            return
        to_tag = req.to.tag
        if to_tag is None:
            merged_key = (req.from_.tag or "", req.call_id, req.cseq.seq, req.method)
            first = self._merged.get(merged_key)
            if first is not None and first != key:
                self._respond(tx, 482, now)
                return
            self._merged[merged_key] = key
            if len(self._merged) > 4096:
                self._merged.pop(next(iter(self._merged)))
        handler = {
            "INVITE": self._on_invite,
            "BYE": self._on_bye,
            "OPTIONS": self._on_options,
            "INFO": self._on_info,
            "NOTIFY": self._on_notify,
        }.get(req.method)
        if handler is None:
            self._respond(tx, 501, now, headers=[("Allow", ALLOW)])
            return
        handler(tx, now)

    def _dialog_call(self, req: Request) -> _Call | None:
        return self._by_dialog.get((req.call_id, req.to.tag or "", req.from_.tag or ""))

    def _on_options(self, tx: ServerTransaction, now: float) -> None:
        self._respond(
            tx,
            200,
            now,
            headers=[
                ("Allow", ALLOW),
                ("Accept", ACCEPT),
                ("Accept-Encoding", "identity"),
                ("Accept-Language", "en"),
                ("Supported", ", ".join(sorted(self.supported))),
            ],
        )

    def _on_invite(self, tx: ServerTransaction, now: float) -> None:
        req = tx.request
        if req.to.tag is not None:
            self._on_reinvite(tx, now)
            return
        offer, problem = _extract_sdp(req)
        if problem is not None:
            self._respond(
                tx, problem[0], now, reason=problem[1], headers=[("Accept", "application/sdp")]
            )
            return
        accept = req.headers.get_all("Accept")
        if accept and not any(
            a.split(";")[0].strip().lower() in ("application/sdp", "application/*", "*/*")
            for a in accept
        ):
            self._respond(tx, 406, now, headers=[("Accept", "application/sdp")])
            return
        if not offer:
            self._respond(tx, 488, now, reason="SDP Offer Required")
            return
        self._next_id += 1
        ref = CallRef(self._next_id, req.call_id)
        call = _Call(ref, "uas", req, tx.addr, tx.transport, self._token(6), server_key=tx.key)
        contact = req.contact
        call.dialog = Dialog(
            call_id=req.call_id,
            local_tag=call.local_tag,
            remote_tag=req.from_.tag or "",
            local_uri=str(req.to.uri),
            remote_uri=str(req.from_.uri),
            remote_target=str(contact[0].uri) if contact else str(req.from_.uri),
            peer=tx.addr,
            transport=tx.transport,
            local_cseq=self._rng.randrange(1, 10000) if self._rng else 1,
            remote_cseq=req.cseq.seq,
            route_set=req.headers.get_all("Record-Route"),
        )
        self._calls[ref.id] = call
        self._by_invite[tx.key] = call
        self._by_dialog[_dialog_key(call.dialog)] = call
        self._respond(tx, 100, now)
        self._events.append(ev.IncomingCall(ref, req, offer, tx.addr, tx.transport))

    def _on_reinvite(self, tx: ServerTransaction, now: float) -> None:
        req = tx.request
        call = self._dialog_call(req)
        if call is None or call.dialog is None or call.state == "ended":
            self._respond(tx, 481, now)
            return
        if not call.dialog.accept_remote_cseq(req.cseq.seq):
            self._respond(tx, 500, now, reason="CSeq Out Of Order")
            return
        if call.own_reinvite is not None:
            self._respond(tx, 491, now)
            return
        if call.reinvite_tx is not None:
            self._respond(tx, 500, now, headers=[("Retry-After", "1")])
            return
        offer, problem = _extract_sdp(req)
        if problem is not None:
            self._respond(
                tx, problem[0], now, reason=problem[1], headers=[("Accept", "application/sdp")]
            )
            return
        contact = req.contact
        if contact:
            call.dialog.remote_target = str(contact[0].uri)
        call.reinvite_tx = tx.key
        self._events.append(ev.ReinviteReceived(call.ref, offer))

    def _on_ack(self, req: Request, now: float) -> None:
        key = self._tx_key(req, "INVITE")
        stx = self._server.get(key)
        if stx is not None and stx.state == State.COMPLETED:
            stx.on_ack(now)  # ACK for a non-2xx final response
            return
        call = self._dialog_call(req)
        if call is None:
            return
        if call.retransmit_at is not None:  # ACK for our 2xx
            call.retransmit_at = None
            call.give_up_at = None
            if call.state == "answered":
                call.state = "confirmed"
                self._events.append(ev.CallConfirmed(call.ref))
        self._collect()

    def _on_cancel(self, req: Request, addr: Addr, transport: str, now: float) -> None:
        key = self._tx_key(req, "CANCEL")
        existing = self._server.get(key)
        if existing is not None:
            existing.on_retransmission()
            self._flush_tx(existing)
            return
        tx = ServerTransaction(key, req, addr, transport, self.timers)
        self._server[key] = tx
        invite_key = self._tx_key(req, "INVITE")
        call = self._by_invite.get(invite_key)
        itx = self._server.get(invite_key)
        if call is None or itx is None:
            self._respond(tx, 481, now)
            return
        self._respond(tx, 200, now, to_tag=call.local_tag)
        if not call.final_sent and call.state == "early":
            call.cancelled = True
            call.final_sent = True
            self._respond(itx, 487, now, to_tag=call.local_tag)
            call.state = "ended"
            self._events.append(ev.CallCancelled(call.ref))

    def _on_bye(self, tx: ServerTransaction, now: float) -> None:
        call = self._dialog_call(tx.request)
        if call is None or call.state == "ended":
            self._respond(tx, 481, now)
            return
        self._respond(tx, 200, now)
        call.retransmit_at = None
        if call.role == "uas" and not call.final_sent:
            itx = self._server.get(call.server_key or ())
            if itx is not None:
                call.final_sent = True
                self._respond(itx, 487, now, to_tag=call.local_tag)
        self._end(call, "bye", by_remote=True)

    def _on_info(self, tx: ServerTransaction, now: float) -> None:
        req = tx.request
        call = self._dialog_call(req)
        if call is None or call.state == "ended":
            self._respond(tx, 481, now)
            return
        ctype = req.content_type
        try:
            if ctype == "application/dtmf-relay":
                digit, duration = parse_dtmf_relay(req.body)
            elif ctype == "application/dtmf":
                digit, duration = parse_dtmf(req.body), 250
            elif not req.body:
                self._respond(tx, 200, now)  # keep-alive INFO
                return
            else:
                self._respond(
                    tx, 415, now, headers=[("Accept", "application/dtmf-relay, application/dtmf")]
                )
                return
        except DtmfBodyError as exc:
            self._respond(tx, 400, now, reason=_reason_phrase(str(exc), 400))
            return
        self._respond(tx, 200, now)
        self._events.append(ev.DtmfInfo(call.ref, digit, duration))

    def _on_notify(self, tx: ServerTransaction, now: float) -> None:
        req = tx.request
        call = self._dialog_call(req)
        if call is None:
            self._respond(tx, 481, now)
            return
        self._respond(tx, 200, now)
        event = (req.headers.get("Event") or "").split(";")[0].strip().lower()
        if event == "refer" and req.body.startswith(b"SIP/2.0 "):
            code = req.body[8:11]
            if code.isdigit():
                self._events.append(ev.ReferStatus(call.ref, int(code)))

    # -------------------------------------------------------- UAS control
    def _uas(self, ref: CallRef) -> tuple[_Call, ServerTransaction] | None:
        call = self._calls.get(ref.id)
        if call is None or call.role != "uas" or call.final_sent or call.cancelled:
            return None
        tx = self._server.get(call.server_key or ())
        if tx is None:
            return None
        return call, tx

    def ring(self, ref: CallRef, now: float) -> bool:
        """Send 180 Ringing; False if the call is gone (cancelled)."""
        found = self._uas(ref)
        if found is None:
            return False
        call, tx = found
        self._respond(
            tx,
            180,
            now,
            to_tag=call.local_tag,
            headers=[("Contact", self._contact(call.transport))],
        )
        return True

    def answer(self, ref: CallRef, sdp: bytes, now: float) -> bool:
        """Send 200 OK with ``sdp``; False (and nothing sent) if the call was cancelled."""
        found = self._uas(ref)
        if found is None:
            return False
        call, tx = found
        resp = self._respond(
            tx,
            200,
            now,
            to_tag=call.local_tag,
            body=sdp,
            content_type="application/sdp",
            headers=[
                ("Contact", self._contact(call.transport)),
                ("Allow", ALLOW),
                ("Supported", ""),
            ],
        )
        call.final_sent = True
        call.state = "answered"
        call.answer_2xx = bytes(resp)
        if call.transport == "udp":
            call.retransmit_interval = self.timers.t1
            call.retransmit_at = now + self.timers.t1
        else:
            call.retransmit_interval = self.timers.t2
            call.retransmit_at = now + 64 * self.timers.t1  # only the give-up timer
        call.give_up_at = now + 64 * self.timers.t1
        return True

    def reject(
        self,
        ref: CallRef,
        status: int,
        now: float,
        reason: str | None = None,
        headers: list[tuple[str, str]] | None = None,
    ) -> bool:
        """Final error response to an unanswered INVITE."""
        if status < 300:
            raise SipUsageError(f"reject() needs a status >= 300, got {status}")
        found = self._uas(ref)
        if found is None:
            return False
        call, tx = found
        self._respond(tx, status, now, reason=reason, to_tag=call.local_tag, headers=headers)
        call.final_sent = True
        call.state = "ended"
        return True

    def answer_reinvite(self, ref: CallRef, sdp: bytes, now: float) -> bool:
        call = self._calls.get(ref.id)
        if call is None or call.reinvite_tx is None or call.dialog is None:
            return False
        tx = self._server.get(call.reinvite_tx)
        call.reinvite_tx = None
        if tx is None:
            return False
        self._respond(
            tx,
            200,
            now,
            to_tag=call.dialog.local_tag,
            body=sdp,
            content_type="application/sdp",
            headers=[("Contact", self._contact(call.transport))],
        )
        return True

    def reject_reinvite(self, ref: CallRef, status: int, now: float) -> bool:
        call = self._calls.get(ref.id)
        if call is None or call.reinvite_tx is None:
            return False
        tx = self._server.get(call.reinvite_tx)
        call.reinvite_tx = None
        if tx is None:
            return False
        self._respond(tx, status, now)
        return True

    # ------------------------------------------------------------ hang-up
    def hangup(self, ref: CallRef, now: float) -> bool:
        """End the call from our side.

        Confirmed or answered: BYE. UAS not yet answered: 480. UAC early:
        CANCEL (sent once a provisional response has arrived, RFC 3261 §9.1).
        Emits ``CallEnded(reason="local")`` except for a pending UAC CANCEL,
        which ends with ``CallFailed(487)``.
        """
        call = self._calls.get(ref.id)
        if call is None or call.state == "ended":
            return False
        if call.role == "uas" and not call.final_sent:
            return self.reject(ref, 480, now) and self._end(call, "local", by_remote=False)
        if call.role == "uac" and call.state == "early":
            return self.cancel(ref, now)
        self._send_bye(call, now)
        call.retransmit_at = None
        return self._end(call, "local", by_remote=False)

    def _send_bye(self, call: _Call, now: float) -> None:
        if call.dialog is None:
            return
        self._request_in_dialog(call, "BYE", now)

    def _request_in_dialog(
        self,
        call: _Call,
        method: str,
        now: float,
        *,
        body: bytes = b"",
        content_type: str | None = None,
        extra: list[tuple[str, str]] | None = None,
    ) -> ClientTransaction:
        assert call.dialog is not None
        branch = self._branch()
        req = call.dialog.request(
            method,
            via=self._via(call.transport),
            contact=self._contact(call.transport),
            branch=branch,
            body=body,
            content_type=content_type,
            extra=[("User-Agent", self.user_agent), *(extra or [])],
        )
        return self._start_client(req, branch, call, now)

    def _start_client(
        self, req: Request, branch: str, call: _Call, now: float
    ) -> ClientTransaction:
        tx = ClientTransaction(branch, req, call.addr, call.transport, self.timers, now)
        key = (branch, req.method)
        self._client[key] = tx
        self._client_owner[key] = call
        self._flush_tx(tx)
        return tx

    def _end(self, call: _Call, reason: str, *, by_remote: bool) -> bool:
        call.state = "ended"
        self._events.append(ev.CallEnded(call.ref, reason, by_remote))
        self._collect()
        return True

    # ----------------------------------------------------------------- UAC
    def invite(
        self,
        target: str,
        *,
        dest: Addr,
        transport: str = "udp",
        from_uri: str,
        sdp: bytes,
        now: float,
        credentials: tuple[str, str] | None = None,
        headers: list[tuple[str, str]] | None = None,
    ) -> CallRef:
        """Place a call to ``target`` (Request-URI) via ``dest``."""
        self._next_id += 1
        call_id = f"{self._token(10)}@{self.local_host}"
        ref = CallRef(self._next_id, call_id)
        call = _Call(
            ref,
            "uac",
            make_request("INVITE", target, []),
            dest,
            transport,
            self._token(6),
            credentials=credentials,
            from_uri=from_uri,
            target=target,
            sdp=sdp,
            extra_headers=list(headers or []),
        )
        self._calls[ref.id] = call
        self._send_invite(call, now, cseq=1, auth=None)
        return ref

    def _send_invite(
        self, call: _Call, now: float, *, cseq: int, auth: tuple[str, str] | None
    ) -> None:
        branch = self._branch()
        hdrs = [
            ("Via", f"{self._via(call.transport)};branch={branch};rport"),
            ("Max-Forwards", "70"),
            ("From", f"<{call.from_uri}>;tag={call.local_tag}"),
            ("To", f"<{call.target}>"),
            ("Call-ID", call.ref.call_id),
            ("CSeq", f"{cseq} INVITE"),
            ("Contact", self._contact(call.transport)),
            ("Allow", ALLOW),
            ("User-Agent", self.user_agent),
            *call.extra_headers,
        ]
        if auth is not None:
            hdrs.append(auth)
        hdrs.append(("Content-Type", "application/sdp"))
        req = make_request("INVITE", call.target, hdrs, call.sdp)
        call.invite = req
        call.branch = branch
        call.provisional_seen = False
        self._start_client(req, branch, call, now)

    def cancel(self, ref: CallRef, now: float) -> bool:
        """CANCEL our unanswered INVITE (queued until the first 1xx)."""
        call = self._calls.get(ref.id)
        if call is None or call.role != "uac" or call.state != "early":
            return False
        call.cancelled = True
        if call.provisional_seen:
            self._send_cancel(call, now)
        else:
            call.cancel_pending = True
        return True

    def _send_cancel(self, call: _Call, now: float) -> None:
        inv = call.invite
        hdrs = [
            ("Via", inv.headers.get("Via") or ""),
            ("Max-Forwards", "70"),
            ("From", inv.headers.get("From") or ""),
            ("To", inv.headers.get("To") or ""),
            ("Call-ID", inv.call_id),
            ("CSeq", f"{inv.cseq.seq} CANCEL"),
            ("User-Agent", self.user_agent),
        ]
        req = make_request("CANCEL", inv.uri, hdrs)
        self._start_client(req, call.branch, call, now)

    def refer(self, ref: CallRef, target_uri: str, now: float) -> bool:
        """Blind transfer: REFER the peer to ``target_uri`` (events: ReferStatus)."""
        call = self._calls.get(ref.id)
        if call is None or call.dialog is None or call.state not in ("answered", "confirmed"):
            return False
        self._request_in_dialog(call, "REFER", now, extra=[("Refer-To", f"<{target_uri}>")])
        return True

    def reinvite(self, ref: CallRef, sdp: bytes, now: float) -> bool:
        """Send our own re-INVITE (hold/unhold); answer comes as ReinviteAnswered."""
        call = self._calls.get(ref.id)
        if call is None or call.dialog is None or call.state not in ("answered", "confirmed"):
            return False
        if call.own_reinvite is not None or call.reinvite_tx is not None:
            return False
        tx = self._request_in_dialog(call, "INVITE", now, body=sdp, content_type="application/sdp")
        call.own_reinvite = tx.branch
        return True

    def send_info_dtmf(self, ref: CallRef, digit: str, duration_ms: int, now: float) -> bool:
        from media.dtmf.info import build_dtmf_relay

        call = self._calls.get(ref.id)
        if call is None or call.dialog is None or call.state not in ("answered", "confirmed"):
            return False
        self._request_in_dialog(
            call,
            "INFO",
            now,
            body=build_dtmf_relay(digit, duration_ms),
            content_type="application/dtmf-relay",
        )
        return True

    def _on_response(self, resp: Response, addr: Addr, now: float) -> None:
        try:
            vias = resp.vias
            cseq = resp.cseq
        except SipParseError:
            return
        if not vias or not vias[0].branch:
            return
        key = (vias[0].branch, cseq.method)
        tx = self._client.get(key)
        call = self._client_owner.get(key)
        if tx is None or call is None:
            self._stray_response(resp, now)
            return
        ack = None
        if tx.is_invite and resp.status >= 300:
            ack = bytes(_ack_for_error(tx.request, resp))
        if not tx.on_response(resp, now, ack):
            self._flush_tx(tx)
            return
        self._flush_tx(tx)
        if tx.state in (State.COMPLETED, State.TERMINATED) and not tx.is_invite:
            self._client.pop(key, None)
            self._client_owner.pop(key, None)
        method = cseq.method
        if method == "INVITE" and call.own_reinvite == tx.branch:
            if resp.status >= 200:
                call.own_reinvite = None
                if resp.status < 300:
                    self._ack_2xx(call, resp, cseq.seq)
                self._events.append(
                    ev.ReinviteAnswered(
                        call.ref, resp.status, resp.body if resp.status < 300 else None
                    )
                )
            return
        if method == "INVITE":
            self._on_invite_response(call, tx, resp, now)
        elif method == "REFER":
            self._events.append(ev.ReferStatus(call.ref, resp.status))
        self._collect()

    def _on_invite_response(
        self, call: _Call, tx: ClientTransaction, resp: Response, now: float
    ) -> None:
        status = resp.status
        if status < 200:
            call.provisional_seen = True
            if call.cancel_pending:
                call.cancel_pending = False
                self._send_cancel(call, now)
            self._events.append(ev.CallProgress(call.ref, status, resp.body or None))
            return
        if status < 300:
            first = call.state == "early"
            self._establish_uac(call, resp, tx)
            self._ack_2xx(call, resp, resp.cseq.seq)
            if not first:
                return
            if call.cancelled:  # 200 crossed our CANCEL: the call must still end
                self._send_bye(call, now)
                self._end(call, "local", by_remote=False)
                return
            call.state = "confirmed"
            self._events.append(ev.CallAnswered(call.ref, resp.body))
            return
        if status in (401, 407) and call.credentials and call.auth_tries < 2:
            header = "WWW-Authenticate" if status == 401 else "Proxy-Authenticate"
            value = resp.headers.get(header)
            if value is not None:
                try:
                    challenge = Challenge.parse(value)
                except ValueError:
                    challenge = None
                if challenge is not None and (call.auth_tries == 0 or challenge.stale):
                    call.auth_tries += 1
                    user, password = call.credentials
                    cred = authorization(
                        challenge,
                        user,
                        password,
                        "INVITE",
                        call.target,
                        cnonce=self._token(8),
                        nc=1,
                    )
                    name = "Authorization" if status == 401 else "Proxy-Authorization"
                    self._send_invite(call, now, cseq=tx.request.cseq.seq + 1, auth=(name, cred))
                    return
        call.state = "ended"
        self._events.append(ev.CallFailed(call.ref, status, resp.reason))

    def _establish_uac(self, call: _Call, resp: Response, tx: ClientTransaction) -> None:
        if call.dialog is not None:
            return
        contact = resp.contact
        rr = resp.headers.get_all("Record-Route")
        call.dialog = Dialog(
            call_id=call.ref.call_id,
            local_tag=call.local_tag,
            remote_tag=resp.to.tag or "",
            local_uri=call.from_uri,
            remote_uri=call.target,
            remote_target=str(contact[0].uri) if contact else call.target,
            peer=call.addr,
            transport=call.transport,
            local_cseq=tx.request.cseq.seq,
            route_set=list(reversed(rr)),
        )
        self._by_dialog[_dialog_key(call.dialog)] = call

    def _ack_2xx(self, call: _Call, resp: Response, seq: int) -> None:
        if call.dialog is None:
            return
        ack = call.dialog.request(
            "ACK",
            via=self._via(call.transport),
            contact=self._contact(call.transport),
            branch=self._branch(),
            cseq=seq,
        )
        data = bytes(ack)
        call.ack = data
        self._send(data, call.addr, call.transport, "ACK")

    def _stray_response(self, resp: Response, now: float) -> None:
        """A 2xx retransmission after our INVITE transaction ended: ACK it again."""
        if resp.cseq.method != "INVITE" or not 200 <= resp.status < 300:
            return
        try:
            key = (resp.call_id, resp.from_.tag or "", resp.to.tag or "")
        except SipParseError:
            return
        call = self._by_dialog.get(key)
        if call is not None and call.ack is not None:
            self._send(call.ack, call.addr, call.transport, "ACK")

    def _client_timeout(self, call: _Call, tx: ClientTransaction) -> None:
        if tx.is_invite and call.state == "early":
            call.state = "ended"
            self._events.append(ev.CallFailed(call.ref, 408, "Request Timeout"))
        elif tx.method == "BYE":
            log.info("sip.bye_timeout", call_id=call.ref.call_id)


def _dialog_key(d: Dialog) -> tuple[str, str, str]:
    return (d.call_id, d.local_tag, d.remote_tag)


def _status_kind(data: bytes) -> str:
    if data.startswith(b"SIP/2.0 ") and len(data) > 9:
        return f"{chr(data[8])}xx"
    return "other"


def _reason_phrase(reason: str, status: int) -> str:
    text = reason.replace("\r", " ").replace("\n", " ")
    text = "".join(c for c in text if c.isprintable())
    return text[:100] or str(status)


def _mark_received(resp: Response, addr: Addr) -> None:
    """RFC 3581: record where the request really came from in the top Via."""
    vias = resp.headers.get_all("Via")
    if not vias:
        return
    top = vias[0]
    try:
        from media.sip.headers import Via

        parsed = Via.parse(top)
    except SipParseError:
        return
    params = dict(parsed.params)
    if parsed.host != addr[0]:
        params["received"] = addr[0]
    if "rport" in params:
        params["rport"] = str(addr[1])
    parsed.params = params
    rest = vias[1:]
    resp.headers.remove("Via")
    resp.headers.add("Via", str(parsed))
    for v in rest:
        resp.headers.add("Via", v)


def _extract_sdp(req: Request) -> tuple[bytes, tuple[int, str] | None]:
    """The SDP offer of an INVITE, from a plain or multipart/mixed body."""
    if not req.body:
        return b"", None
    ctype = req.content_type
    if ctype == "application/sdp":
        return req.body, None
    if ctype == "multipart/mixed":
        raw = req.headers.get("Content-Type") or ""
        boundary = ""
        for part in raw.split(";")[1:]:
            k, _, v = part.strip().partition("=")
            if k.lower() == "boundary":
                boundary = v.strip('"')
        if boundary:
            for chunk in req.body.split(b"--" + boundary.encode()):
                head, sep, body = chunk.partition(b"\r\n\r\n")
                if sep and b"application/sdp" in head.lower():
                    return body.rstrip(b"\r\n") + b"\r\n", None
    return b"", (415, "Unsupported Media Type")


def _ack_for_error(invite: Request, resp: Response) -> Request:
    """The ACK for a non-2xx final response (RFC 3261 §17.1.1.3): same branch."""
    hdrs = [
        ("Via", invite.headers.get("Via") or ""),
        ("Max-Forwards", "70"),
        ("From", invite.headers.get("From") or ""),
        ("To", resp.headers.get("To") or ""),
        ("Call-ID", invite.call_id),
        ("CSeq", f"{invite.cseq.seq} ACK"),
    ]
    return make_request("ACK", invite.uri, hdrs)


__all__ = ["NameAddr", "UserAgent"]
