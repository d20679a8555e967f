"""What the UA core tells the application: frozen dataclasses, one per event."""

from __future__ import annotations

from dataclasses import dataclass

from media.sip.message import Request


@dataclass(frozen=True)
class CallRef:
    """The application's handle on a call; hashable, never a transaction."""

    id: int
    call_id: str


@dataclass(frozen=True)
class Outgoing:
    """Bytes to send to ``addr`` over ``transport`` ("udp" or "tcp")."""

    data: bytes
    addr: tuple[str, int]
    transport: str


@dataclass(frozen=True)
class Event:
    call: CallRef


@dataclass(frozen=True)
class IncomingCall(Event):
    """A new INVITE; answer with ring()/answer()/reject()."""

    request: Request
    offer: bytes
    remote_addr: tuple[str, int]
    transport: str


@dataclass(frozen=True)
class CallConfirmed(Event):
    """The ACK for our 2xx arrived."""


@dataclass(frozen=True)
class CallCancelled(Event):
    """The caller sent CANCEL before we answered (we sent 487)."""


@dataclass(frozen=True)
class CallEnded(Event):
    """The call is over: ``reason`` is bye, no-ack, local, timeout or error."""

    reason: str
    by_remote: bool


@dataclass(frozen=True)
class ReinviteReceived(Event):
    """A re-INVITE in the dialog; answer with answer_reinvite()/reject_reinvite()."""

    offer: bytes


@dataclass(frozen=True)
class DtmfInfo(Event):
    """A digit carried by SIP INFO."""

    digit: str
    duration_ms: int


@dataclass(frozen=True)
class CallProgress(Event):
    """A provisional response to our INVITE."""

    status: int
    sdp: bytes | None


@dataclass(frozen=True)
class CallAnswered(Event):
    """Our INVITE was answered (ACK already sent)."""

    sdp: bytes


@dataclass(frozen=True)
class CallFailed(Event):
    """Our INVITE got a final error, or timed out (status 408)."""

    status: int
    reason: str


@dataclass(frozen=True)
class ReferStatus(Event):
    """Progress of a blind transfer: 202 for the REFER, then NOTIFY sipfrag codes."""

    status: int


@dataclass(frozen=True)
class ReinviteAnswered(Event):
    """The answer to our own re-INVITE (status, and SDP when 2xx)."""

    status: int
    sdp: bytes | None
