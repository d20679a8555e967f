"""What the UA core tells the application: frozen dataclasses, one per event.

Every event carries the :class:`CallRef` it is about. Per call the order is:

* incoming (UAS): ``IncomingCall`` then either ``CallCancelled`` (CANCEL
  before our final answer), or ``CallConfirmed`` (ACK of our 200) ... and
  finally exactly one ``CallEnded``; a call we rejected ends with no event.
* outgoing (UAC): ``CallProgress``* then ``CallAnswered`` ... ``CallEnded``,
  or ``CallFailed`` (final error, timeout 408, or the 487 after ``cancel``).
* in a call: ``ReinviteReceived``, ``ReinviteAnswered``, ``DtmfInfo``,
  ``ReferStatus``.

After ``hangup()`` the call emits its ``CallEnded(reason="local")`` at once
and nothing more.
"""

from __future__ import annotations

from dataclasses import dataclass

from media.sip.message import Request

__all__ = [
    "CallAnswered",
    "CallCancelled",
    "CallConfirmed",
    "CallEnded",
    "CallFailed",
    "CallProgress",
    "CallRef",
    "DtmfInfo",
    "Event",
    "IncomingCall",
    "Outgoing",
    "ReferStatus",
    "ReinviteAnswered",
    "ReinviteReceived",
]


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
    """Base of every UA event."""

    call: CallRef


@dataclass(frozen=True)
class IncomingCall(Event):
    """A new INVITE (100 Trying already sent); answer with ring()/answer()/reject().

    ``offer`` is the SDP (taken out of a multipart/mixed body when needed);
    empty for an INVITE without an offer, in which case the 200 carries our
    offer and the answer comes in the ACK (``CallConfirmed.sdp``).
    """

    request: Request
    offer: bytes
    remote_addr: tuple[str, int]
    transport: str


@dataclass(frozen=True)
class CallConfirmed(Event):
    """The ACK for our 200 arrived; ``sdp`` is its body (the answer to an offer in our 200)."""

    sdp: bytes = b""


@dataclass(frozen=True)
class CallCancelled(Event):
    """The caller sent CANCEL before we answered: 487 sent, the call is over."""


@dataclass(frozen=True)
class CallEnded(Event):
    """The call is over.

    ``reason``: ``bye`` (the peer hung up), ``local`` (hangup()), ``no-ack``
    (our 200 was never ACKed within 64*T1: BYE sent), ``timeout`` (an
    in-dialog request got 408 or no answer), ``gone`` (an in-dialog request
    got 481: the peer forgot the dialog), ``cancelled`` (our CANCEL crossed
    the peer's 200: ACK and BYE sent).
    """

    reason: str
    by_remote: bool


@dataclass(frozen=True)
class ReinviteReceived(Event):
    """A re-INVITE in the dialog; answer with answer_reinvite()/reject_reinvite()."""

    offer: bytes


@dataclass(frozen=True)
class ReinviteAnswered(Event):
    """The final answer to our own re-INVITE (ACK already sent for a 2xx).

    ``status`` 491 means glare: try again after a random pause (§14.1).
    """

    status: int
    sdp: bytes | None


@dataclass(frozen=True)
class DtmfInfo(Event):
    """A digit carried by SIP INFO (application/dtmf-relay or application/dtmf)."""

    digit: str
    duration_ms: int


@dataclass(frozen=True)
class CallProgress(Event):
    """A provisional response to our INVITE (``sdp`` when it carries early media)."""

    status: int
    sdp: bytes | None


@dataclass(frozen=True)
class CallAnswered(Event):
    """Our INVITE was answered with 2xx (ACK already sent)."""

    sdp: bytes


@dataclass(frozen=True)
class CallFailed(Event):
    """Our INVITE got a final error, or no answer (status 408)."""

    status: int
    reason: str


@dataclass(frozen=True)
class ReferStatus(Event):
    """Progress of a blind transfer: the REFER's own final status (202 ...), then each
    NOTIFY's sipfrag status (100, 180, 200 ...)."""

    status: int
