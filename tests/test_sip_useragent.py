"""The UA core in memory on virtual time: two UserAgents wired together, plus a hand-driven peer.

``Wire`` is aioquic's ``roundtrip()`` for SIP: it moves each UA's
``datagrams_to_send()`` into the UA listening on the target address (or
drops them when a test says so), logs everything with the virtual time, and
``advance(t)`` fires every deadline up to ``t``. Tests that need a peer doing
something our own UA never does (RFC 2543 style, challenges, bad requests)
feed hand-written SIP text into ``receive`` and parse what comes out.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from pathlib import Path

import pytest

from media.sip import events as ev
from media.sip.auth import Challenge, verify
from media.sip.errors import SipUsageError
from media.sip.events import Outgoing
from media.sip.message import Request, Response, make_response, parse_message
from media.sip.service import SipService
from media.sip.useragent import ALLOW, UserAgent
from tests.conftest import TORTURE
from tests.peers.sipp import Sipp, SippResult, Transport

Addr = tuple[str, int]
UAC = ("127.0.0.1", 5060)
UAS = ("127.0.0.1", 5070)
PEER = ("127.0.0.1", 5099)
OFFER = (
    b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    b"m=audio 40000 RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n"
)
ANSWER = OFFER.replace(b"40000", b"40002")
HOLD = OFFER.replace(b"a=sendrecv", b"a=sendonly")


def make_ua(addr: Addr, seed: int, **kw: object) -> UserAgent:
    return UserAgent(local_host=addr[0], local_port=addr[1], rng=random.Random(seed), **kw)  # type: ignore[arg-type]


class Wire:
    """Loss-controllable in-memory network between UserAgents, on virtual time."""

    def __init__(self, *uas: UserAgent) -> None:
        self.uas = {(ua.local_host, ua.local_port): ua for ua in uas}
        self.log: list[tuple[float, Addr, Outgoing]] = []
        self.drop: Callable[[Outgoing], bool] = lambda out: False
        self.now = 0.0

    def flush(self, now: float | None = None) -> None:
        if now is not None:
            self.now = now
        moved = True
        while moved:
            moved = False
            for addr, ua in list(self.uas.items()):
                for out in ua.datagrams_to_send():
                    moved = True
                    self.log.append((self.now, addr, out))
                    target = self.uas.get(out.addr)
                    if target is not None and not self.drop(out):
                        target.receive(out.data, addr, out.transport, self.now)

    def advance(self, until: float) -> None:
        self.flush()
        while True:
            due = [d for ua in self.uas.values() if (d := ua.next_deadline()) is not None]
            if not due or min(due) > until:
                break
            self.now = max(self.now, min(due))
            for ua in self.uas.values():
                ua.handle_timer(self.now)
            self.flush()
        self.now = max(self.now, until)

    def sent(self, src: Addr, start: bytes) -> list[float]:
        """Instants at which ``src`` sent a message whose first line starts with ``start``."""
        return [t for t, a, out in self.log if a == src and out.data.startswith(start)]


def events(ua: UserAgent) -> list[ev.Event]:
    out = []
    while (event := ua.next_event()) is not None:
        out.append(event)
    return out


def only(ua: UserAgent, kind: type[ev.Event]) -> list[ev.Event]:
    return [e for e in events(ua) if isinstance(e, kind)]


def setup_call(transport: str = "udp") -> tuple[Wire, UserAgent, UserAgent, ev.CallRef, ev.CallRef]:
    """UAC calls UAS, UAS rings and answers; both sides confirmed at t=0."""
    uac, uas = make_ua(UAC, 1), make_ua(UAS, 2)
    wire = Wire(uac, uas)
    ref_c = uac.invite(
        "sip:ivr@127.0.0.1:5070",
        dest=UAS,
        transport=transport,
        from_uri="sip:alice@127.0.0.1",
        sdp=OFFER,
        now=0.0,
    )
    wire.flush()
    incoming = events(uas)
    assert isinstance(incoming[0], ev.IncomingCall)
    ref_s = incoming[0].call
    assert uas.ring(ref_s, 0.0) and uas.answer(ref_s, ANSWER, 0.0)
    wire.flush()
    assert [type(e) for e in events(uac)] == [ev.CallProgress, ev.CallProgress, ev.CallAnswered]
    assert events(uas) == [ev.CallConfirmed(ref_s)]
    return wire, uac, uas, ref_c, ref_s


# ------------------------------------------------------------- hand-written peer
def sip(
    method: str = "INVITE",
    *,
    call_id: str = "hand-1@127.0.0.1",
    branch: str = "z9hG4bK-h1",
    cseq: int = 1,
    cseq_method: str | None = None,
    from_tag: str = "peer1",
    to_tag: str | None = None,
    uri: str = "sip:ivr@127.0.0.1:5070",
    body: bytes = b"",
    ctype: str | None = None,
    extra: tuple[str, ...] = (),
    via: str = "SIP/2.0/UDP 127.0.0.1:5099",
    version: str = "2.0",
    drop: tuple[str, ...] = (),
) -> bytes:
    if method == "INVITE" and not body and ctype is None and to_tag is None:
        body, ctype = OFFER, "application/sdp"
    lines = [
        f"{method} {uri} SIP/{version}",
        f"Via: {via};branch={branch}",
        "Max-Forwards: 70",
        f"From: <sip:caller@127.0.0.1>;tag={from_tag}",
        "To: <sip:ivr@127.0.0.1>" + (f";tag={to_tag}" if to_tag else ""),
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} {cseq_method or method}",
        "Contact: <sip:caller@127.0.0.1:5099>",
    ]
    lines = [line for line in lines if line.split(":")[0] not in drop]
    lines += extra
    if ctype:
        lines.append(f"Content-Type: {ctype}")
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def responses(outs: list[Outgoing]) -> list[Response]:
    found = []
    for out in outs:
        msg = parse_message(out.data)
        if isinstance(msg, Response):
            found.append(msg)
    return found


def statuses(ua: UserAgent) -> list[int]:
    return [r.status for r in responses(ua.datagrams_to_send())]


def answered_hand_call(ua: UserAgent) -> tuple[ev.CallRef, str]:
    """A hand-driven peer calls ``ua``, which answers; the peer ACKs. (ref, our To tag)"""
    ua.receive(sip(), PEER, "udp", 0.0)
    call = events(ua)[0].call
    ua.answer(call, ANSWER, 0.0)
    ok = responses(ua.datagrams_to_send())[-1]
    tag = ok.to.tag
    assert ok.status == 200 and tag
    ua.receive(sip("ACK", branch="z9hG4bK-a1", to_tag=tag), PEER, "udp", 0.1)
    assert events(ua) == [ev.CallConfirmed(call)]
    return call, tag


# =================================================================== call flows
@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_full_call_uac_to_uas_and_bye_from_uas(transport: str) -> None:
    wire, uac, uas, ref_c, ref_s = setup_call(transport)
    first = wire.log[1][2]  # the UAS's first answer is 100 Trying, at once
    assert first.data.startswith(b"SIP/2.0 100 Trying") and first.transport == transport
    assert uas.call_state(ref_s) == "confirmed" and uac.call_state(ref_c) == "confirmed"
    assert uas.hangup(ref_s, 1.0)
    wire.flush(1.0)
    assert events(uas) == [ev.CallEnded(ref_s, "local", False)]
    assert events(uac) == [ev.CallEnded(ref_c, "bye", True)]
    assert wire.sent(UAC, b"SIP/2.0 200") == [1.0]  # the 200 to the BYE
    wire.advance(100.0)
    assert uac.next_deadline() is None and uas.next_deadline() is None
    assert uac.call_state(ref_c) is None and uas.call_state(ref_s) is None  # forgotten
    if transport == "tcp":
        assert len(wire.sent(UAC, b"INVITE")) == 1 and len(wire.sent(UAS, b"SIP/2.0 200")) == 1


def test_full_call_bye_from_uac_and_event_payloads() -> None:
    uac, uas = make_ua(UAC, 1), make_ua(UAS, 2)
    wire = Wire(uac, uas)
    ref_c = uac.invite(
        "sip:ivr@127.0.0.1:5070", dest=UAS, from_uri="sip:alice@127.0.0.1", sdp=OFFER, now=0.0
    )
    wire.flush()
    incoming = events(uas)[0]
    assert isinstance(incoming, ev.IncomingCall)
    assert incoming.offer == OFFER and incoming.remote_addr == UAC and incoming.transport == "udp"
    assert incoming.request.method == "INVITE" and incoming.call.call_id == ref_c.call_id
    uas.ring(incoming.call, 0.5)
    wire.flush(0.5)
    assert events(uac) == [ev.CallProgress(ref_c, 100, None), ev.CallProgress(ref_c, 180, None)]
    uas.answer(incoming.call, ANSWER, 1.0)
    wire.flush(1.0)
    assert events(uac) == [ev.CallAnswered(ref_c, ANSWER)]
    assert uac.hangup(ref_c, 2.0) and not uac.hangup(ref_c, 2.0)
    wire.flush(2.0)
    assert events(uas) == [
        ev.CallConfirmed(incoming.call),
        ev.CallEnded(incoming.call, "bye", True),
    ]
    assert events(uac) == [ev.CallEnded(ref_c, "local", False)]


def test_in_dialog_requests_go_to_the_peer_address_not_the_contact() -> None:
    ua = make_ua(UAS, 3)
    ua.receive(
        sip(extra=("Record-Route: <sip:p1.example.com;lr>",)).replace(
            b"Contact: <sip:caller@127.0.0.1:5099>", b"Contact: <sip:caller@192.0.2.9:5062>"
        ),
        PEER,
        "udp",
        0.0,
    )
    call = events(ua)[0].call
    ua.answer(call, ANSWER, 0.0)
    tag = responses(ua.datagrams_to_send())[-1].to.tag
    ua.receive(sip("ACK", branch="z9hG4bK-a", to_tag=tag), PEER, "udp", 0.1)
    ua.hangup(call, 1.0)
    [bye_out] = ua.datagrams_to_send()
    bye = parse_message(bye_out.data)
    assert isinstance(bye, Request) and bye.method == "BYE"
    assert bye_out.addr == PEER  # symmetric signalling, never 192.0.2.9
    assert bye.uri == "sip:caller@192.0.2.9:5062"  # the remote target
    assert bye.headers.get_all("Route") == ["<sip:p1.example.com;lr>"]
    assert bye.to.tag == "peer1" and bye.from_.tag == tag and bye.cseq.method == "BYE"


# ================================================================ retransmission
def test_invite_retransmission_is_absorbed_and_gets_the_last_provisional() -> None:
    uac, uas = make_ua(UAC, 1), make_ua(UAS, 2)
    wire = Wire(uac, uas)
    wire.drop = lambda out: out.data.startswith(b"SIP/2.0 100")
    uac.invite("sip:ivr@127.0.0.1:5070", dest=UAS, from_uri="sip:a@127.0.0.1", sdp=OFFER, now=0.0)
    wire.advance(2.0)
    assert wire.sent(UAC, b"INVITE") == [0.0, 0.5, 1.5]  # timer A
    assert wire.sent(UAS, b"SIP/2.0 100") == [0.0, 0.5, 1.5]  # absorbed, 100 again
    assert len(only(uas, ev.IncomingCall)) == 1


def test_2xx_retransmitted_until_ack_then_bye_after_64_T1() -> None:
    uac, uas = make_ua(UAC, 1), make_ua(UAS, 2)
    wire = Wire(uac, uas)
    wire.drop = lambda out: out.data.startswith(b"ACK")
    ref_c = uac.invite(
        "sip:ivr@127.0.0.1:5070", dest=UAS, from_uri="sip:a@127.0.0.1", sdp=OFFER, now=0.0
    )
    wire.flush()
    ref_s = events(uas)[0].call
    uas.answer(ref_s, ANSWER, 0.0)
    wire.advance(40.0)
    assert wire.sent(UAS, b"SIP/2.0 200") == [
        0.0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5,
    ]  # fmt: skip
    assert wire.sent(UAC, b"ACK") == wire.sent(UAS, b"SIP/2.0 200")  # each one re-ACKed
    assert wire.sent(UAS, b"BYE") == [32.0]
    assert events(uas) == [ev.CallEnded(ref_s, "no-ack", False)]
    assert events(uac)[-1] == ev.CallEnded(ref_c, "bye", True)


def test_lost_ack_is_recovered_by_the_2xx_retransmission() -> None:
    uac, uas = make_ua(UAC, 1), make_ua(UAS, 2)
    wire = Wire(uac, uas)
    lost: list[Outgoing] = []

    def lose_first_ack(out: Outgoing) -> bool:
        if out.data.startswith(b"ACK") and not lost:
            lost.append(out)
            return True
        return False

    wire.drop = lose_first_ack
    uac.invite("sip:ivr@127.0.0.1:5070", dest=UAS, from_uri="sip:a@127.0.0.1", sdp=OFFER, now=0.0)
    wire.flush()
    ref_s = events(uas)[0].call
    uas.answer(ref_s, ANSWER, 0.0)
    wire.advance(5.0)
    assert wire.sent(UAS, b"SIP/2.0 200") == [0.0, 0.5]
    assert events(uas) == [ev.CallConfirmed(ref_s)]
    assert uas.next_deadline() is None or uas.next_deadline() > 5.0  # type: ignore[operator]


def test_invite_without_answer_fails_408_after_timer_B() -> None:
    uac = make_ua(UAC, 1)
    wire = Wire(uac)  # nobody listens on 5070
    ref = uac.invite(
        "sip:ivr@127.0.0.1:5070", dest=UAS, from_uri="sip:a@127.0.0.1", sdp=OFFER, now=0.0
    )
    wire.advance(40.0)
    assert wire.sent(UAC, b"INVITE") == [0.0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert events(uac) == [ev.CallFailed(ref, 408, "Request Timeout")]
    assert uac.pending_transactions() == 0


# ======================================================================= CANCEL
def test_cancel_while_ringing_gives_487_and_no_answer_can_follow() -> None:
    uac, uas = make_ua(UAC, 1), make_ua(UAS, 2)
    wire = Wire(uac, uas)
    ref_c = uac.invite(
        "sip:ivr@127.0.0.1:5070", dest=UAS, from_uri="sip:a@127.0.0.1", sdp=OFFER, now=0.0
    )
    wire.flush()
    ref_s = events(uas)[0].call
    uas.ring(ref_s, 0.1)
    wire.flush(0.1)
    assert uac.cancel(ref_c, 1.0)
    wire.flush(1.0)
    assert events(uas) == [ev.CallCancelled(ref_s)]
    assert events(uac)[-1] == ev.CallFailed(ref_c, 487, "Request Terminated")
    assert not uas.answer(ref_s, ANSWER, 1.1) and not uas.ring(ref_s, 1.1)
    assert not uas.reject(ref_s, 486, 1.1)
    wire.advance(60.0)
    assert wire.sent(UAS, b"SIP/2.0 200 OK") == [1.0]  # only the CANCEL's 200: no ghost
    assert wire.sent(UAS, b"SIP/2.0 487") == [1.0] and len(wire.sent(UAC, b"ACK")) == 1


def test_cancel_race_answer_decided_before_cancel_arrives() -> None:
    ua = make_ua(UAS, 4)
    ua.receive(sip(), PEER, "udp", 0.0)
    call = events(ua)[0].call  # the application decides to answer ...
    assert statuses(ua) == [100]
    ua.receive(sip("CANCEL", body=b""), PEER, "udp", 0.2)  # ... but CANCEL is first
    out = responses(ua.datagrams_to_send())
    assert [(r.status, r.cseq.method) for r in out] == [(200, "CANCEL"), (487, "INVITE")]
    assert out[0].to.tag == out[1].to.tag  # one To tag for the CANCEL and the INVITE
    assert events(ua) == [ev.CallCancelled(call)]
    assert ua.answer(call, ANSWER, 0.3) is False
    assert ua.datagrams_to_send() == []  # never a 200 to the INVITE


def test_cancel_after_200_is_answered_200_and_the_call_goes_on() -> None:
    ua = make_ua(UAS, 5)
    call, _tag = answered_hand_call(ua)
    ua.receive(sip("CANCEL", body=b""), PEER, "udp", 0.5)
    assert [(r.status, r.cseq.method) for r in responses(ua.datagrams_to_send())] == [
        (200, "CANCEL")
    ]
    assert events(ua) == [] and ua.call_state(call) == "confirmed"


def test_cancel_matching_nothing_gets_481() -> None:
    ua = make_ua(UAS, 6)
    ua.receive(sip("CANCEL", branch="z9hG4bK-nothing", body=b""), PEER, "udp", 0.0)
    assert statuses(ua) == [481]


def test_uac_cancel_waits_for_a_provisional_response() -> None:
    uac, uas = make_ua(UAC, 1), make_ua(UAS, 2)
    wire = Wire(uac, uas)
    held: list[Outgoing] = []

    def hold_provisional(out: Outgoing) -> bool:
        if out.data.startswith(b"SIP/2.0 1"):
            held.append(out)
            return True
        return False

    wire.drop = hold_provisional
    ref_c = uac.invite(
        "sip:ivr@127.0.0.1:5070", dest=UAS, from_uri="sip:a@127.0.0.1", sdp=OFFER, now=0.0
    )
    wire.flush()
    assert uac.cancel(ref_c, 0.1)
    wire.flush(0.1)
    assert wire.sent(UAC, b"CANCEL") == []  # §9.1: not before a provisional response
    uac.receive(held[0].data, UAS, "udp", 0.2)  # the 100 Trying finally arrives
    wire.now = 0.2
    wire.drop = lambda out: False
    wire.flush(0.2)
    assert wire.sent(UAC, b"CANCEL") == [0.2]
    assert events(uac)[-1] == ev.CallFailed(ref_c, 487, "Request Terminated")


def test_200_crossing_our_cancel_is_acked_and_byed() -> None:
    uac, uas = make_ua(UAC, 1), make_ua(UAS, 2)
    wire = Wire(uac, uas)
    ref_c = uac.invite(
        "sip:ivr@127.0.0.1:5070", dest=UAS, from_uri="sip:a@127.0.0.1", sdp=OFFER, now=0.0
    )
    wire.flush()
    ref_s = events(uas)[0].call
    wire.drop = lambda out: out.data.startswith(b"CANCEL")
    uac.cancel(ref_c, 0.5)
    wire.flush(0.5)
    uas.answer(ref_s, ANSWER, 0.6)
    wire.flush(0.6)
    assert [type(e) for e in events(uac)] == [ev.CallProgress, ev.CallEnded]
    assert wire.sent(UAC, b"ACK") == [0.6] and wire.sent(UAC, b"BYE") == [0.6]
    assert events(uas) == [ev.CallConfirmed(ref_s), ev.CallEnded(ref_s, "bye", True)]


# ===================================================================== hang-up
def test_hangup_of_an_unanswered_incoming_call_sends_480() -> None:
    ua = make_ua(UAS, 7)
    ua.receive(sip(), PEER, "udp", 0.0)
    call = events(ua)[0].call
    ua.datagrams_to_send()
    assert ua.hangup(call, 0.1)
    assert statuses(ua) == [480]
    assert events(ua) == [ev.CallEnded(call, "local", False)]
    assert not ua.answer(call, ANSWER, 0.2)


def test_hangup_before_the_ack_sends_bye_only_after_the_ack() -> None:
    ua = make_ua(UAS, 8)
    ua.receive(sip(), PEER, "udp", 0.0)
    call = events(ua)[0].call
    ua.answer(call, ANSWER, 0.0)
    tag = responses(ua.datagrams_to_send())[-1].to.tag
    ua.hangup(call, 0.1)
    assert ua.datagrams_to_send() == []  # §15: no BYE before the ACK
    ua.handle_timer(0.5)
    assert statuses(ua) == [200]  # the 200 keeps being retransmitted
    ua.receive(sip("ACK", branch="z9hG4bK-a", to_tag=tag), PEER, "udp", 0.6)
    [bye] = ua.datagrams_to_send()
    assert bye.data.startswith(b"BYE ") and bye.addr == PEER
    assert events(ua) == [ev.CallEnded(call, "local", False)]  # and nothing else


def test_hangup_of_an_early_uac_call_cancels_silently() -> None:
    uac, uas = make_ua(UAC, 1), make_ua(UAS, 2)
    wire = Wire(uac, uas)
    ref_c = uac.invite(
        "sip:ivr@127.0.0.1:5070", dest=UAS, from_uri="sip:a@127.0.0.1", sdp=OFFER, now=0.0
    )
    wire.flush()
    events(uac)
    assert uac.hangup(ref_c, 0.5)
    wire.flush(0.5)
    assert wire.sent(UAC, b"CANCEL") == [0.5]
    assert events(uac) == [ev.CallEnded(ref_c, "local", False)]  # not CallFailed(487)


# ==================================================================== re-INVITE
def test_reinvite_hold_round_trip() -> None:
    wire, uac, uas, ref_c, ref_s = setup_call()
    assert uac.reinvite(ref_c, HOLD, 1.0)
    assert not uac.reinvite(ref_c, HOLD, 1.0)  # one at a time
    wire.flush(1.0)
    [received] = events(uas)
    assert isinstance(received, ev.ReinviteReceived) and b"a=sendonly" in received.offer
    assert uas.answer_reinvite(ref_s, ANSWER.replace(b"sendrecv", b"recvonly"), 1.1)
    wire.flush(1.1)
    wire.advance(10.0)
    [answered] = events(uac)
    assert isinstance(answered, ev.ReinviteAnswered) and answered.status == 200
    assert answered.sdp is not None and b"a=recvonly" in answered.sdp
    assert wire.sent(UAS, b"SIP/2.0 200") == [0.0, 1.1]  # ACKed: no retransmission
    assert len(wire.sent(UAC, b"ACK")) == 2 and events(uas) == []
    invites = [o for _, a, o in wire.log if a == UAC and o.data.startswith(b"INVITE")]
    second = parse_message(invites[1].data)
    assert isinstance(second, Request) and second.cseq.seq == 2 and second.to.tag


def test_reinvite_glare_gets_491_on_both_sides() -> None:
    wire, uac, uas, ref_c, ref_s = setup_call()
    assert uac.reinvite(ref_c, HOLD, 1.0) and uas.reinvite(ref_s, HOLD, 1.0)
    wire.flush(1.0)
    assert events(uac) == [ev.ReinviteAnswered(ref_c, 491, None)]
    assert events(uas) == [ev.ReinviteAnswered(ref_s, 491, None)]
    assert uac.reinvite(ref_c, HOLD, 3.0)  # the app may try again later
    wire.flush(3.0)
    assert isinstance(events(uas)[0], ev.ReinviteReceived)


def test_second_reinvite_while_one_is_pending_gets_500_with_retry_after() -> None:
    ua = make_ua(UAS, 9)
    call, tag = answered_hand_call(ua)
    ua.receive(
        sip(cseq=2, branch="z9hG4bK-r2", to_tag=tag, body=HOLD, ctype="application/sdp"),
        PEER,
        "udp",
        1.0,
    )
    assert [type(e) for e in events(ua)] == [ev.ReinviteReceived]
    ua.receive(
        sip(cseq=3, branch="z9hG4bK-r3", to_tag=tag, body=HOLD, ctype="application/sdp"),
        PEER,
        "udp",
        1.1,
    )
    [busy] = responses(ua.datagrams_to_send())
    assert busy.status == 500 and busy.headers.get("Retry-After") is not None
    assert ua.reject_reinvite(call, 488, 1.2)
    assert statuses(ua) == [488] and ua.call_state(call) == "confirmed"
    with pytest.raises(SipUsageError, match="300-699, got 200"):
        ua.reject_reinvite(call, 200, 1.3)


def test_out_of_order_cseq_in_dialog_gets_500() -> None:
    ua = make_ua(UAS, 10)
    call, tag = answered_hand_call(ua)
    ua.receive(sip("INFO", cseq=5, branch="z9hG4bK-i5", to_tag=tag), PEER, "udp", 1.0)
    assert statuses(ua) == [200]
    ua.receive(sip("BYE", cseq=4, branch="z9hG4bK-b4", to_tag=tag), PEER, "udp", 1.1)
    [late] = responses(ua.datagrams_to_send())
    assert late.status == 500 and late.reason == "CSeq Out Of Order"
    assert ua.call_state(call) == "confirmed"


# ======================================================================== INFO
def test_info_dtmf_relay_between_two_uas() -> None:
    wire, uac, uas, ref_c, ref_s = setup_call()
    assert uac.send_info_dtmf(ref_c, "5", 160, 1.0)
    wire.flush(1.0)
    assert events(uas) == [ev.DtmfInfo(ref_s, "5", 160)]
    assert wire.sent(UAS, b"SIP/2.0 200") == [0.0, 1.0]
    with pytest.raises(SipUsageError, match="'x' is not a DTMF digit"):
        uac.send_info_dtmf(ref_c, "x", 100, 1.0)


@pytest.mark.parametrize(
    ("ctype", "body", "status", "event"),
    [
        ("application/dtmf-relay", b"Signal=5\r\nDuration=160\r\n", 200, ("5", 160)),
        ("application/dtmf", b"7", 200, ("7", 250)),
        ("application/dtmf-relay", b"Signal=Z\r\n", 400, None),
        ("text/plain", b"5", 415, None),
        (None, b"", 200, None),  # an empty INFO is a keep-alive
    ],
)
def test_info_bodies(ctype: str | None, body: bytes, status: int, event: object) -> None:
    ua = make_ua(UAS, 11)
    call, tag = answered_hand_call(ua)
    ua.receive(
        sip("INFO", cseq=2, branch="z9hG4bK-i", to_tag=tag, body=body, ctype=ctype),
        PEER,
        "udp",
        1.0,
    )
    [resp] = responses(ua.datagrams_to_send())
    assert resp.status == status
    if status == 415:
        assert resp.headers.get("Accept") == "application/dtmf-relay, application/dtmf"
    if status == 400:
        assert "not a DTMF digit" in resp.reason
    expected = [ev.DtmfInfo(call, *event)] if isinstance(event, tuple) else []
    assert events(ua) == expected


def test_info_outside_a_dialog_gets_481() -> None:
    ua = make_ua(UAS, 12)
    ua.receive(sip("INFO", body=b"5", ctype="application/dtmf"), PEER, "udp", 0.0)
    assert statuses(ua) == [481]
    ua.receive(
        sip("INFO", branch="z9hG4bK-2", to_tag="nope", body=b"5", ctype="application/dtmf"),
        PEER,
        "udp",
        0.0,
    )
    assert statuses(ua) == [481]


# ================================================================ REFER / NOTIFY
def test_blind_transfer_refer_202_and_notify_sipfrag() -> None:
    ua = make_ua(UAS, 13)
    call, tag = answered_hand_call(ua)
    assert ua.refer(call, "sip:agent7@127.0.0.1:5080", 1.0)
    [out] = ua.datagrams_to_send()
    refer = parse_message(out.data)
    assert isinstance(refer, Request) and refer.method == "REFER" and out.addr == PEER
    assert refer.headers.get("Refer-To") == "<sip:agent7@127.0.0.1:5080>"
    assert refer.uri == "sip:caller@127.0.0.1:5099" and refer.to.tag == "peer1"
    assert refer.from_.tag == tag and refer.cseq.seq == 1
    ua.receive(bytes(make_response(refer, 202)), PEER, "udp", 1.1)
    for n, frag in enumerate((b"SIP/2.0 100 Trying\r\n", b"SIP/2.0 200 OK\r\n"), start=2):
        ua.receive(
            sip(
                "NOTIFY",
                cseq=n,
                branch=f"z9hG4bK-n{n}",
                to_tag=tag,
                body=frag,
                ctype="message/sipfrag;version=2.0",
                extra=("Event: refer", "Subscription-State: active;expires=60"),
            ),
            PEER,
            "udp",
            1.0 + n,
        )
    assert statuses(ua) == [200, 200]
    assert events(ua) == [ev.ReferStatus(call, code) for code in (202, 100, 200)]


def test_notify_for_another_event_and_refer_to_us() -> None:
    ua = make_ua(UAS, 14)
    _call, tag = answered_hand_call(ua)
    ua.receive(
        sip("NOTIFY", cseq=2, branch="z9hG4bK-n", to_tag=tag, extra=("Event: dialog",)),
        PEER,
        "udp",
        1.0,
    )
    assert statuses(ua) == [489]
    ua.receive(
        sip(
            "REFER", cseq=3, branch="z9hG4bK-r", to_tag=tag, extra=("Refer-To: <sip:x@127.0.0.1>",)
        ),
        PEER,
        "udp",
        1.1,
    )
    assert statuses(ua) == [603]  # we transfer others; we are not transferred


def test_refer_between_two_uas_reports_the_decline() -> None:
    wire, uac, uas, ref_c, ref_s = setup_call()
    assert uas.refer(ref_s, "sip:agent@127.0.0.1", 1.0)
    wire.flush(1.0)
    assert events(uas) == [ev.ReferStatus(ref_s, 603)]
    assert uac.call_state(ref_c) == "confirmed"


# ======================================================================== digest
def _challenge_round(
    *, algorithm: str, status: int, stale_second: bool | None
) -> tuple[UserAgent, ev.CallRef, list[Request]]:
    """Our UAC against a hand-driven server that challenges (and maybe challenges again)."""
    uac = make_ua(UAC, 21)
    ref = uac.invite(
        "sip:ivr@127.0.0.1:5070",
        dest=UAS,
        from_uri="sip:alice@127.0.0.1",
        sdp=OFFER,
        now=0.0,
        credentials=("alice", "s3cret"),
    )
    sent: list[Request] = []
    header = "WWW-Authenticate" if status == 401 else "Proxy-Authenticate"
    nonces = ["n0nce-1", "n0nce-2"]
    rounds = 1 if stale_second is None else 2
    for i in range(rounds + 1):
        msgs = [parse_message(o.data) for o in uac.datagrams_to_send()]
        invites = [m for m in msgs if isinstance(m, Request) and m.method == "INVITE"]
        sent += invites
        if i == rounds:
            break
        challenge = Challenge(
            realm="callcore.test",
            nonce=nonces[i],
            algorithm=algorithm,
            qop=("auth",),
            opaque="op4",
            stale=bool(stale_second and i),
        )
        resp = make_response(invites[-1], status, to_tag="srv1", headers=[(header, str(challenge))])
        uac.receive(bytes(resp), UAS, "udp", 0.1 + i)
    return uac, ref, sent


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256"])
@pytest.mark.parametrize("status", [401, 407])
def test_digest_challenge_round_trip(algorithm: str, status: int) -> None:
    uac, ref, sent = _challenge_round(algorithm=algorithm, status=status, stale_second=None)
    first, second = sent
    name = "Authorization" if status == 401 else "Proxy-Authorization"
    value = second.headers.get(name)
    assert value is not None and first.headers.get(name) is None
    assert verify(value, "s3cret", "INVITE", realm="callcore.test", nonce="n0nce-1", user="alice")
    assert not verify(value, "wrong", "INVITE", realm="callcore.test", nonce="n0nce-1")
    assert f"algorithm={algorithm}" in value
    assert second.cseq.seq == first.cseq.seq + 1 and second.call_id == first.call_id
    assert second.from_.tag == first.from_.tag
    assert second.vias[0].branch != first.vias[0].branch
    uac.receive(
        bytes(
            make_response(
                second,
                200,
                to_tag="srv2",
                body=ANSWER,
                content_type="application/sdp",
                headers=[("Contact", "<sip:srv@127.0.0.1:5070>")],
            )
        ),
        UAS,
        "udp",
        1.0,
    )
    assert events(uac) == [ev.CallAnswered(ref, ANSWER)]
    acks = [parse_message(o.data) for o in uac.datagrams_to_send()]
    assert [a.cseq.seq for a in acks if isinstance(a, Request)] == [2]


def test_digest_second_challenge_fails_unless_stale() -> None:
    uac, ref, sent = _challenge_round(algorithm="MD5", status=401, stale_second=False)
    assert len(sent) == 2 and events(uac) == [ev.CallFailed(ref, 401, "Unauthorized")]
    uac, ref, sent = _challenge_round(algorithm="MD5", status=401, stale_second=True)
    assert len(sent) == 3 and events(uac) == []  # stale=true: one more try
    assert [s.cseq.seq for s in sent] == [1, 2, 3]


def test_challenge_without_credentials_fails() -> None:
    uac = make_ua(UAC, 22)
    ref = uac.invite(
        "sip:ivr@127.0.0.1:5070", dest=UAS, from_uri="sip:a@127.0.0.1", sdp=OFFER, now=0.0
    )
    inv = parse_message(uac.datagrams_to_send()[0].data)
    assert isinstance(inv, Request)
    challenge = str(Challenge(realm="r", nonce="n"))
    uac.receive(
        bytes(make_response(inv, 401, to_tag="t", headers=[("WWW-Authenticate", challenge)])),
        UAS,
        "udp",
        0.1,
    )
    assert events(uac) == [ev.CallFailed(ref, 401, "Unauthorized")]
    [ack] = uac.datagrams_to_send()
    assert ack.data.startswith(b"ACK ")


# ================================================================ error answers
@pytest.mark.parametrize(
    ("message", "status", "check"),
    [
        (sip("PUBLISH"), 501, ("Allow", ALLOW)),
        (sip("UPDATE", body=b""), 501, ("Allow", ALLOW)),
        (sip("OPTIONS", extra=("Require: 100rel, foo",)), 420, ("Unsupported", "100rel, foo")),
        (sip(body=b"hello", ctype="text/plain"), 415, ("Accept", "application/sdp")),
        (sip("OPTIONS", uri="mailto:x@example.com"), 416, None),
        (sip("OPTIONS", version="3.0"), 505, None),
        (sip(extra=("Max-Forwards: 0",), drop=("Max-Forwards",)), 483, None),
        (sip("OPTIONS", cseq_method="INVITE"), 400, None),
        (sip("OPTIONS", drop=("Call-ID",)), 400, None),
        (sip(extra=("Accept: text/html",)), 406, ("Accept", "application/sdp")),
        (sip(extra=("Content-Encoding: gzip",)), 415, ("Accept-Encoding", "identity")),
        (sip("BYE", body=b""), 481, None),
        (sip("BYE", to_tag="unknown", body=b""), 481, None),
        (sip("REFER", extra=("Refer-To: <sip:x@127.0.0.1>",)), 603, None),
    ],
)
def test_error_responses(message: bytes, status: int, check: tuple[str, str] | None) -> None:
    ua = make_ua(UAS, 30)
    ua.receive(message, PEER, "udp", 0.0)
    [resp] = responses(ua.datagrams_to_send())
    assert resp.status == status
    if check is not None:
        assert resp.headers.get(check[0]) == check[1]
    assert events(ua) == []


def test_missing_header_is_named_in_the_reason_phrase() -> None:
    ua = make_ua(UAS, 31)
    ua.receive(sip("OPTIONS", drop=("From",)), PEER, "udp", 0.0)
    [resp] = responses(ua.datagrams_to_send())
    assert resp.status == 400 and "From" in resp.reason


def test_cseq_method_mismatch_is_named() -> None:
    ua = make_ua(UAS, 32)
    ua.receive(sip("OPTIONS", cseq_method="INVITE"), PEER, "udp", 0.0)
    [resp] = responses(ua.datagrams_to_send())
    assert resp.status == 400 and "CSeq" in resp.reason


def test_merged_request_gets_482() -> None:
    ua = make_ua(UAS, 33)
    ua.receive(sip(branch="z9hG4bK-fork1"), PEER, "udp", 0.0)
    ua.receive(sip(branch="z9hG4bK-fork2"), ("127.0.0.1", 5098), "udp", 0.1)
    out = ua.datagrams_to_send()
    assert [r.status for r in responses(out)] == [100, 482]
    assert out[1].addr == ("127.0.0.1", 5098)
    assert len(only(ua, ev.IncomingCall)) == 1


def test_max_forwards_zero_options_is_still_answered() -> None:
    """RFC 4475 §3.3.11 zeromf: an endpoint answers an OPTIONS with Max-Forwards 0."""
    ua = make_ua(UAS, 34)
    ua.receive(sip("OPTIONS", extra=("Max-Forwards: 0",), drop=("Max-Forwards",)), PEER, "udp", 0)
    assert statuses(ua) == [200]


def test_options_in_and_out_of_dialog() -> None:
    ua = make_ua(UAS, 35, supported_extensions=frozenset({"replaces"}))
    ua.receive(sip("OPTIONS", branch="z9hG4bK-o1"), PEER, "udp", 0.0)
    [resp] = responses(ua.datagrams_to_send())
    assert resp.status == 200
    assert resp.headers.get("Allow") == ALLOW
    assert resp.headers.get("Accept") == "application/sdp, application/dtmf-relay, application/dtmf"
    assert resp.headers.get("Supported") == "replaces"
    assert resp.headers.get("Accept-Encoding") == "identity"
    assert resp.headers.get("Accept-Language") == "en"
    _call, tag = answered_hand_call(ua)
    ua.receive(sip("OPTIONS", cseq=2, branch="z9hG4bK-o2", to_tag=tag), PEER, "udp", 1.0)
    assert statuses(ua) == [200]


def test_multipart_invite_with_an_sdp_part_and_mpart01_without_one() -> None:
    boundary = b"7a9cbec02ceef655"
    body = (
        b"--"
        + boundary
        + b"\r\nContent-Type: text/plain\r\n\r\nHello\r\n--"
        + boundary
        + b"\r\nContent-Type: application/sdp\r\n\r\n"
        + OFFER
        + b"\r\n--"
        + boundary
        + b"--\r\n"
    )
    ua = make_ua(UAS, 36)
    ua.receive(sip(body=body, ctype="multipart/mixed;boundary=7a9cbec02ceef655"), PEER, "udp", 0)
    [incoming] = events(ua)
    assert isinstance(incoming, ev.IncomingCall) and incoming.offer == OFFER
    mpart = (TORTURE / "rfc4475" / "mpart01.dat").read_bytes()
    head, _, mbody = mpart.partition(b"\r\n\r\n")
    ctype = next(ln for ln in head.split(b"\r\n") if ln.startswith(b"Content-Type"))
    ua.receive(
        sip(branch="z9hG4bK-m2", call_id="m2", body=mbody, ctype=ctype.split(b": ", 1)[1].decode()),
        PEER,
        "udp",
        1.0,
    )
    out = responses(ua.datagrams_to_send())
    assert out[-1].status == 415 and out[-1].headers.get("Accept") == "application/sdp"


def test_parse_errors_are_answered_or_dropped_and_counted() -> None:
    ua = make_ua(UAS, 37)
    ua.receive(
        b"INVITE sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK1"
        b"\r\nContent-Length: 5\r\n\r\nab",
        PEER,
        "udp",
        0.0,
    )
    assert statuses(ua) == [400]
    ua.receive(b"\x00\x01garbage", PEER, "udp", 0.0)
    ua.receive(b"", PEER, "udp", 0.0)
    ua.receive(b"SIP/2.0 200 OK\r\nVia: broken\r\n\r\n", PEER, "udp", 0.0)
    assert ua.datagrams_to_send() == []
    assert ua.parse_errors == 4 and ua.internal_errors == 0
    assert ua.counters[("in", "malformed")] == ua.parse_errors


# ============================================================== response routing
def test_responses_go_to_the_source_with_received_and_rport() -> None:
    ua = make_ua(UAS, 40)
    ua.receive(sip("OPTIONS", via="SIP/2.0/UDP 192.0.2.7:5080"), PEER, "udp", 0.0)
    [out] = ua.datagrams_to_send()
    assert out.addr == PEER  # force_rport: never to 192.0.2.7
    resp = parse_message(out.data)
    assert isinstance(resp, Response)
    top = resp.vias[0]
    assert top.params.get("received") == "127.0.0.1" and top.params.get("rport") == "5099"


def test_without_force_rport_the_via_is_followed_only_to_loopback() -> None:
    ua = make_ua(UAS, 41, force_rport=False)
    ua.receive(sip("OPTIONS", via="SIP/2.0/UDP 127.0.0.2:5080"), PEER, "udp", 0.0)
    [out] = ua.datagrams_to_send()
    assert out.addr == ("127.0.0.2", 5080)  # §18.2.2: the sent-by of the Via, loopback
    ua.receive(
        sip("OPTIONS", branch="z9hG4bK-2", via="SIP/2.0/UDP 192.0.2.7:5080"), PEER, "udp", 0.0
    )
    [out] = ua.datagrams_to_send()
    assert out.addr == PEER  # a foreign host named in a Via: never; back to the source
    ua.receive(
        sip("OPTIONS", branch="z9hG4bK-3", via="SIP/2.0/UDP 127.0.0.2:5080;rport"), PEER, "udp", 0.0
    )
    [out] = ua.datagrams_to_send()
    assert out.addr == PEER  # RFC 3581: rport asks for the source port
    resp = parse_message(out.data)
    assert isinstance(resp, Response) and resp.vias[0].params.get("rport") == "5099"


# ====================================================================== counters
def test_counters_by_method_and_response_class() -> None:
    wire, uac, uas, ref_c, _ref_s = setup_call()
    uac.hangup(ref_c, 1.0)
    wire.flush(1.0)
    assert uas.counters[("in", "INVITE")] == 1 and uas.counters[("in", "ACK")] == 1
    assert uas.counters[("in", "BYE")] == 1
    assert uas.counters[("out", "1xx")] == 2 and uas.counters[("out", "2xx")] == 2
    assert uac.counters[("out", "INVITE")] == 1 and uac.counters[("in", "2xx")] == 2
    uas.receive(sip("FOO"), PEER, "udp", 2.0)
    uas.datagrams_to_send()
    assert uas.counters[("in", "other")] == 1 and uas.counters[("out", "5xx")] == 1


# ======================================================================== forking
def test_second_2xx_from_another_fork_is_acked_and_byed() -> None:
    uac = make_ua(UAC, 50)
    ref = uac.invite(
        "sip:ivr@127.0.0.1:5070", dest=UAS, from_uri="sip:a@127.0.0.1", sdp=OFFER, now=0.0
    )
    inv = parse_message(uac.datagrams_to_send()[0].data)
    assert isinstance(inv, Request)
    for tag in ("fork-a", "fork-b"):
        ok = make_response(
            inv,
            200,
            to_tag=tag,
            body=ANSWER,
            content_type="application/sdp",
            headers=[("Contact", f"<sip:{tag}@127.0.0.1:5070>")],
        )
        uac.receive(bytes(ok), UAS, "udp", 0.1)
    sent = [parse_message(o.data) for o in uac.datagrams_to_send()]
    kinds = [(m.method, m.to.tag) for m in sent if isinstance(m, Request)]
    assert kinds == [("ACK", "fork-a"), ("ACK", "fork-b"), ("BYE", "fork-b")]
    assert events(uac) == [ev.CallAnswered(ref, ANSWER)]


def test_reject_needs_an_error_status() -> None:
    ua = make_ua(UAS, 51)
    ua.receive(sip(), PEER, "udp", 0.0)
    call = events(ua)[0].call
    with pytest.raises(SipUsageError, match="300-699, got 200"):
        ua.reject(call, 200, 0.1)
    assert ua.reject(call, 486, 0.1, reason="Agents Busy", headers=[("Retry-After", "30")])
    resp = responses(ua.datagrams_to_send())[-1]
    assert (resp.status, resp.reason, resp.headers.get("Retry-After")) == (486, "Agents Busy", "30")
    ua.receive(sip("ACK", to_tag=resp.to.tag), PEER, "udp", 0.2)  # same branch: absorbed
    assert ua.datagrams_to_send() == [] and events(ua) == []


# ============================================================ more call phases
def test_invite_without_offer_gets_the_answer_in_the_ack() -> None:
    ua = make_ua(UAS, 60)
    ua.receive(sip(ctype=""), PEER, "udp", 0.0)  # no body at all: a late offer
    [incoming] = events(ua)
    assert isinstance(incoming, ev.IncomingCall) and incoming.offer == b""
    ua.answer(incoming.call, OFFER, 0.0)  # our 200 carries the offer
    tag = responses(ua.datagrams_to_send())[-1].to.tag
    ua.receive(
        sip("ACK", branch="z9hG4bK-a", to_tag=tag, body=ANSWER, ctype="application/sdp"),
        PEER,
        "udp",
        0.1,
    )
    assert events(ua) == [ev.CallConfirmed(incoming.call, ANSWER)]


def test_rfc2543_peer_call_cancel_and_ack_match_without_branches() -> None:
    data = (TORTURE / "rfc4475" / "inv2543.dat").read_bytes()
    ua = make_ua(UAS, 61)
    ua.receive(data, PEER, "udp", 0.0)
    call = events(ua)[0].call
    ua.receive(data, PEER, "udp", 0.3)  # retransmission, matched without a branch
    assert statuses(ua) == [100, 100] and events(ua) == []
    head = data.split(b"\r\n\r\n")[0]
    cancel = (
        head.replace(b"INVITE sip:UserB", b"CANCEL sip:UserB")
        .replace(b"CSeq: 56 INVITE", b"CSeq: 56 CANCEL")
        .replace(b"Content-Type: application/sdp", b"Content-Length: 0")
    ) + b"\r\n\r\n"
    ua.receive(cancel, PEER, "udp", 0.5)
    out = responses(ua.datagrams_to_send())
    assert [(r.status, r.cseq.method) for r in out] == [(200, "CANCEL"), (487, "INVITE")]
    assert events(ua) == [ev.CallCancelled(call)]
    ack = (
        head.replace(b"INVITE sip:UserB", b"ACK sip:UserB")
        .replace(b"CSeq: 56 INVITE", b"CSeq: 56 ACK")
        .replace(b"user=phone\r\nCall-ID", f"user=phone;tag={out[1].to.tag}\r\nCall-ID".encode())
        .replace(b"Content-Type: application/sdp", b"Content-Length: 0")
    ) + b"\r\n\r\n"
    ua.receive(ack, PEER, "udp", 0.6)
    ua.handle_timer(1.0)
    assert ua.datagrams_to_send() == []  # ACKed: timer G stopped, no 487 again


def test_rfc2543_peer_call_answered_and_acked() -> None:
    data = (TORTURE / "rfc4475" / "inv2543.dat").read_bytes()
    ua = make_ua(UAS, 62)
    ua.receive(data, PEER, "udp", 0.0)
    call = events(ua)[0].call
    ua.answer(call, ANSWER, 0.1)
    tag = responses(ua.datagrams_to_send())[-1].to.tag
    head = data.split(b"\r\n\r\n")[0]
    ack = (
        head.replace(b"INVITE sip:UserB", b"ACK sip:UserB")
        .replace(b"CSeq: 56 INVITE", b"CSeq: 56 ACK")
        .replace(b"user=phone\r\nCall-ID", f"user=phone;tag={tag}\r\nCall-ID".encode())
        .replace(b"Content-Type: application/sdp", b"Content-Length: 0")
    ) + b"\r\n\r\n"
    ua.receive(ack, PEER, "udp", 0.2)  # same Via as the INVITE: matches it in Accepted
    assert events(ua) == [ev.CallConfirmed(call)]


def test_tcp_2xx_is_not_retransmitted_but_the_ack_wait_still_ends() -> None:
    ua = make_ua(UAS, 63)
    ua.receive(sip(via="SIP/2.0/TCP 127.0.0.1:5099"), PEER, "tcp", 0.0)
    call = events(ua)[0].call
    ua.answer(call, ANSWER, 0.0)
    assert [o.transport for o in ua.datagrams_to_send()] == ["tcp", "tcp"]
    assert ua.next_deadline() == 32.0  # only the give-up (64*T1)
    ua.handle_timer(32.0)
    [bye] = ua.datagrams_to_send()
    assert bye.data.startswith(b"BYE ") and bye.transport == "tcp"
    assert events(ua) == [ev.CallEnded(call, "no-ack", False)]


def test_reinvite_2xx_is_retransmitted_until_its_ack() -> None:
    ua = make_ua(UAS, 64)
    call, tag = answered_hand_call(ua)
    ua.receive(
        sip(cseq=2, branch="z9hG4bK-r2", to_tag=tag, body=HOLD, ctype="application/sdp"),
        PEER,
        "udp",
        1.0,
    )
    events(ua)
    assert not ua.reinvite(call, OFFER, 1.0)  # one INVITE at a time, in either direction
    ua.answer_reinvite(call, ANSWER, 1.0)
    ua.handle_timer(1.5)
    ua.handle_timer(2.5)
    assert statuses(ua) == [200, 200, 200]
    ua.receive(sip("ACK", cseq=2, branch="z9hG4bK-a2", to_tag=tag), PEER, "udp", 2.6)
    ua.handle_timer(4.5)
    assert ua.datagrams_to_send() == [] and events(ua) == []
    assert ua.call_state(call) == "confirmed"


def test_cancelled_reinvite_cannot_be_answered() -> None:
    ua = make_ua(UAS, 65)
    call, tag = answered_hand_call(ua)
    ua.receive(
        sip(cseq=2, branch="z9hG4bK-r2", to_tag=tag, body=HOLD, ctype="application/sdp"),
        PEER,
        "udp",
        1.0,
    )
    ua.receive(sip("CANCEL", cseq=2, branch="z9hG4bK-r2", to_tag=tag), PEER, "udp", 1.1)
    assert [r.status for r in responses(ua.datagrams_to_send())] == [200, 487]
    assert not ua.answer_reinvite(call, ANSWER, 1.2)
    assert ua.call_state(call) == "confirmed"


def test_reinvite_refused_before_the_ack() -> None:
    ua = make_ua(UAS, 66)
    ua.receive(sip(), PEER, "udp", 0.0)
    call = events(ua)[0].call
    ua.answer(call, ANSWER, 0.0)
    assert not ua.reinvite(call, HOLD, 0.1)  # §14.1: the first INVITE is not over yet


def test_in_dialog_request_timeout_ends_the_call() -> None:
    wire, uac, _uas, ref_c, _ref_s = setup_call()
    wire.drop = lambda out: out.addr == UAS  # the UAS becomes unreachable
    uac.send_info_dtmf(ref_c, "1", 100, 1.0)
    wire.flush(1.0)
    wire.advance(34.0)
    assert wire.sent(UAC, b"INFO") == [1.0, 1.5, 2.5, 4.5, 8.5, 12.5, 16.5, 20.5, 24.5, 28.5, 32.5]
    assert wire.sent(UAC, b"BYE")[0] == 33.0  # §12.2.1.2: no answer ends the dialog
    assert events(uac) == [ev.CallEnded(ref_c, "timeout", False)]


def test_481_to_a_reinvite_ends_the_call_as_gone() -> None:
    ua = make_ua(UAS, 68)
    call, _tag = answered_hand_call(ua)
    assert ua.reinvite(call, HOLD, 1.0)
    reinvite = parse_message(ua.datagrams_to_send()[0].data)
    assert isinstance(reinvite, Request) and reinvite.body == HOLD
    ua.receive(bytes(make_response(reinvite, 481)), PEER, "udp", 1.1)  # the peer forgot us
    assert events(ua) == [ev.ReinviteAnswered(call, 481, None), ev.CallEnded(call, "gone", True)]
    assert [o.data[:4] for o in ua.datagrams_to_send()] == [b"ACK "]  # no BYE after a 481


def test_cancel_without_final_answer_gives_up_after_64_T1() -> None:
    uac = make_ua(UAC, 67)
    wire = Wire(uac)
    ref = uac.invite(
        "sip:ivr@127.0.0.1:5070", dest=UAS, from_uri="sip:a@127.0.0.1", sdp=OFFER, now=0.0
    )
    inv = parse_message(uac.datagrams_to_send()[0].data)
    assert isinstance(inv, Request)
    uac.receive(bytes(make_response(inv, 180, to_tag="t")), UAS, "udp", 0.1)
    uac.cancel(ref, 1.0)
    wire.flush(1.0)
    wire.advance(40.0)
    assert wire.sent(UAC, b"CANCEL")[0] == 1.0
    assert events(uac)[-1] == ev.CallFailed(ref, 408, "No Final Response After CANCEL")
    assert uac.next_deadline() is None and uac.call_state(ref) is None


# ============================================================ real peers (SIPp)
AUTH_UAS = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="UAS that challenges every INVITE once (digest MD5, qop=auth)">
  <recv request="INVITE" />
  <send><![CDATA[

SIP/2.0 401 Unauthorized
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
WWW-Authenticate: Digest realm="cc.test", nonce="[pid]n[call_number]", algorithm=MD5, qop="auth"
Content-Length: 0

]]></send>
  <recv request="ACK" />
  <recv request="INVITE">
    <action>
      <verifyauth assign_to="authvalid" username="alice" password="s3cret" />
    </action>
  </recv>
  <nop hide="true" test="authvalid" next="good" />
  <send next="end"><![CDATA[

SIP/2.0 403 Forbidden
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag02[call_number]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
  <label id="good" />
  <send><![CDATA[

SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag02[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:sipp@[local_ip]:[local_port];transport=[transport]>
Content-Type: application/sdp
Content-Length: [len]

v=0
o=- 1 1 IN IP4 [local_ip]
s=-
c=IN IP4 [local_ip]
t=0 0
m=audio [media_port] RTP/AVP 8
a=rtpmap:8 PCMA/8000

]]></send>
  <recv request="ACK" />
  <recv request="BYE" />
  <send><![CDATA[

SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
  <label id="end" />
</scenario>
"""


async def _call_sipp(
    scenario: str | Path, transport: str, tmp_path: Path, credentials: tuple[str, str] | None
) -> tuple[list[ev.Event], SippResult]:
    """Our UserAgent (asyncio shell: SipService) calls a SIPp UAS and hangs up."""
    sipp_transport: Transport = "t1" if transport == "tcp" else "u1"
    uas = await Sipp(scenario, calls=1, transport=sipp_transport, run_dir=tmp_path).start_async()
    if transport == "tcp":  # over TCP nothing is retransmitted: wait until SIPp listens
        async with asyncio.timeout(10):
            while True:
                try:
                    _, writer = await asyncio.open_connection("127.0.0.1", uas.port)
                except OSError:
                    await asyncio.sleep(0.05)
                    continue
                writer.close()
                break
    got: list[ev.Event] = []
    changed = asyncio.Event()

    def on_event(event: ev.Event) -> None:
        got.append(event)
        changed.set()

    ua = UserAgent(local_host="127.0.0.1", local_port=0)
    service = SipService(ua, on_event)
    await service.start("127.0.0.1", 0)
    ua.local_port = service.port
    try:
        ref = ua.invite(
            f"sip:service@127.0.0.1:{uas.port}",
            dest=("127.0.0.1", uas.port),
            transport=transport,
            from_uri="sip:alice@127.0.0.1",
            sdp=OFFER,
            now=service.now(),
            credentials=credentials,
        )
        service.flush()
        async with asyncio.timeout(15):
            while not any(isinstance(e, (ev.CallAnswered, ev.CallFailed)) for e in got):
                changed.clear()
                await changed.wait()
        if isinstance(got[-1], ev.CallAnswered):
            ua.hangup(ref, service.now())
            service.flush()
        async with asyncio.timeout(15):
            while ua.pending_transactions():
                await asyncio.sleep(0.02)
        result = await uas.wait(15)
    finally:
        await service.close()
    return got, result


@pytest.mark.peer
@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_uac_calls_sipp_uas_and_hangs_up(transport: str, tmp_path: Path) -> None:
    got, result = await _call_sipp("uas", transport, tmp_path, None)
    answered = [e for e in got if isinstance(e, ev.CallAnswered)]
    assert len(answered) == 1 and b"m=audio" in answered[0].sdp
    assert [e.status for e in got if isinstance(e, ev.CallProgress)] == [180]
    assert result.ok and result.stats.successful == 1, result.summary()


@pytest.mark.peer
@pytest.mark.parametrize(("password", "outcome"), [("s3cret", 200), ("wrong", 403)])
async def test_uac_answers_a_sipp_digest_challenge(
    password: str, outcome: int, tmp_path: Path
) -> None:
    """SIPp checks our Authorization itself (verifyauth): 200 if right, 403 if not."""
    scenario = tmp_path / "uas_auth.xml"
    scenario.write_text(AUTH_UAS)
    got, _result = await _call_sipp(scenario, "udp", tmp_path / "run", ("alice", password))
    if outcome == 200:
        assert [type(e) for e in got] == [ev.CallAnswered, ev.CallEnded], got
    else:
        assert [(type(e), getattr(e, "status", None)) for e in got] == [(ev.CallFailed, 403)]


def test_2xx_without_to_tag_fails_the_call_when_the_transaction_ends() -> None:
    uac = make_ua(UAC, 70)
    ref = uac.invite(
        "sip:ivr@127.0.0.1:5070", dest=UAS, from_uri="sip:a@127.0.0.1", sdp=OFFER, now=0.0
    )
    inv = parse_message(uac.datagrams_to_send()[0].data)
    assert isinstance(inv, Request)
    uac.receive(
        bytes(make_response(inv, 200, body=ANSWER, content_type="application/sdp")), UAS, "udp", 0.1
    )
    assert uac.parse_errors == 0 and uac.dropped == 1 and events(uac) == []
    uac.handle_timer(32.1)  # timer M: the INVITE transaction is over, no dialog came of it
    assert events(uac) == [ev.CallFailed(ref, 502, "Unusable Answer")]


def test_both_user_agents_call_each_other() -> None:
    """Each UserAgent is UAC and UAS at once: B calls A while A's call to B is up."""
    wire, a, b, a_ref, b_ref = setup_call()
    back = b.invite(
        "sip:a@127.0.0.1:5060", dest=UAC, from_uri="sip:b@127.0.0.1", sdp=OFFER, now=1.0
    )
    wire.flush(1.0)
    incoming = events(a)
    assert isinstance(incoming[0], ev.IncomingCall) and incoming[0].remote_addr == UAS
    a.answer(incoming[0].call, ANSWER, 1.1)
    wire.flush(1.1)
    assert ev.CallAnswered(back, ANSWER) in events(b) and events(a) == [
        ev.CallConfirmed(incoming[0].call)
    ]
    a.hangup(incoming[0].call, 2.0)
    wire.flush(2.0)
    assert events(b) == [ev.CallEnded(back, "bye", True)]
    assert a.call_state(a_ref) == "confirmed" and b.call_state(b_ref) == "confirmed"
