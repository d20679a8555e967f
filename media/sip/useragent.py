"""The SIP user-agent core (RFC 3261 §8, §12-§15): UAS and UAC behaviour, sans I/O.

Inputs: ``receive(data, addr, transport, now)``, ``handle_timer(now)`` and the
call-control methods (``ring``, ``answer``, ``reject``, ``hangup``,
``invite``, ``cancel``, ``reinvite``, ``refer``, ``send_info_dtmf`` ...).
Outputs: ``datagrams_to_send()``, ``next_event()``, ``next_deadline()``,
and ``counters`` for metrics. Nothing here reads a clock or touches a socket.

Rules it keeps:

* every request gets exactly one final response (through its server
  transaction, so retransmissions are absorbed); a CANCELled INVITE gets 487
  and never a 200: ``ring``/``answer`` after the CANCEL return False;
* responses go back to the address and transport the request came from and
  the top Via gets ``received``/``rport`` (RFC 3581; ``force_rport``, the
  default, does it for every request). With ``force_rport=False`` the Via
  (received, sent-by port) is followed, but only to a loopback address or the
  source host: nothing is ever sent to a host merely named in a message;
* requests we originate go to the ``dest`` given to ``invite``; in-dialog
  requests go to the dialog's peer address (symmetric signalling, see
  :mod:`media.sip.dialog`);
* a malformed request is answered 400 (505 for a version other than 2.0)
  when enough of it parsed to build an answer, otherwise dropped and counted
  in ``parse_errors``; a malformed response is dropped. No input raises out
  of ``receive``.

Checks on a new request, in this order (RFC 3261 §8.2): header syntax,
mandatory headers and CSeq method (400, reason naming the header);
method (501 with Allow); Max-Forwards 0 (483, except OPTIONS which is
answered, RFC 4475 zeromf); Request-URI scheme other than sip/sips/tel
(416); a To tag without a matching dialog (481); a merged request (482);
Require with an extension we do not support (420 with Unsupported; never
for CANCEL or ACK); then the method (415/406 for an INVITE body we cannot
take, 500 for an out-of-order CSeq, 491/500 for re-INVITE conflicts).

Methods we do not implement (REGISTER, UPDATE, PRACK, SUBSCRIBE, MESSAGE,
PUBLISH, unknown ones) get 501 with Allow. A REFER sent to us gets 603: we
transfer others, we are not transferred.
"""

from __future__ import annotations

import ipaddress
import random
import secrets
from collections import deque
from dataclasses import dataclass, field
from enum import Enum

import structlog

from media.dtmf.info import DtmfBodyError, build_dtmf_relay, parse_dtmf, parse_dtmf_relay
from media.sip import events as ev
from media.sip.auth import authorization, choose_challenge
from media.sip.dialog import Dialog, DialogId
from media.sip.errors import SipParseError, SipUsageError
from media.sip.events import CallRef, Outgoing
from media.sip.headers import MAGIC_COOKIE, Via, split_list
from media.sip.message import Headers, Request, Response, make_request, make_response
from media.sip.message import parse_message as parse_sip
from media.sip.timers import TimerConfig
from media.sip.transaction import (
    ClientInviteTransaction,
    ClientTransaction,
    ServerInviteTransaction,
    ServerTransaction,
    TransactionKey,
    TransactionLayer,
)

log = structlog.get_logger("media.sip.useragent")

Addr = tuple[str, int]
ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, NOTIFY, REFER"
HANDLED = frozenset({"INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "INFO", "NOTIFY", "REFER"})
COUNTED = HANDLED | {"REGISTER", "UPDATE", "PRACK", "SUBSCRIBE", "MESSAGE", "PUBLISH"}
ACCEPT = "application/sdp, application/dtmf-relay, application/dtmf"
ACCEPT_INFO = "application/dtmf-relay, application/dtmf"
URI_SCHEMES = frozenset({"sip", "sips", "tel"})

__all__ = ["ALLOW", "UserAgent", "extract_sdp"]


class _Phase(Enum):
    INCOMING = "incoming"  # UAS: INVITE received, no final response yet
    CALLING = "calling"  # UAC: INVITE sent, no final response yet
    ANSWERED = "answered"  # UAS: 200 sent, waiting for the ACK
    CONFIRMED = "confirmed"
    ENDED = "ended"


@dataclass
class _Pending2xx:
    """A 200 to an INVITE the UA core retransmits until its ACK (§13.3.1.4)."""

    data: bytes
    seq: int
    initial: bool
    interval: float
    next_at: float | None  # None over TCP: only the give-up timer runs
    give_up_at: float


@dataclass
class _Call:
    ref: CallRef
    role: str  # "uas" or "uac"
    addr: Addr
    transport: str
    local_tag: str
    invite: Request
    phase: _Phase
    dialog: Dialog | None = None
    invite_tx: ServerInviteTransaction | ClientInviteTransaction | None = None
    silenced: bool = False  # hangup() was called: no more events
    cancelled: bool = False
    pending_2xx: _Pending2xx | None = None
    bye_after_ack: bool = False
    credentials: tuple[str, str] | None = None
    provisional: bool = False
    cancel_pending: bool = False
    cancel_deadline: float | None = None
    acks: dict[int, bytes] = field(default_factory=dict)  # INVITE CSeq -> our 2xx ACK
    in_flight: int = 0  # our client transactions still alive for this call
    reinvite_in: ServerInviteTransaction | None = None
    reinvite_out: ClientInviteTransaction | None = None

    @property
    def live(self) -> bool:
        return self.phase is not _Phase.ENDED


def extract_sdp(req: Request | Response) -> tuple[bytes | None, str]:
    """The SDP of a message body: (sdp, "") or (None, why not).

    ``b""`` for no body; the ``application/sdp`` part of a ``multipart/mixed``
    body (RFC 5621); None with a reason for any other body.
    """
    if not req.body:
        return b"", ""
    ctype = req.content_type
    if ctype is None:
        return None, "body without Content-Type"
    if ctype == "application/sdp":
        return req.body, ""
    if ctype != "multipart/mixed":
        return None, f"Content-Type {ctype} is not application/sdp"
    boundary = ""
    for param in (req.headers.get("Content-Type") or "").split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "boundary":
            boundary = value.strip().strip('"')
    if not boundary:
        return None, "multipart/mixed without boundary"
    delimiter = b"--" + boundary.encode("utf-8", "replace")
    for part in req.body.split(delimiter)[1:]:
        if part.startswith(b"--"):
            break  # close delimiter
        head, sep, content = part.partition(b"\r\n\r\n")
        if not sep:
            head, sep, content = part.partition(b"\n\n")
        for line in head.splitlines():
            hname, _, hvalue = line.partition(b":")
            if hname.strip().lower() in (b"content-type", b"c"):
                media_type = hvalue.split(b";")[0].strip().lower()
                if media_type == b"application/sdp" and sep:
                    # the line break before a delimiter belongs to it (RFC 2046 §5.1.1)
                    end = (
                        -2 if content.endswith(b"\r\n") else -1 if content.endswith(b"\n") else None
                    )
                    return content[:end], ""
    return None, "multipart/mixed body without an application/sdp part"


def _phrase(text: str) -> str:
    """A reason phrase from free text: one line of printable characters, at most 120."""
    clean = "".join(c if c.isprintable() else " " for c in text)
    return clean[:120].strip() or "Bad Request"


def _is_safe_host(host: str, source: Addr) -> bool:
    if host == source[0]:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host.lower() == "localhost"


def _kind_of(data: bytes) -> str:
    """Counter label of an outgoing message: its method, or its response class."""
    if data.startswith(b"SIP/2.0 ") and len(data) > 9:
        return f"{chr(data[8])}xx"
    method = data[: data.find(b" ")].decode("ascii", "replace")
    return method if method in COUNTED else "other"


class UserAgent:
    """The UA core (see the module docstring for the rules it keeps).

    Construction takes the address we advertise in Via and Contact
    (``local_host``/``local_port``, which the shell may update after binding),
    the timer values, the option tags we support (a ``Require`` outside them
    gets 420) and an optional ``random.Random`` for reproducible tags,
    branches and Call-IDs (``secrets`` otherwise).
    """

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
        self.timers = TimerConfig(t1, t2, t4)
        self.supported = frozenset(t.lower() for t in supported_extensions)
        self.force_rport = force_rport
        self._rng = rng
        self._outbox: list[Outgoing] = []
        self.layer = TransactionLayer(self.timers, self._outbox)
        self._events: deque[ev.Event] = deque()
        self._calls: dict[int, _Call] = {}
        self._dialogs: dict[DialogId, _Call] = {}
        self._by_invite: dict[TransactionKey, _Call] = {}
        self._owners: dict[TransactionKey, tuple[_Call, str]] = {}
        self._auth_rounds: dict[TransactionKey, int] = {}
        self._timed: set[int] = set()  # calls with a 2xx retransmission or a CANCEL give-up
        self._ending: set[int] = set()  # calls to look at: over, maybe forgettable
        self._next_id = 0
        self.counters: dict[tuple[str, str], int] = {}
        """Messages by (direction "in"/"out", method or response class "2xx"; "malformed")."""
        self.parse_errors = 0
        self.dropped = 0
        self.internal_errors = 0

    # ================================================================ outputs
    def datagrams_to_send(self) -> list[Outgoing]:
        """Everything to send now, in order (and counted in ``counters``)."""
        out = list(self._outbox)
        self._outbox.clear()
        for item in out:
            self._count("out", _kind_of(item.data))
        return out

    def next_event(self) -> ev.Event | None:
        """The next event for the application, or None."""
        return self._events.popleft() if self._events else None

    def next_deadline(self) -> float | None:
        """When ``handle_timer`` must run next (None: no timer running)."""
        best = self.layer.next_deadline()
        for call_id in list(self._timed):
            call = self._calls.get(call_id)
            times = self._call_deadlines(call) if call is not None else []
            if not times:
                self._timed.discard(call_id)
            elif best is None or min(times) < best:
                best = min(times)
        return best

    def pending_transactions(self) -> int:
        """Our requests still waiting for a final response (used at shutdown)."""
        return self.layer.pending_client()

    def call_state(self, ref: CallRef) -> str | None:
        """The call's phase (incoming, calling, answered, confirmed, ended), None if unknown."""
        call = self._calls.get(ref.id)
        return call.phase.value if call is not None else None

    # ================================================================ helpers
    def _token(self, nbytes: int = 8) -> str:
        if self._rng is not None:
            return f"{self._rng.getrandbits(nbytes * 8):0{nbytes * 2}x}"
        return secrets.token_hex(nbytes)

    def _branch(self) -> str:
        return MAGIC_COOKIE + self._token(8)

    def _count(self, direction: str, kind: str) -> None:
        key = (direction, kind)
        self.counters[key] = self.counters.get(key, 0) + 1

    @property
    def _sent_by(self) -> str:
        return f"{self.local_host}:{self.local_port}"

    def _contact(self, transport: str) -> str:
        suffix = ";transport=tcp" if transport == "tcp" else ""
        return f"<sip:callcore@{self.local_host}:{self.local_port}{suffix}>"

    def _emit(self, call: _Call, event: ev.Event) -> None:
        if not call.silenced:
            self._events.append(event)

    def _send(self, data: bytes, addr: Addr, transport: str) -> None:
        self._outbox.append(Outgoing(data, addr, transport))

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
    ) -> Response | None:
        """Answer through ``tx``; None (nothing sent) if it already has its final answer."""
        if tx.final_sent:
            return None
        if status > 100 and to_tag is None:
            to_tag = self._token(6)
        resp = make_response(
            tx.request,
            status,
            reason,
            to_tag=to_tag if status != 100 else None,
            body=body,
            content_type=content_type,
            headers=[*(headers or []), ("Server", self.user_agent)],
        )
        try:
            tx.send_response(resp, now)
        except SipUsageError:
            return None
        return resp

    # ================================================================== input
    def receive(self, data: bytes, addr: Addr, transport: str, now: float) -> None:
        """Process one datagram or one framed TCP message from ``addr``; never raises.

        ``transport`` is "udp" or "tcp" (over TCP, Content-Length is
        mandatory and no retransmission timers run).
        """
        transport = transport.lower()
        try:
            self._receive(data, addr, transport, now)
        except Exception:  # a bug of ours must not take signalling down; counted
            self.internal_errors += 1
            log.exception("sip.receive_failed", peer=addr, size=len(data))
        self._after_input(now)

    def _after_input(self, now: float) -> None:
        for tx in self.layer.sweep():
            self._transaction_ended(tx, now)
        self._collect()

    def _receive(self, data: bytes, addr: Addr, transport: str, now: float) -> None:
        try:
            msg = parse_sip(data, stream=transport != "udp")
            msg.validate()  # every header we rely on, parsed once (RFC 3261 §8.2, §8.1.3)
        except SipParseError as exc:
            self.parse_errors += 1
            self._count("in", "malformed")
            partial = exc.partial
            if isinstance(partial, Request) and partial.method != "ACK":
                self._reply_stateless(partial, exc.status, exc.reason, addr, transport)
            else:
                self.dropped += 1  # a response or an ACK is never answered
            log.info("sip.parse_error", peer=addr, status=exc.status, reason=exc.reason)
            return
        if isinstance(msg, Response):
            self._count("in", f"{msg.status // 100}xx")
            self._on_response(msg, now)
        else:
            self._count("in", msg.method if msg.method in COUNTED else "other")
            self._on_request(msg, addr, transport, now)

    def _reply_stateless(
        self, req: Request, status: int, reason: str, addr: Addr, transport: str
    ) -> None:
        """Answer a request we could not take (no transaction): to its source, if it has a Via."""
        if not req.headers.get("Via"):
            self.dropped += 1  # nothing to route a response by (§8.2.6)
            return
        self._stamp_via(req, addr)
        resp = make_response(
            req,
            status,
            _phrase(reason),
            to_tag=self._token(6),
            headers=[("Server", self.user_agent)],
        )
        self._send(bytes(resp), addr, transport)

    def _reply_addr(self, req: Request, addr: Addr, transport: str) -> Addr:
        """§18.2.2 / RFC 3581, restricted to the source host or loopback (module docstring)."""
        if self.force_rport or transport != "udp":
            return addr
        top = req.vias[0]
        if "rport" in top.params:
            return addr
        host = top.params.get("received") or top.host
        port = top.port or 5060
        return (host, port) if _is_safe_host(host, addr) else addr

    def _stamp_via(self, req: Request, addr: Addr) -> None:
        """Add received= and rport= to the top Via (§18.2.1, RFC 3581)."""
        items = req.headers.items()
        for i, (name, value) in enumerate(items):
            if name.lower() not in ("via", "v"):
                continue
            parts = split_list(value)
            try:
                top = Via.parse(parts[0])
            except SipParseError:
                return
            params = [
                p.strip()
                for p in parts[0].split(";")[1:]
                if p.split("=")[0].strip().lower() not in ("received", "rport")
            ]
            with_rport = self.force_rport or "rport" in top.params
            if with_rport or top.host != addr[0]:
                params.append(f"received={addr[0]}")
            if with_rport:
                params.append(f"rport={addr[1]}")
            parts[0] = ";".join([parts[0].split(";")[0].rstrip(), *params])
            items[i] = (name, ", ".join(parts))
            req.headers = Headers(items)
            return

    # -------------------------------------------------------------- requests
    def _on_request(self, req: Request, addr: Addr, transport: str, now: float) -> None:
        reply_addr = self._reply_addr(req, addr, transport)
        self._stamp_via(req, addr)
        match = self.layer.receive_request(req, reply_addr, transport, now)
        if not match.pass_up:
            return
        if req.method == "ACK":
            self._on_ack(req, now)
            return
        tx = match.tx
        if tx is None:
            return
        try:
            self._dispatch(tx, now)
        except SipParseError as exc:  # a header read late (Require, Event ...) is malformed
            self._respond(tx, exc.status, now, reason=_phrase(exc.reason))

    def _dispatch(self, tx: ServerTransaction, now: float) -> None:
        req = tx.request
        method = req.method
        if method not in HANDLED:
            self._respond(tx, 501, now, headers=[("Allow", ALLOW)])
            return
        if method == "CANCEL":
            self._on_cancel(tx, now)
            return
        if req.max_forwards == 0 and method != "OPTIONS":
            self._respond(tx, 483, now)
            return
        scheme = req.request_uri.scheme.lower()
        if scheme not in URI_SCHEMES:
            self._respond(tx, 416, now)
            return
        call: _Call | None = None
        if req.to.tag is not None:
            call = self._dialogs.get(DialogId(req.call_id, req.to.tag, req.from_.tag or ""))
            if call is None or not call.live:
                self._respond(tx, 481, now)
                return
        elif self.layer.is_merged(tx):
            self._respond(tx, 482, now)
            return
        unsupported = [t for t in req.require if t.lower() not in self.supported]
        if unsupported:
            self._respond(tx, 420, now, headers=[("Unsupported", ", ".join(unsupported))])
            return
        if method == "OPTIONS":
            self._on_options(tx, now)
        elif method == "INVITE":
            if call is None:
                self._on_invite(tx, now)
            else:
                self._on_reinvite(tx, call, now)
        elif call is None:  # BYE, INFO, NOTIFY, REFER need a dialog
            status = 603 if method == "REFER" else 481
            self._respond(tx, status, now)
        elif not call.dialog or not call.dialog.accept_remote_seq(req.cseq.seq):
            self._respond(tx, 500, now, reason="CSeq Out Of Order")
        elif method == "BYE":
            self._on_bye(tx, call, now)
        elif method == "INFO":
            self._on_info(tx, call, now)
        elif method == "NOTIFY":
            self._on_notify(tx, call, now)
        else:
            self._respond(tx, 603, now, reason="Transfer Not Accepted")

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

    def _offer_problem(self, tx: ServerTransaction, now: float) -> bytes | None:
        """The SDP offer of an INVITE, or None after answering 415/406/400."""
        req = tx.request
        offer, why = extract_sdp(req)
        if offer is None:
            self._respond(
                tx,
                415,
                now,
                reason=_phrase(f"Unsupported Media Type: {why}"),
                headers=[("Accept", "application/sdp")],
            )
            return None
        encodings = [e.strip().lower() for e in req.headers.get_all("Content-Encoding")]
        if any(e not in ("", "identity") for e in encodings):
            self._respond(tx, 415, now, headers=[("Accept-Encoding", "identity")])
            return None
        accept = [a.split(";")[0].strip().lower() for a in req.headers.get_all("Accept")]
        if accept and not {"application/sdp", "application/*", "*/*"} & set(accept):
            self._respond(tx, 406, now, headers=[("Accept", "application/sdp")])
            return None
        return offer

    def _on_invite(self, tx: ServerTransaction, now: float) -> None:
        req = tx.request
        if not isinstance(tx, ServerInviteTransaction):
            return
        offer = self._offer_problem(tx, now)
        if offer is None:
            return
        self._next_id += 1
        ref = CallRef(self._next_id, req.call_id)
        local_tag = self._token(6)
        dialog = Dialog.for_uas(
            req, local_tag=local_tag, local_seq=0, peer=tx.addr, transport=tx.transport
        )
        call = _Call(ref, "uas", tx.addr, tx.transport, local_tag, req, _Phase.INCOMING, dialog, tx)
        self._calls[ref.id] = call
        self._dialogs[dialog.id] = call
        self._by_invite[tx.key] = call
        self._respond(tx, 100, now)
        self._events.append(ev.IncomingCall(ref, req, offer, tx.addr, tx.transport))

    def _on_reinvite(self, tx: ServerTransaction, call: _Call, now: float) -> None:
        req = tx.request
        dialog = call.dialog
        if not isinstance(tx, ServerInviteTransaction) or dialog is None:
            return
        if not dialog.accept_remote_seq(req.cseq.seq):
            self._respond(tx, 500, now, reason="CSeq Out Of Order")
            return
        if call.reinvite_out is not None or call.phase is _Phase.CALLING:
            self._respond(tx, 491, now)  # glare: our own INVITE is in progress (§14.2)
            return
        if call.reinvite_in is not None or call.phase is _Phase.INCOMING:
            retry = str(self._rng.randint(1, 10) if self._rng else secrets.randbelow(10) + 1)
            self._respond(tx, 500, now, headers=[("Retry-After", retry)])
            return
        offer = self._offer_problem(tx, now)
        if offer is None:
            return
        if call.phase is _Phase.ANSWERED:  # a re-INVITE implies the ACK got lost
            self._confirm(call, b"", now)
        dialog.refresh_target(req)
        call.reinvite_in = tx
        self._emit(call, ev.ReinviteReceived(call.ref, offer))

    def _on_ack(self, req: Request, now: float) -> None:
        call = self._dialogs.get(DialogId(req.call_id, req.to.tag or "", req.from_.tag or ""))
        pending = call.pending_2xx if call is not None else None
        if call is None or pending is None or req.cseq.seq != pending.seq:
            return  # an ACK for nothing we wait for: ignored (§17.2.3)
        call.pending_2xx = None
        self._ending.add(call.ref.id)
        if pending.initial:
            self._confirm(call, req.body, now)

    def _confirm(self, call: _Call, sdp: bytes, now: float) -> None:
        call.pending_2xx = None
        if call.phase is not _Phase.ANSWERED:
            return
        call.phase = _Phase.CONFIRMED
        self._emit(call, ev.CallConfirmed(call.ref, sdp))
        if call.bye_after_ack:  # hangup() came before the ACK (§15)
            self._send_bye(call, now)
            self._finish(call)

    def _on_cancel(self, tx: ServerTransaction, now: float) -> None:
        itx = self.layer.invite_for_cancel(tx.request)
        call = self._by_invite.get(itx.key) if itx is not None else None
        if itx is None:
            self._respond(tx, 481, now)
            return
        owner = call or next((c for c in self._calls.values() if c.reinvite_in is itx), None)
        to_tag = owner.local_tag if owner is not None else None
        self._respond(tx, 200, now, to_tag=to_tag)
        if itx.final_sent or owner is None:
            return  # too late: the call (or the re-INVITE's answer) stands
        self._respond(itx, 487, now, to_tag=owner.local_tag)
        if owner.reinvite_in is itx:
            owner.reinvite_in = None
            return
        owner.cancelled = True
        self._finish(owner)
        self._emit(owner, ev.CallCancelled(owner.ref))

    def _on_bye(self, tx: ServerTransaction, call: _Call, now: float) -> None:
        self._respond(tx, 200, now)
        if call.phase is _Phase.INCOMING and isinstance(call.invite_tx, ServerInviteTransaction):
            self._respond(call.invite_tx, 487, now, to_tag=call.local_tag)
        if call.reinvite_in is not None:
            self._respond(call.reinvite_in, 487, now, to_tag=call.local_tag)
            call.reinvite_in = None
        self._end(call, "bye", by_remote=True)

    def _on_info(self, tx: ServerTransaction, call: _Call, now: float) -> None:
        req = tx.request
        ctype = req.content_type
        try:
            if ctype == "application/dtmf-relay":
                digit, duration = parse_dtmf_relay(req.body)
            elif ctype == "application/dtmf":
                digit, duration = parse_dtmf(req.body), 250
            elif not req.body:
                self._respond(tx, 200, now)  # an empty INFO: a keep-alive
                return
            else:
                self._respond(tx, 415, now, headers=[("Accept", ACCEPT_INFO)])
                return
        except DtmfBodyError as exc:
            self._respond(tx, 400, now, reason=_phrase(str(exc)))
            return
        self._respond(tx, 200, now)
        self._emit(call, ev.DtmfInfo(call.ref, digit, duration))

    def _on_notify(self, tx: ServerTransaction, call: _Call, now: float) -> None:
        req = tx.request
        event = (req.headers.get("Event") or "").split(";")[0].strip().lower()
        if event != "refer":
            self._respond(tx, 489, now, headers=[("Allow-Events", "refer")])
            return
        status: int | None = None
        frag = req.body.lstrip()
        if req.content_type == "message/sipfrag" and frag.startswith(b"SIP/2.0 "):
            code = frag[8:11]
            if code.isdigit() and 100 <= int(code) <= 699:
                status = int(code)
        if status is None:
            self._respond(tx, 400, now, reason="NOTIFY body is not a message/sipfrag status line")
            return
        self._respond(tx, 200, now)
        self._emit(call, ev.ReferStatus(call.ref, status))

    # ============================================================ UAS control
    def _unanswered(self, ref: CallRef) -> tuple[_Call, ServerInviteTransaction] | None:
        call = self._calls.get(ref.id)
        if call is None or call.role != "uas" or call.phase is not _Phase.INCOMING:
            return None
        tx = call.invite_tx
        if not isinstance(tx, ServerInviteTransaction) or tx.final_sent or call.cancelled:
            return None
        return call, tx

    def ring(self, ref: CallRef, now: float) -> bool:
        """Send 180 Ringing; False (nothing sent) if the call is not waiting for an answer."""
        found = self._unanswered(ref)
        if found is None:
            return False
        call, tx = found
        contact = [("Contact", self._contact(call.transport))]
        return self._respond(tx, 180, now, to_tag=call.local_tag, headers=contact) is not None

    def answer(self, ref: CallRef, sdp: bytes, now: float) -> bool:
        """Send 200 OK with ``sdp``; False (nothing sent) if cancelled, ended or answered.

        The 200 is retransmitted (T1 doubling to T2, UDP only) until the ACK
        comes (``CallConfirmed``); after 64*T1 without one we send BYE and
        emit ``CallEnded(reason="no-ack")``.
        """
        found = self._unanswered(ref)
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
            headers=self._answer_headers(call),
        )
        if resp is None:
            return False
        call.phase = _Phase.ANSWERED
        call.pending_2xx = self._pending(bytes(resp), call.invite.cseq.seq, True, call, now)
        self._timed.add(call.ref.id)
        return True

    def _answer_headers(self, call: _Call) -> list[tuple[str, str]]:
        headers = [("Contact", self._contact(call.transport)), ("Allow", ALLOW)]
        if self.supported:
            headers.append(("Supported", ", ".join(sorted(self.supported))))
        return headers

    def _pending(
        self, data: bytes, seq: int, initial: bool, call: _Call, now: float
    ) -> _Pending2xx:
        t1 = self.timers.t1
        next_at = None if call.transport != "udp" else now + t1
        return _Pending2xx(data, seq, initial, t1, next_at, now + self.timers.transaction_timeout)

    def reject(
        self,
        ref: CallRef,
        status: int,
        now: float,
        reason: str | None = None,
        headers: list[tuple[str, str]] | None = None,
    ) -> bool:
        """Final error response (300-699) to an unanswered INVITE; the call ends, no event.

        Raises :class:`SipUsageError` for a status outside 300-699; returns
        False if the call is not waiting for an answer (e.g. cancelled).
        """
        if not 300 <= status <= 699:
            raise SipUsageError(f"reject() needs a status of 300-699, got {status}")
        found = self._unanswered(ref)
        if found is None:
            return False
        call, tx = found
        sent = self._respond(tx, status, now, reason=reason, to_tag=call.local_tag, headers=headers)
        self._finish(call)
        return sent is not None

    def answer_reinvite(self, ref: CallRef, sdp: bytes, now: float) -> bool:
        """Answer the pending re-INVITE with 200 and ``sdp`` (retransmitted until its ACK)."""
        call = self._calls.get(ref.id)
        if call is None or call.reinvite_in is None or not call.live:
            return False
        tx, call.reinvite_in = call.reinvite_in, None
        resp = self._respond(
            tx,
            200,
            now,
            to_tag=call.local_tag,
            body=sdp,
            content_type="application/sdp",
            headers=self._answer_headers(call),
        )
        if resp is None:
            return False
        call.pending_2xx = self._pending(bytes(resp), tx.request.cseq.seq, False, call, now)
        self._timed.add(call.ref.id)
        return True

    def reject_reinvite(self, ref: CallRef, status: int, now: float) -> bool:
        """Refuse the pending re-INVITE (300-699, e.g. 488 or 491); the call goes on."""
        if not 300 <= status <= 699:
            raise SipUsageError(f"reject_reinvite() needs a status of 300-699, got {status}")
        call = self._calls.get(ref.id)
        if call is None or call.reinvite_in is None:
            return False
        tx, call.reinvite_in = call.reinvite_in, None
        return self._respond(tx, status, now, to_tag=call.local_tag) is not None

    # ================================================================ hang-up
    def hangup(self, ref: CallRef, now: float) -> bool:
        """End the call from our side; emits ``CallEnded(reason="local")`` at once.

        * UAS not yet answered: 480 Temporarily Unavailable (use ``reject``
          for another status);
        * UAS answered, ACK not yet in: BYE as soon as the ACK arrives (or
          when we give up waiting for it, 64*T1), as §15 requires;
        * confirmed (either side): BYE;
        * UAC not yet answered: CANCEL (held back until a provisional
          response arrives, §9.1); a 200 that crosses it is ACKed and BYEd.

        No event follows for this call. False if the call is unknown or over.
        """
        call = self._calls.get(ref.id)
        if call is None or not call.live or call.silenced:
            return False
        if call.phase is _Phase.INCOMING:
            found = self._unanswered(ref)
            if found is not None:
                self._respond(found[1], 480, now, to_tag=call.local_tag)
            self._finish(call)
        elif call.phase is _Phase.ANSWERED:
            call.bye_after_ack = True  # the 200 keeps going until its ACK, then BYE
        elif call.phase is _Phase.CALLING:
            self.cancel(ref, now)  # responses are still handled, silently
        else:
            if call.reinvite_in is not None:
                self._respond(call.reinvite_in, 487, now, to_tag=call.local_tag)
                call.reinvite_in = None
            self._send_bye(call, now)
            self._finish(call)
        self._events.append(ev.CallEnded(call.ref, "local", False))
        call.silenced = True
        return True

    def _end(self, call: _Call, reason: str, *, by_remote: bool) -> None:
        """The call is over: one CallEnded (unless hangup() already reported it)."""
        if not call.live:
            return
        self._finish(call)
        call.pending_2xx = None
        call.cancel_deadline = None
        self._emit(call, ev.CallEnded(call.ref, reason, by_remote))

    def _send_bye(self, call: _Call, now: float) -> None:
        if call.dialog is not None:
            self._in_dialog(call, "BYE", "bye", now)

    # =================================================================== UAC
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
        """Call ``target`` (the Request-URI) by sending the INVITE to ``dest``.

        ``from_uri`` is our address-of-record (a URI, or a name-addr with
        ``<>``); ``credentials`` (user, password) answer one digest challenge
        (401/407; a ``stale=true`` challenge gets one more try). Events:
        ``CallProgress``, then ``CallAnswered`` (ACK sent) or ``CallFailed``.
        """
        transport = transport.lower()
        self._next_id += 1
        ref = CallRef(self._next_id, f"{self._token(12)}@{self.local_host}")
        party = from_uri if "<" in from_uri else f"<{from_uri}>"
        branch = self._branch()
        local_tag = self._token(6)
        items = [
            ("Via", f"SIP/2.0/{transport.upper()} {self._sent_by};branch={branch};rport"),
            ("Max-Forwards", "70"),
            ("From", f"{party};tag={local_tag}"),
            ("To", f"<{target}>"),
            ("Call-ID", ref.call_id),
            ("CSeq", "1 INVITE"),
            ("Contact", self._contact(transport)),
            ("Allow", ALLOW),
            ("User-Agent", self.user_agent),
            *(headers or []),
        ]
        if self.supported:
            items.append(("Supported", ", ".join(sorted(self.supported))))
        items.append(("Content-Type", "application/sdp"))
        req = make_request("INVITE", target, items, sdp)
        call = _Call(
            ref, "uac", dest, transport, local_tag, req, _Phase.CALLING, credentials=credentials
        )
        self._calls[ref.id] = call
        self._start(call, req, "invite", now)
        return ref

    def _start(self, call: _Call, req: Request, purpose: str, now: float) -> ClientTransaction:
        tx = self.layer.start_client(req, call.addr, call.transport, now)
        self._owners[tx.key] = (call, purpose)
        call.in_flight += 1
        if purpose in ("invite", "reinvite"):
            assert isinstance(tx, ClientInviteTransaction)
            if purpose == "invite":
                call.invite, call.invite_tx = req, tx
            else:
                call.reinvite_out = tx
        return tx

    def _in_dialog(
        self,
        call: _Call,
        method: str,
        purpose: str,
        now: float,
        *,
        body: bytes = b"",
        content_type: str | None = None,
        headers: list[tuple[str, str]] | None = None,
    ) -> ClientTransaction:
        assert call.dialog is not None
        contact = self._contact(call.transport) if method in ("INVITE", "REFER") else None
        req = call.dialog.request(
            method,
            sent_by=self._sent_by,
            branch=self._branch(),
            contact=contact,
            body=body,
            content_type=content_type,
            headers=[*(headers or []), ("User-Agent", self.user_agent)],
        )
        return self._start(call, req, purpose, now)

    def cancel(self, ref: CallRef, now: float) -> bool:
        """CANCEL our unanswered INVITE (sent once a provisional response came, §9.1).

        The outcome is ``CallFailed(487)``; a 200 that crosses the CANCEL is
        ACKed, then BYE is sent and ``CallEnded(reason="cancelled")`` emitted.
        """
        call = self._calls.get(ref.id)
        if call is None or call.role != "uac" or call.phase is not _Phase.CALLING:
            return False
        if call.cancelled:
            return True
        call.cancelled = True
        if call.provisional:
            self._send_cancel(call, now)
        else:
            call.cancel_pending = True
        return True

    def _send_cancel(self, call: _Call, now: float) -> None:
        inv = call.invite
        items = [("Via", inv.headers.get_all("Via")[0])]
        items += [("Route", r) for r in inv.headers.get_all("Route")]
        items += [
            ("Max-Forwards", "70"),
            ("From", inv.headers.get("From") or ""),
            ("To", inv.headers.get("To") or ""),
            ("Call-ID", inv.call_id),
            ("CSeq", f"{inv.cseq.seq} CANCEL"),
            ("User-Agent", self.user_agent),
        ]
        call.cancel_pending = False
        call.cancel_deadline = now + self.timers.transaction_timeout
        self._timed.add(call.ref.id)
        self._start(call, make_request("CANCEL", inv.uri, items), "cancel", now)

    def _confirmed(self, ref: CallRef) -> _Call | None:
        call = self._calls.get(ref.id)
        if call is None or call.dialog is None or call.silenced:
            return None
        return call if call.phase in (_Phase.CONFIRMED, _Phase.ANSWERED) else None

    def reinvite(self, ref: CallRef, sdp: bytes, now: float) -> bool:
        """Send a re-INVITE with ``sdp`` (hold: a=sendonly; unhold: a=sendrecv).

        The answer comes as ``ReinviteAnswered``; False if the call is not
        up or another INVITE is in progress on it.
        """
        call = self._confirmed(ref)
        if call is None or call.phase is not _Phase.CONFIRMED:
            return False  # §14.1: not before the ACK of the first INVITE
        if call.reinvite_out is not None or call.reinvite_in is not None:
            return False
        self._in_dialog(call, "INVITE", "reinvite", now, body=sdp, content_type="application/sdp")
        return True

    def refer(self, ref: CallRef, target_uri: str, now: float) -> bool:
        """Blind transfer: REFER the peer to ``target_uri`` (events: ``ReferStatus``)."""
        call = self._confirmed(ref)
        if call is None:
            return False
        self._in_dialog(call, "REFER", "refer", now, headers=[("Refer-To", f"<{target_uri}>")])
        return True

    def send_info_dtmf(self, ref: CallRef, digit: str, duration_ms: int, now: float) -> bool:
        """Send ``digit`` as INFO application/dtmf-relay; raises SipUsageError for a bad digit."""
        try:
            body = build_dtmf_relay(digit, duration_ms)
        except DtmfBodyError as exc:
            raise SipUsageError(str(exc)) from None
        call = self._confirmed(ref)
        if call is None:
            return False
        self._in_dialog(call, "INFO", "info", now, body=body, content_type="application/dtmf-relay")
        return True

    # ------------------------------------------------------------- responses
    def _on_response(self, resp: Response, now: float) -> None:
        vias = resp.vias
        cseq = resp.cseq
        if len(vias) != 1:
            self.dropped += 1  # §8.1.3.3: more than one Via is not for us
            return
        tx, up = self.layer.receive_response(resp, now)
        if tx is None:
            if cseq.method == "INVITE" and 200 <= resp.status < 300:
                self._stray_2xx(resp, now)
            return
        owner = self._owners.get(tx.key)
        if not up or owner is None:
            return
        call, purpose = owner
        if resp.status in (401, 407) and self._retry_with_auth(call, tx, resp, purpose, now):
            return
        if purpose == "invite":
            self._on_invite_response(call, resp, now)
        elif purpose == "reinvite":
            self._on_reinvite_response(call, resp, now)
        elif resp.status >= 200:
            if purpose == "refer":
                self._emit(call, ev.ReferStatus(call.ref, resp.status))
            if purpose != "bye" and resp.status in (408, 481):
                self._dialog_gone(call, resp.status, now)

    def _on_invite_response(self, call: _Call, resp: Response, now: float) -> None:
        status = resp.status
        if status < 200:
            if call.phase is not _Phase.CALLING:
                return
            call.provisional = True
            if call.cancel_pending:
                self._send_cancel(call, now)
            self._emit(call, ev.CallProgress(call.ref, status, resp.body or None))
            return
        if status < 300:
            self._on_invite_2xx(call, resp, now)
            return
        if call.phase is _Phase.CALLING:
            self._finish(call)
            call.cancel_deadline = None
            self._emit(call, ev.CallFailed(call.ref, status, resp.reason))

    def _on_invite_2xx(self, call: _Call, resp: Response, now: float) -> None:
        seq = resp.cseq.seq
        dialog = call.dialog
        if dialog is not None and resp.to.tag == dialog.remote_tag:
            ack = call.acks.get(seq)
            if ack is not None:  # a retransmitted 2xx: the same ACK again
                self._send(ack, call.addr, call.transport)
            return
        try:
            new = Dialog.for_uac(call.invite, resp, peer=call.addr, transport=call.transport)
        except SipParseError:
            self.dropped += 1
            return
        if dialog is not None or call.phase is not _Phase.CALLING:
            self._ack_and_bye(new, seq, call, now)  # a second (forked) answer
            return
        call.dialog = new
        self._dialogs[new.id] = call
        self._ack(call, seq, now)
        call.cancel_deadline = None
        call.phase = _Phase.CONFIRMED
        if call.cancelled:  # our CANCEL crossed the 200 (§9.1): the call must still end
            self._send_bye(call, now)
            self._end(call, "cancelled", by_remote=False)
            return
        self._emit(call, ev.CallAnswered(call.ref, resp.body))

    def _ack(self, call: _Call, seq: int, now: float) -> None:
        assert call.dialog is not None
        ack = bytes(call.dialog.ack(seq, sent_by=self._sent_by, branch=self._branch()))
        call.acks[seq] = ack
        self._send(ack, call.addr, call.transport)

    def _ack_and_bye(self, dialog: Dialog, seq: int, call: _Call, now: float) -> None:
        """§13.2.2.4: a 2xx from another fork (or after we gave up): ACK it, then BYE."""
        self._send(
            bytes(dialog.ack(seq, sent_by=self._sent_by, branch=self._branch())),
            call.addr,
            call.transport,
        )
        bye = dialog.request("BYE", sent_by=self._sent_by, branch=self._branch())
        self.layer.start_client(bye, call.addr, call.transport, now)

    def _stray_2xx(self, resp: Response, now: float) -> None:
        """A 2xx retransmission after our INVITE transaction ended: ACK it again."""
        key = DialogId(resp.call_id, resp.from_.tag or "", resp.to.tag or "")
        call = self._dialogs.get(key)
        ack = call.acks.get(resp.cseq.seq) if call is not None else None
        if call is not None and ack is not None:
            self._send(ack, call.addr, call.transport)

    def _on_reinvite_response(self, call: _Call, resp: Response, now: float) -> None:
        status = resp.status
        if status < 200:
            return
        seq = resp.cseq.seq
        if status < 300:
            if seq in call.acks:  # retransmitted 2xx
                self._send(call.acks[seq], call.addr, call.transport)
                return
            if call.dialog is None or resp.to.tag != call.dialog.remote_tag:
                return
            call.dialog.refresh_target(resp)
            self._ack(call, seq, now)
        call.reinvite_out = None
        self._emit(call, ev.ReinviteAnswered(call.ref, status, resp.body if status < 300 else None))
        if status in (408, 481):
            self._dialog_gone(call, status, now)

    def _dialog_gone(self, call: _Call, status: int, now: float) -> None:
        """§12.2.1.2: 481 or 408 (or no answer) to an in-dialog request ends the dialog."""
        if not call.live or call.dialog is None:
            return
        if status == 408:
            self._send_bye(call, now)
        self._end(call, "timeout" if status == 408 else "gone", by_remote=status == 481)

    def _retry_with_auth(
        self, call: _Call, tx: ClientTransaction, resp: Response, purpose: str, now: float
    ) -> bool:
        """Resend ``tx``'s request with digest credentials (RFC 3261 §22.2)."""
        if call.credentials is None or purpose == "cancel" or call.cancelled:
            return False
        rounds = self._auth_rounds.pop(tx.key, 0)
        header = "WWW-Authenticate" if resp.status == 401 else "Proxy-Authenticate"
        challenge = choose_challenge(resp.headers.values(header), header)
        if challenge is None or rounds >= 2 or (rounds == 1 and not challenge.stale):
            return False
        old = tx.request
        user, password = call.credentials
        if old.method == "INVITE" and purpose == "invite":
            seq = old.cseq.seq + 1
        elif call.dialog is not None:
            seq = call.dialog.next_seq()
        else:
            seq = old.cseq.seq + 1
        try:
            value = authorization(
                challenge,
                user,
                password,
                old.method,
                old.uri,
                cnonce=self._token(8),
                nc=1,
                body=old.body,
            )
        except (SipParseError, SipUsageError):
            return False
        name = "Authorization" if resp.status == 401 else "Proxy-Authorization"
        branch = self._branch()
        items: list[tuple[str, str]] = []
        for hname, hvalue in old.headers.items():
            low = hname.lower()
            if low in ("authorization", "proxy-authorization"):
                continue
            if low in ("via", "v") and not any(n.lower() == "via" for n, _ in items):
                hvalue = f"SIP/2.0/{call.transport.upper()} {self._sent_by};branch={branch};rport"
            elif low == "cseq":
                hvalue = f"{seq} {old.method}"
            items.append((hname, hvalue))
        items.append((name, value))
        new_tx = self._start(call, make_request(old.method, old.uri, items, old.body), purpose, now)
        self._auth_rounds[new_tx.key] = rounds + 1
        if purpose == "invite":
            call.provisional = False
        return True

    # ================================================================= timers
    def _call_deadlines(self, call: _Call) -> list[float]:
        times = []
        pending = call.pending_2xx
        if pending is not None:
            times.append(pending.give_up_at)
            if pending.next_at is not None:
                times.append(pending.next_at)
        if call.cancel_deadline is not None:
            times.append(call.cancel_deadline)
        return times

    def handle_timer(self, now: float) -> None:
        """Fire every timer due at ``now`` (transactions, 2xx retransmission, give-ups)."""
        try:
            for tx in self.layer.handle_timer(now):
                self._transaction_ended(tx, now)
            for call_id in list(self._timed):
                call = self._calls.get(call_id)
                if call is not None:
                    self._call_timers(call, now)
        except Exception:  # never let a timer take the UA down; counted
            self.internal_errors += 1
            log.exception("sip.timer_failed")
        self._after_input(now)

    def _call_timers(self, call: _Call, now: float) -> None:
        self._ending.add(call.ref.id)
        pending = call.pending_2xx
        if pending is not None and now >= pending.give_up_at:
            call.pending_2xx = None
            log.info("sip.no_ack", call_id=call.ref.call_id)
            self._send_bye(call, now)  # §13.3.1.4: the dialog is confirmed, end the session
            if call.silenced:
                self._finish(call)
            self._end(call, "no-ack", by_remote=False)
        elif pending is not None and pending.next_at is not None and now >= pending.next_at:
            self._send(pending.data, call.addr, call.transport)
            pending.interval = self.timers.next_interval(pending.interval, capped=True)
            pending.next_at = now + pending.interval
        if call.cancel_deadline is not None and now >= call.cancel_deadline:
            call.cancel_deadline = None  # §9.1: no final answer 64*T1 after our CANCEL
            if call.invite_tx is not None:
                call.invite_tx.terminate()
            if call.phase is _Phase.CALLING:
                self._finish(call)
                self._emit(call, ev.CallFailed(call.ref, 408, "No Final Response After CANCEL"))

    def _transaction_ended(self, tx: ServerTransaction | ClientTransaction, now: float) -> None:
        uas_call = self._by_invite.pop(tx.key, None)
        if uas_call is not None:
            self._ending.add(uas_call.ref.id)
        self._auth_rounds.pop(tx.key, None)
        owner = self._owners.pop(tx.key, None)
        if owner is None:
            return
        call, purpose = owner
        call.in_flight -= 1
        self._ending.add(call.ref.id)
        timed_out = getattr(tx, "timed_out", False)
        if purpose == "invite" and tx is call.invite_tx and call.phase is _Phase.CALLING:
            # timer B, or an answer we could not use (a 2xx without To tag)
            self._finish(call)
            call.cancel_deadline = None
            status, reason = (408, "Request Timeout") if timed_out else (502, "Unusable Answer")
            self._emit(call, ev.CallFailed(call.ref, status, reason))
        elif not timed_out:
            return
        elif purpose == "reinvite":
            call.reinvite_out = None
            self._emit(call, ev.ReinviteAnswered(call.ref, 408, None))
            self._dialog_gone(call, 408, now)
        elif purpose in ("refer", "info"):
            if purpose == "refer":
                self._emit(call, ev.ReferStatus(call.ref, 408))
            self._dialog_gone(call, 408, now)

    def _finish(self, call: _Call) -> None:
        call.phase = _Phase.ENDED
        self._ending.add(call.ref.id)

    def _collect(self) -> None:
        """Forget calls that are over and have nothing left in flight."""
        for call_id in self._ending:
            call = self._calls.get(call_id)
            if call is None or call.live:
                continue
            if call.pending_2xx is not None or call.cancel_deadline is not None:
                continue  # parked: its timers put it back (_call_timers)
            if call.in_flight or (call.invite_tx is not None and not call.invite_tx.terminated):
                continue  # parked: the end of the transaction puts it back
            del self._calls[call.ref.id]
            if call.dialog is not None and self._dialogs.get(call.dialog.id) is call:
                del self._dialogs[call.dialog.id]
        self._ending.clear()
