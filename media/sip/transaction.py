"""SIP transactions (RFC 3261 §17, with RFC 6026's Accepted states), sans I/O.

The rule this module keeps: a transaction only ever (a) queues bytes for its
peer address, (b) reports a response or a timeout to its owner, and (c) says
when it next needs the clock. Time comes in as ``now``.

Timers (T1=0.5 s, T2=4 s, T4=5 s by default; over TCP the retransmission
timers are off and the wait timers D, I, J, K are zero):

=====  ======================  =========================================
timer  transaction             meaning
=====  ======================  =========================================
A, B   INVITE client           retransmit (T1, 2T1 ...); give up at 64*T1
D      INVITE client           absorb final-response retransmissions, 32 s
E, F   non-INVITE client       retransmit (capped at T2); give up at 64*T1
G, H   INVITE server           retransmit final non-2xx; give up on ACK at 64*T1
I      INVITE server           absorb ACK retransmissions, T4
J      non-INVITE server       absorb request retransmissions, 64*T1
K      non-INVITE client       absorb response retransmissions, T4
L, M   INVITE server/client    RFC 6026 Accepted: absorb after a 2xx, 64*T1
=====  ======================  =========================================
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from media.sip.message import Request, Response

Addr = tuple[str, int]


class State(Enum):
    TRYING = "trying"
    CALLING = "calling"
    PROCEEDING = "proceeding"
    COMPLETED = "completed"
    CONFIRMED = "confirmed"
    ACCEPTED = "accepted"
    TERMINATED = "terminated"


@dataclass
class Timers:
    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0


@dataclass
class ServerTransaction:
    """The server side of one request (INVITE or not)."""

    key: tuple[str, ...]
    request: Request
    addr: Addr
    transport: str
    timers: Timers
    state: State = State.PROCEEDING
    last_response: bytes | None = None
    retransmit_at: float | None = None
    retransmit_interval: float = 0.0
    expires_at: float | None = None
    outbox: list[bytes] = field(default_factory=list)
    ack_timeout: bool = False

    @property
    def is_invite(self) -> bool:
        return self.request.method == "INVITE"

    @property
    def reliable(self) -> bool:
        return self.transport != "udp"

    def respond(self, response: Response, now: float) -> None:
        """Send a response; final ones move the state machine on."""
        data = bytes(response)
        self.last_response = data
        self.outbox.append(data)
        t = self.timers
        if response.status < 200:
            self.state = State.PROCEEDING
            return
        if self.is_invite:
            if response.status < 300:
                self.state = State.ACCEPTED  # RFC 6026: the UA core retransmits the 2xx
                self.expires_at = now + 64 * t.t1
            else:
                self.state = State.COMPLETED
                if not self.reliable:
                    self.retransmit_interval = t.t1
                    self.retransmit_at = now + t.t1  # timer G
                self.expires_at = now + 64 * t.t1  # timer H
        else:
            self.state = State.COMPLETED
            self.expires_at = now + (0.0 if self.reliable else 64 * t.t1)  # timer J

    def on_retransmission(self) -> None:
        """The same request again: resend our last response (not after a 2xx)."""
        if self.last_response is not None and self.state != State.ACCEPTED:
            self.outbox.append(self.last_response)

    def on_ack(self, now: float) -> None:
        if self.state == State.COMPLETED and self.is_invite:
            self.state = State.CONFIRMED
            self.retransmit_at = None
            self.expires_at = now + (0.0 if self.reliable else self.timers.t4)  # timer I

    def next_deadline(self) -> float | None:
        times = [t for t in (self.retransmit_at, self.expires_at) if t is not None]
        return min(times) if times else None

    def handle_timer(self, now: float) -> None:
        if self.retransmit_at is not None and now >= self.retransmit_at:
            if self.state == State.COMPLETED and self.last_response is not None:
                self.outbox.append(self.last_response)
                self.retransmit_interval = min(self.retransmit_interval * 2, self.timers.t2)
                self.retransmit_at = now + self.retransmit_interval
            else:
                self.retransmit_at = None
        if self.expires_at is not None and now >= self.expires_at:
            if self.state == State.COMPLETED and self.is_invite:
                self.ack_timeout = True  # timer H: the ACK never came
            self.state = State.TERMINATED
            self.retransmit_at = None
            self.expires_at = None


@dataclass
class ClientTransaction:
    """The client side of one request we sent."""

    branch: str
    request: Request
    addr: Addr
    transport: str
    timers: Timers
    now: float
    state: State = State.TRYING
    retransmit_at: float | None = None
    retransmit_interval: float = 0.0
    expires_at: float | None = None
    outbox: list[bytes] = field(default_factory=list)
    responses: list[Response] = field(default_factory=list)
    timed_out: bool = False
    ack: bytes | None = None

    def __post_init__(self) -> None:
        data = bytes(self.request)
        self.outbox.append(data)
        self._data = data
        t = self.timers
        if self.is_invite:
            self.state = State.CALLING
        if self.transport == "udp":
            self.retransmit_interval = t.t1
            self.retransmit_at = self.now + t.t1  # timer A or E
        self.expires_at = self.now + 64 * t.t1  # timer B or F

    @property
    def is_invite(self) -> bool:
        return self.request.method == "INVITE"

    @property
    def method(self) -> str:
        return self.request.method

    def on_response(self, response: Response, now: float, ack: bytes | None = None) -> bool:
        """Account for a response; True if the owner should see it."""
        reliable = self.transport != "udp"
        if self.state in (State.COMPLETED, State.TERMINATED):
            if self.ack is not None and response.status >= 300:
                self.outbox.append(self.ack)  # retransmitted final response: ACK again
            return False
        if response.status < 200:
            if self.state in (State.CALLING, State.TRYING):
                self.state = State.PROCEEDING
                if self.is_invite:
                    self.retransmit_at = None
                    self.expires_at = None  # timer C territory: the UA core decides
                elif self.retransmit_at is not None:
                    self.retransmit_interval = self.timers.t2
            self.responses.append(response)
            return True
        if self.is_invite:
            if response.status < 300:
                if self.state == State.ACCEPTED:
                    return True  # 2xx retransmission: the UA core re-ACKs
                self.state = State.ACCEPTED
                self.retransmit_at = None
                self.expires_at = now + 64 * self.timers.t1  # timer M
            else:
                self.state = State.COMPLETED
                self.ack = ack
                if ack is not None:
                    self.outbox.append(ack)
                self.retransmit_at = None
                self.expires_at = now + (0.0 if reliable else 32.0)  # timer D
        else:
            self.state = State.COMPLETED
            self.retransmit_at = None
            self.expires_at = now + (0.0 if reliable else self.timers.t4)  # timer K
        self.responses.append(response)
        return True

    def next_deadline(self) -> float | None:
        times = [t for t in (self.retransmit_at, self.expires_at) if t is not None]
        return min(times) if times else None

    def handle_timer(self, now: float) -> None:
        if self.retransmit_at is not None and now >= self.retransmit_at:
            self.outbox.append(self._data)
            self.retransmit_interval *= 2
            if not self.is_invite or self.state == State.PROCEEDING:
                self.retransmit_interval = min(self.retransmit_interval, self.timers.t2)
            self.retransmit_at = now + self.retransmit_interval
        if self.expires_at is not None and now >= self.expires_at:
            if self.state in (State.CALLING, State.TRYING, State.PROCEEDING):
                self.timed_out = True
            self.state = State.TERMINATED
            self.retransmit_at = None
            self.expires_at = None

    def cancel_timers(self) -> None:
        self.retransmit_at = None
        self.expires_at = None
        self.state = State.TERMINATED
