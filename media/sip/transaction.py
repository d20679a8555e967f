"""SIP transactions (RFC 3261 §17 with RFC 6026's Accepted states), sans I/O.

The rule this module keeps: a transaction only ever (a) appends bytes for its
peer to the outbox it was given, (b) tells its caller whether a message must
go up to the transaction user (the UA core), and (c) says when it next needs
the clock (``next_deadline``); time only ever comes in as ``now``.

State machines (timer values in :mod:`media.sip.timers`)::

    INVITE client       Calling --1xx--> Proceeding --300-699--> Completed --D--> Terminated
                           |                  |--2xx--> Accepted --M--> Terminated
                           |--A: resend, B: timeout--> Terminated
    non-INVITE client   Trying --1xx--> Proceeding --final--> Completed --K--> Terminated
                           |--E: resend (capped at T2), F: timeout--> Terminated
    INVITE server       Proceeding --2xx--> Accepted --L--> Terminated
                           |--300-699--> Completed --ACK--> Confirmed --I--> Terminated
                                            |--G: resend, H: no ACK--> Terminated
    non-INVITE server   Trying --1xx--> Proceeding --final--> Completed --J--> Terminated

Matching (§17.1.3, §17.2.3): a request whose top Via branch starts with the
magic cookie ``z9hG4bK`` matches on (branch, sent-by, method), with ACK
matching its INVITE; a CANCEL is its own transaction but finds its INVITE by
the same key with the method INVITE (§9.2). Without the cookie (RFC 2543
peers, RFC 4475 inv2543 and badbranch) the key is the Request-URI, From tag,
Call-ID, CSeq number and top Via; an ACK must also carry the To tag of our
response. A response matches a client transaction on (branch, CSeq method).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from enum import Enum

from media.sip.errors import SipParseError, SipUsageError
from media.sip.events import Outgoing
from media.sip.headers import MAGIC_COOKIE, Via
from media.sip.message import Request, Response, make_request
from media.sip.timers import TimerConfig, TimerHeap

Addr = tuple[str, int]
TransactionKey = tuple[str, ...]

__all__ = [
    "ClientInviteTransaction",
    "ClientNonInviteTransaction",
    "ClientTransaction",
    "RequestMatch",
    "ServerInviteTransaction",
    "ServerNonInviteTransaction",
    "ServerTransaction",
    "TransactionKey",
    "TransactionLayer",
    "TxState",
    "ack_for_non_2xx",
    "client_key",
    "server_key",
]


class TxState(Enum):
    """Transaction states of RFC 3261 §17 plus RFC 6026's Accepted."""

    CALLING = "calling"
    TRYING = "trying"
    PROCEEDING = "proceeding"
    COMPLETED = "completed"
    CONFIRMED = "confirmed"
    ACCEPTED = "accepted"
    TERMINATED = "terminated"


# --------------------------------------------------------------------- keys
def _default_port(transport: str) -> int:
    return 5061 if transport.upper() in ("TLS", "WSS") else 5060


def _via_key(top: Via) -> tuple[str, str]:
    port = top.port if top.port is not None else _default_port(top.transport)
    return top.host.lower(), str(port)


def has_magic_cookie(branch: str | None) -> bool:
    """True for an RFC 3261 branch: the cookie followed by at least one character."""
    return branch is not None and branch.startswith(MAGIC_COOKIE) and len(branch) > 7


def server_key(req: Request, method: str | None = None) -> TransactionKey:
    """The server transaction key of ``req`` (RFC 3261 §17.2.3).

    ``method`` overrides the request's own (ACK and CANCEL look up their
    INVITE with ``"INVITE"``). Raises :class:`SipParseError` if the top Via,
    From or CSeq does not parse.
    """
    vias = req.vias
    if not vias:
        raise SipParseError("Via: missing")
    top = vias[0]
    wanted = method or ("INVITE" if req.method == "ACK" else req.method)
    if has_magic_cookie(top.branch):
        host, port = _via_key(top)
        return ("3261", top.branch or "", host, port, wanted)
    host, port = _via_key(top)
    return (
        "2543",
        req.uri,
        req.from_.tag or "",
        req.call_id,
        str(req.cseq.seq),
        f"{top.transport}/{host}:{port}",
        top.branch or "",
        wanted,
    )


def client_key(branch: str, method: str) -> TransactionKey:
    """The client transaction key for our request with ``branch`` (§17.1.3)."""
    return ("client", branch, method)


def response_key(resp: Response) -> TransactionKey | None:
    """The client transaction a response belongs to; None if it cannot say."""
    try:
        vias = resp.vias
        method = resp.cseq.method
    except SipParseError:
        return None
    if not vias or not vias[0].branch:
        return None
    return client_key(vias[0].branch, method)


def ack_for_non_2xx(invite: Request, response: Response) -> Request:
    """The ACK a client INVITE transaction sends for a 300-699 (§17.1.1.3).

    Same Request-URI, Call-ID, From, CSeq number, top Via (hence branch) and
    Route as the INVITE; To from the response (it carries the UAS's tag).
    """
    headers = [("Via", invite.headers.get_all("Via")[0])]
    headers += [("Route", r) for r in invite.headers.get_all("Route")]
    headers += [
        ("Max-Forwards", "70"),
        ("From", invite.headers.get("From") or ""),
        ("To", response.headers.get("To") or invite.headers.get("To") or ""),
        ("Call-ID", invite.call_id),
        ("CSeq", f"{invite.cseq.seq} ACK"),
    ]
    return make_request("ACK", invite.uri, headers)


# ------------------------------------------------------------- base class
class _Transaction(ABC):
    """Timers, outbox and state shared by the four kinds."""

    #: The state a transaction of this kind starts in (§17.1, §17.2).
    initial_state: TxState

    def __init__(
        self,
        key: TransactionKey,
        request: Request,
        addr: Addr,
        transport: str,
        config: TimerConfig,
        outbox: list[Outgoing],
        *,
        ended: list[_Transaction] | None = None,
        schedule: TimerHeap[_Transaction] | None = None,
    ) -> None:
        self.key = key
        self.request = request
        self.addr = addr
        self.transport = transport
        self.config = config
        self.state = self.initial_state
        self._outbox = outbox
        self._ended = ended
        self._schedule = schedule
        self._deadlines: dict[str, float] = {}
        self._interval = config.t1

    @property
    def reliable(self) -> bool:
        """TCP (anything but UDP): no retransmissions, zero wait timers."""
        return self.transport.lower() != "udp"

    @property
    def terminated(self) -> bool:
        return self.state is TxState.TERMINATED

    @property
    def method(self) -> str:
        return self.request.method

    def has_deadline(self, when: float) -> bool:
        """Is ``when`` the deadline of a running timer (for :class:`TimerHeap`)?"""
        return when in self._deadlines.values()

    def timer(self, name: str) -> float | None:
        """When timer ``name`` ("A" ... "M") fires next, or None if not running."""
        return self._deadlines.get(name)

    def next_deadline(self) -> float | None:
        """The earliest running timer."""
        return min(self._deadlines.values()) if self._deadlines else None

    def handle_timer(self, now: float) -> None:
        """Fire every timer due at ``now``, earliest first."""
        while self._deadlines:
            name, when = min(self._deadlines.items(), key=lambda item: item[1])
            if when > now:
                return
            del self._deadlines[name]
            self._fire(name, now)

    @abstractmethod
    def _fire(self, name: str, now: float) -> None:
        """What timer ``name`` does in this kind of transaction (RFC 3261 §17)."""

    def _send(self, data: bytes) -> None:
        self._outbox.append(Outgoing(data, self.addr, self.transport))

    def _arm(self, name: str, when: float) -> None:
        self._deadlines[name] = when
        if self._schedule is not None:
            self._schedule.push(when, self)

    def _wait_then_terminate(self, name: str, delay: float, now: float) -> None:
        """Run wait timer ``name``; a zero wait (reliable transport) ends at once."""
        self._deadlines.clear()
        if delay <= 0:
            self.terminate()
        else:
            self._arm(name, now + delay)

    def terminate(self) -> None:
        """Stop every timer and end the transaction (the TU gave up on it)."""
        self._deadlines.clear()
        if self.state is not TxState.TERMINATED:
            self.state = TxState.TERMINATED
            if self._ended is not None:
                self._ended.append(self)  # the owning layer forgets it on its next sweep


# ------------------------------------------------------------------ client
class ClientInviteTransaction(_Transaction):
    """INVITE client transaction (§17.1.1, RFC 6026 §7.2). Sends the INVITE at once."""

    initial_state = TxState.CALLING

    def __init__(
        self,
        request: Request,
        addr: Addr,
        transport: str,
        config: TimerConfig,
        outbox: list[Outgoing],
        now: float,
        *,
        ended: list[_Transaction] | None = None,
        schedule: TimerHeap[_Transaction] | None = None,
    ) -> None:
        branch = request.vias[0].branch or ""
        key = client_key(branch, "INVITE")
        super().__init__(
            key, request, addr, transport, config, outbox, ended=ended, schedule=schedule
        )
        self.timed_out = False
        self.ack: bytes | None = None
        self._data = bytes(request)
        self._send(self._data)
        if not self.reliable:
            self._arm("A", now + config.t1)
        self._arm("B", now + config.transaction_timeout)

    def receive_response(self, resp: Response, now: float) -> bool:
        """Account for a response; True if the UA core must see it.

        2xx retransmissions in Accepted go up (the UA core re-sends its ACK);
        300-699 retransmissions in Completed are ACKed here and absorbed.
        """
        status = resp.status
        if self.state in (TxState.CALLING, TxState.PROCEEDING):
            if status < 200:
                self.state = TxState.PROCEEDING
                self._deadlines.clear()  # no retransmission, no timer B once 1xx came
                return True
            if status < 300:
                self.state = TxState.ACCEPTED
                self._deadlines.clear()
                self._arm("M", now + self.config.transaction_timeout)
                return True
            self.ack = bytes(ack_for_non_2xx(self.request, resp))
            self._send(self.ack)
            self.state = TxState.COMPLETED
            self._wait_then_terminate("D", self.config.timer_d(self.reliable), now)
            return True
        if self.state is TxState.ACCEPTED:
            return 200 <= status < 300
        if self.state is TxState.COMPLETED and status >= 300 and self.ack is not None:
            self._send(self.ack)
        return False

    def _fire(self, name: str, now: float) -> None:
        if name == "A" and self.state is TxState.CALLING:
            self._send(self._data)
            self._interval = self.config.next_interval(self._interval, capped=False)
            self._arm("A", now + self._interval)
        elif name == "B" and self.state is TxState.CALLING:
            self.timed_out = True
            self.terminate()
        elif name in ("D", "M"):
            self.terminate()


class ClientNonInviteTransaction(_Transaction):
    """Non-INVITE client transaction (§17.1.2). Sends the request at once."""

    initial_state = TxState.TRYING

    def __init__(
        self,
        request: Request,
        addr: Addr,
        transport: str,
        config: TimerConfig,
        outbox: list[Outgoing],
        now: float,
        *,
        ended: list[_Transaction] | None = None,
        schedule: TimerHeap[_Transaction] | None = None,
    ) -> None:
        if request.method in ("INVITE", "ACK"):
            raise SipUsageError(f"{request.method} cannot use a non-INVITE client transaction")
        branch = request.vias[0].branch or ""
        key = client_key(branch, request.method)
        super().__init__(
            key, request, addr, transport, config, outbox, ended=ended, schedule=schedule
        )
        self.timed_out = False
        self._data = bytes(request)
        self._send(self._data)
        if not self.reliable:
            self._arm("E", now + config.t1)
        self._arm("F", now + config.transaction_timeout)

    def receive_response(self, resp: Response, now: float) -> bool:
        """True if the UA core must see it (retransmissions in Completed are absorbed)."""
        if self.state not in (TxState.TRYING, TxState.PROCEEDING):
            return False
        if resp.status < 200:
            self.state = TxState.PROCEEDING
            return True
        self.state = TxState.COMPLETED
        self._wait_then_terminate("K", self.config.timer_k(self.reliable), now)
        return True

    def _fire(self, name: str, now: float) -> None:
        if name == "E" and self.state in (TxState.TRYING, TxState.PROCEEDING):
            self._send(self._data)
            if self.state is TxState.PROCEEDING:
                self._interval = self.config.t2
            else:
                self._interval = self.config.next_interval(self._interval, capped=True)
            self._arm("E", now + self._interval)
        elif name == "F" and self.state in (TxState.TRYING, TxState.PROCEEDING):
            self.timed_out = True
            self.terminate()
        elif name == "K":
            self.terminate()


ClientTransaction = ClientInviteTransaction | ClientNonInviteTransaction


# ------------------------------------------------------------------ server
class ServerInviteTransaction(_Transaction):
    """INVITE server transaction (§17.2.1, RFC 6026 §7.1)."""

    initial_state = TxState.PROCEEDING
    last_response: Response | None = None
    ack_timed_out = False
    _last_data: bytes | None = None

    @property
    def final_sent(self) -> bool:
        return self.state is not TxState.PROCEEDING

    @property
    def to_tag(self) -> str | None:
        """The To tag of our last response (RFC 2543 ACK matching)."""
        if self.last_response is None:
            return None
        try:
            return self.last_response.to.tag
        except SipParseError:
            return None

    def send_response(self, resp: Response, now: float) -> None:
        """Send a response from the UA core; raises :class:`SipUsageError` if none is allowed.

        In Accepted only 2xx retransmissions are allowed (the UA core's, §13.3.1.4).
        """
        status = resp.status
        if self.state is TxState.ACCEPTED and 200 <= status < 300:
            self._send(bytes(resp))
            return
        if self.state is not TxState.PROCEEDING:
            raise SipUsageError(
                f"INVITE server transaction in state {self.state.value} cannot send {status}"
            )
        data = bytes(resp)
        self.last_response = resp
        self._last_data = data
        self._send(data)
        if status < 200:
            return
        if status < 300:
            self.state = TxState.ACCEPTED
            self._arm("L", now + self.config.transaction_timeout)
            return
        self.state = TxState.COMPLETED
        if not self.reliable:
            self._interval = self.config.t1
            self._arm("G", now + self._interval)
        self._arm("H", now + self.config.transaction_timeout)

    def receive_request(self, req: Request, now: float) -> bool:
        """A retransmitted INVITE or an ACK; True if the UA core must see it.

        Only an ACK in Accepted goes up (RFC 6026); INVITE retransmissions get
        the last provisional or non-2xx final again, or nothing after a 2xx.
        """
        if req.method == "ACK":
            if self.state is TxState.COMPLETED:
                self.state = TxState.CONFIRMED
                self._wait_then_terminate("I", self.config.timer_i(self.reliable), now)
                return False
            return self.state is TxState.ACCEPTED
        if self.state in (TxState.PROCEEDING, TxState.COMPLETED) and self._last_data:
            self._send(self._last_data)
        return False

    def _fire(self, name: str, now: float) -> None:
        if name == "G" and self.state is TxState.COMPLETED and self._last_data:
            self._send(self._last_data)
            self._interval = self.config.next_interval(self._interval, capped=True)
            self._arm("G", now + self._interval)
        elif name == "H" and self.state is TxState.COMPLETED:
            self.ack_timed_out = True
            self.terminate()
        elif name in ("I", "L"):
            self.terminate()


class ServerNonInviteTransaction(_Transaction):
    """Non-INVITE server transaction (§17.2.2)."""

    initial_state = TxState.TRYING
    last_response: Response | None = None
    _last_data: bytes | None = None

    @property
    def final_sent(self) -> bool:
        return self.state in (TxState.COMPLETED, TxState.TERMINATED)

    def send_response(self, resp: Response, now: float) -> None:
        """Send a response; raises :class:`SipUsageError` after the final one."""
        if self.state not in (TxState.TRYING, TxState.PROCEEDING):
            raise SipUsageError(
                f"{self.method} server transaction in state {self.state.value} "
                f"cannot send {resp.status}"
            )
        data = bytes(resp)
        self.last_response = resp
        self._last_data = data
        self._send(data)
        if resp.status < 200:
            self.state = TxState.PROCEEDING
            return
        self.state = TxState.COMPLETED
        self._wait_then_terminate("J", self.config.timer_j(self.reliable), now)

    def receive_request(self, req: Request, now: float) -> bool:
        """A retransmission: resend the last response (none yet in Trying). Never goes up."""
        if self.state is not TxState.TRYING and self._last_data is not None:
            self._send(self._last_data)
        return False

    def _fire(self, name: str, now: float) -> None:
        if name == "J":
            self.terminate()


ServerTransaction = ServerInviteTransaction | ServerNonInviteTransaction


# ------------------------------------------------------------------- layer
@dataclass
class RequestMatch:
    """What the transaction layer made of an incoming request.

    ``tx`` is the (new or matched) server transaction, None for an ACK that
    matches none (the ACK of a 2xx: it belongs to the dialog). ``new`` is
    True for a request that created ``tx``; ``pass_up`` says whether the UA
    core must handle the request at all (False: a retransmission, absorbed).
    """

    tx: ServerTransaction | None
    new: bool
    pass_up: bool


@dataclass
class TransactionLayer:
    """Every live transaction of one UA, the matching rules and the shared outbox.

    ``outbox`` collects :class:`Outgoing` datagrams from all transactions in
    order; the owner drains it.
    """

    config: TimerConfig = field(default_factory=TimerConfig)
    outbox: list[Outgoing] = field(default_factory=list)
    server: dict[TransactionKey, ServerTransaction] = field(default_factory=dict)
    client: dict[TransactionKey, ClientTransaction] = field(default_factory=dict)
    _merge_index: dict[tuple[str, str, int, str], TransactionKey] = field(default_factory=dict)
    _ended: list[_Transaction] = field(default_factory=list)
    _schedule: TimerHeap[_Transaction] = field(default_factory=TimerHeap)

    # ---------------------------------------------------------------- server
    def receive_request(self, req: Request, addr: Addr, transport: str, now: float) -> RequestMatch:
        """Match ``req`` to a server transaction or create one.

        The request must have passed header validation (Via, From, To,
        Call-ID and CSeq parse); otherwise :class:`SipParseError` propagates.
        """
        key = server_key(req)
        if req.method == "ACK":
            itx = self.server.get(key)
            if not isinstance(itx, ServerInviteTransaction) or not self._ack_matches(itx, req):
                return RequestMatch(None, False, True)
            return RequestMatch(itx, False, itx.receive_request(req, now))
        existing = self.server.get(key)
        if existing is not None:
            existing.receive_request(req, now)
            return RequestMatch(existing, False, False)
        tx: ServerTransaction
        if req.method == "INVITE":
            tx = ServerInviteTransaction(
                key,
                req,
                addr,
                transport,
                self.config,
                self.outbox,
                ended=self._ended,
                schedule=self._schedule,
            )
        else:
            tx = ServerNonInviteTransaction(
                key,
                req,
                addr,
                transport,
                self.config,
                self.outbox,
                ended=self._ended,
                schedule=self._schedule,
            )
        self.server[key] = tx
        merge = _merge_key(req)
        self._merge_index.setdefault(merge, key)
        return RequestMatch(tx, True, True)

    @staticmethod
    def _ack_matches(itx: ServerInviteTransaction, ack: Request) -> bool:
        if itx.key[0] == "3261":
            return True
        try:  # RFC 2543: the ACK must also carry the To tag of our response
            return ack.to.tag == itx.to_tag
        except SipParseError:
            return False

    def is_merged(self, tx: ServerTransaction) -> bool:
        """§8.2.2.2: another live transaction has this From tag, Call-ID and CSeq."""
        first = self._merge_index.get(_merge_key(tx.request))
        return first is not None and first != tx.key and first in self.server

    def invite_for_cancel(self, cancel: Request) -> ServerInviteTransaction | None:
        """The INVITE server transaction a CANCEL targets (§9.2), if still alive."""
        tx = self.server.get(server_key(cancel, "INVITE"))
        return tx if isinstance(tx, ServerInviteTransaction) else None

    # ---------------------------------------------------------------- client
    def start_client(
        self, req: Request, addr: Addr, transport: str, now: float
    ) -> ClientTransaction:
        """Create the client transaction for ``req`` (its top Via carries the branch) and send."""
        tx: ClientTransaction
        if req.method == "INVITE":
            tx = ClientInviteTransaction(
                req,
                addr,
                transport,
                self.config,
                self.outbox,
                now,
                ended=self._ended,
                schedule=self._schedule,
            )
        else:
            tx = ClientNonInviteTransaction(
                req,
                addr,
                transport,
                self.config,
                self.outbox,
                now,
                ended=self._ended,
                schedule=self._schedule,
            )
        if tx.key in self.client:
            raise SipUsageError(f"a client transaction with branch {tx.key[1]} already exists")
        self.client[tx.key] = tx
        return tx

    def receive_response(self, resp: Response, now: float) -> tuple[ClientTransaction | None, bool]:
        """Match a response: (transaction or None if stray, whether the UA core must see it)."""
        key = response_key(resp)
        tx = self.client.get(key) if key is not None else None
        if tx is None:
            return None, True
        return tx, tx.receive_response(resp, now)

    def pending_client(self) -> int:
        """Client transactions still waiting for a final response."""
        waiting = (TxState.CALLING, TxState.TRYING, TxState.PROCEEDING)
        return sum(1 for tx in self.client.values() if tx.state in waiting)

    # ----------------------------------------------------------------- timers
    def next_deadline(self) -> float | None:
        """The earliest timer of any transaction."""
        return self._schedule.earliest()

    def handle_timer(self, now: float) -> list[ServerTransaction | ClientTransaction]:
        """Fire due timers; returns the transactions that ended (check their flags)."""
        for tx in self._schedule.pop_due(now):
            tx.handle_timer(now)
        return self.sweep()

    def sweep(self) -> list[ServerTransaction | ClientTransaction]:
        """Forget the transactions that ended since the last sweep (over TCP they end
        without a timer, on their final response or ACK); returns them."""
        ended: list[ServerTransaction | ClientTransaction] = []
        for tx in self._ended:
            if isinstance(tx, (ServerInviteTransaction, ServerNonInviteTransaction)):
                if self.server.get(tx.key) is tx:
                    del self.server[tx.key]
                    ended.append(tx)
                    merge = _merge_key(tx.request)
                    if self._merge_index.get(merge) == tx.key:
                        del self._merge_index[merge]
            elif self.client.get(tx.key) is tx:
                del self.client[tx.key]
                ended.append(tx)
        self._ended.clear()
        return ended


def _merge_key(req: Request) -> tuple[str, str, int, str]:
    cseq = req.cseq
    return (req.from_.tag or "", req.call_id, cseq.seq, cseq.method)
