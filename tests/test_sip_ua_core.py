"""The UA core in memory on virtual time: two UserAgents talking, aioquic style.

Covers full calls both ways, the CANCEL race (never a 200 after CANCEL), 2xx
retransmission until ACK and the no-ACK give-up, INVITE/non-INVITE client
timers at their exact instants, re-INVITE hold, INFO DTMF, digest
authentication (MD5 and SHA-256) and REFER with NOTIFY progress.
"""

from __future__ import annotations

import random

import pytest

from media.sip import events as ev
from media.sip.auth import verify
from media.sip.message import Request, Response, make_request, make_response, parse_message
from media.sip.useragent import UserAgent

A_ADDR = ("127.0.0.1", 5070)
B_ADDR = ("127.0.0.1", 5080)
SDP = (
    b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    b"m=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
)
HOLD = SDP + b"a=sendonly\r\n"


def _ua(addr: tuple[str, int], seed: int) -> UserAgent:
    return UserAgent(local_host=addr[0], local_port=addr[1], rng=random.Random(seed))


def _deliver(src: UserAgent, src_addr: tuple[str, int], dst: UserAgent, now: float) -> list[bytes]:
    """Move everything ``src`` queued into ``dst``; returns the bytes moved."""
    moved = []
    for out in src.datagrams_to_send():
        moved.append(out.data)
        dst.receive(out.data, src_addr, out.transport, now)
    return moved


def _roundtrip(a: UserAgent, b: UserAgent, now: float) -> None:
    for _ in range(6):
        if not _deliver(a, A_ADDR, b, now) and not _deliver(b, B_ADDR, a, now):
            return


def _events(ua: UserAgent) -> list[ev.Event]:
    out = []
    while (e := ua.next_event()) is not None:
        out.append(e)
    return out


def _call(a: UserAgent, b: UserAgent, now: float = 0.0) -> tuple[ev.CallRef, ev.CallRef]:
    ref_a = a.invite(
        "sip:ivr@127.0.0.1:5080", dest=B_ADDR, from_uri="sip:alice@127.0.0.1", sdp=SDP, now=now
    )
    _roundtrip(a, b, now)
    incoming = [e for e in _events(b) if isinstance(e, ev.IncomingCall)]
    assert len(incoming) == 1 and incoming[0].offer == SDP
    ref_b = incoming[0].call
    assert b.answer(ref_b, SDP, now)
    _roundtrip(a, b, now)
    assert [type(e) for e in _events(a)][-1] is ev.CallAnswered
    assert [type(e) for e in _events(b)] == [ev.CallConfirmed]
    return ref_a, ref_b


def test_call_and_bye_both_ways() -> None:
    a, b = _ua(A_ADDR, 1), _ua(B_ADDR, 2)
    ref_a, ref_b = _call(a, b)
    assert a.hangup(ref_a, 1.0)
    _roundtrip(a, b, 1.0)
    ended = _events(b)
    assert ended == [ev.CallEnded(ref_b, "bye", True)]
    assert a.pending_transactions() == 0
    # and the other way round
    ref_a, ref_b = _call(a, b, 2.0)
    assert b.hangup(ref_b, 3.0)
    _roundtrip(a, b, 3.0)
    assert ev.CallEnded(ref_a, "bye", True) in _events(a)


def test_cancel_before_answer_never_gives_200() -> None:
    a, b = _ua(A_ADDR, 1), _ua(B_ADDR, 2)
    ref_a = a.invite(
        "sip:ivr@127.0.0.1:5080", dest=B_ADDR, from_uri="sip:alice@x", sdp=SDP, now=0.0
    )
    _roundtrip(a, b, 0.0)
    ref_b = next(e.call for e in _events(b) if isinstance(e, ev.IncomingCall))
    assert b.ring(ref_b, 0.1)
    _roundtrip(a, b, 0.1)
    assert a.cancel(ref_a, 0.2)
    wire: list[bytes] = []
    for _ in range(4):
        wire += _deliver(a, A_ADDR, b, 0.2) + _deliver(b, B_ADDR, a, 0.2)
    assert _events(b) == [ev.CallCancelled(ref_b)]
    assert b.answer(ref_b, SDP, 0.3) is False  # the application decided too late
    assert b.datagrams_to_send() == []
    statuses = [parse_message(d) for d in wire if d.startswith(b"SIP/2.0")]
    finals = [(r.status, r.cseq.method) for r in statuses if isinstance(r, Response)]
    assert (487, "INVITE") in finals and (200, "CANCEL") in finals
    assert (200, "INVITE") not in finals
    assert ev.CallFailed(ref_a, 487, "Request Terminated") in _events(a)


def test_cancel_waits_for_a_provisional_response() -> None:
    a = _ua(A_ADDR, 1)
    ref = a.invite("sip:ivr@127.0.0.1:5080", dest=B_ADDR, from_uri="sip:alice@x", sdp=SDP, now=0.0)
    invite = parse_message(a.datagrams_to_send()[0].data)
    assert isinstance(invite, Request)
    assert a.cancel(ref, 0.1)
    assert a.datagrams_to_send() == []  # RFC 3261 §9.1: no CANCEL before a 1xx
    a.receive(bytes(make_response(invite, 100)), B_ADDR, "udp", 0.2)
    sent = [parse_message(o.data) for o in a.datagrams_to_send()]
    assert [m.method for m in sent if isinstance(m, Request)] == ["CANCEL"]


def test_2xx_retransmitted_until_ack_then_gives_up_with_bye() -> None:
    a, b = _ua(A_ADDR, 1), _ua(B_ADDR, 2)
    a.invite("sip:ivr@127.0.0.1:5080", dest=B_ADDR, from_uri="sip:alice@x", sdp=SDP, now=0.0)
    _deliver(a, A_ADDR, b, 0.0)
    ref_b = next(e.call for e in _events(b) if isinstance(e, ev.IncomingCall))
    b.datagrams_to_send()
    assert b.answer(ref_b, SDP, 0.0)
    b.datagrams_to_send()
    instants = []
    now = 0.0
    while now < 40:
        deadline = b.next_deadline()
        assert deadline is not None
        now = deadline
        b.handle_timer(now)
        for out in b.datagrams_to_send():
            msg = parse_message(out.data)
            label = f"{msg.status}" if isinstance(msg, Response) else msg.method
            instants.append((round(now, 3), label))
        if any(isinstance(e, ev.CallEnded) for e in _events(b)):
            break
    oks = [t for t, label in instants if label == "200"]
    assert oks[:6] == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5]  # T1 doubling, capped at T2
    assert (32.0, "BYE") in instants  # 64*T1 without ACK


def test_invite_timers_a_and_b() -> None:
    a = _ua(A_ADDR, 1)
    ref = a.invite(
        "sip:nobody@127.0.0.1:9", dest=("127.0.0.1", 9), from_uri="sip:a@x", sdp=SDP, now=0.0
    )
    a.datagrams_to_send()
    sends = []
    while (deadline := a.next_deadline()) is not None and deadline <= 40:
        a.handle_timer(deadline)
        if a.datagrams_to_send():
            sends.append(deadline)
    assert sends == [0.5, 1.5, 3.5, 7.5, 15.5, 31.5]  # timer A doubles, no T2 cap
    assert ev.CallFailed(ref, 408, "Request Timeout") in _events(a)


def test_bye_timer_e_capped_at_t2() -> None:
    a, b = _ua(A_ADDR, 1), _ua(B_ADDR, 2)
    ref_a, _ = _call(a, b)
    assert a.hangup(ref_a, 10.0)
    a.datagrams_to_send()  # the BYE is lost, and so are its retransmissions
    sends = []
    while (deadline := a.next_deadline()) is not None and deadline <= 50:
        a.handle_timer(deadline)
        if a.datagrams_to_send():
            sends.append(round(deadline - 10.0, 3))
    assert sends[:6] == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5]
    assert a.pending_transactions() == 0  # timer F ended it at 32 s


def test_reinvite_hold_and_info_dtmf() -> None:
    a, b = _ua(A_ADDR, 1), _ua(B_ADDR, 2)
    ref_a, ref_b = _call(a, b)
    assert a.reinvite(ref_a, HOLD, 1.0)
    _roundtrip(a, b, 1.0)
    reinvite = _events(b)
    assert reinvite == [ev.ReinviteReceived(ref_b, HOLD)]
    answer = SDP + b"a=recvonly\r\n"
    assert b.answer_reinvite(ref_b, answer, 1.1)
    _roundtrip(a, b, 1.1)
    assert ev.ReinviteAnswered(ref_a, 200, answer) in _events(a)
    assert a.send_info_dtmf(ref_a, "5", 160, 2.0)
    _roundtrip(a, b, 2.0)
    assert _events(b) == [ev.DtmfInfo(ref_b, "5", 160)]


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256"])
def test_digest_authentication_on_401(algorithm: str) -> None:
    a = _ua(A_ADDR, 1)
    ref = a.invite(
        "sip:ivr@127.0.0.1:5080",
        dest=B_ADDR,
        from_uri="sip:alice@x",
        sdp=SDP,
        now=0.0,
        credentials=("alice", "s3cret"),
    )
    invite = parse_message(a.datagrams_to_send()[0].data)
    assert isinstance(invite, Request)
    challenge = make_response(
        invite,
        401,
        to_tag="srv1",
        headers=[
            (
                "WWW-Authenticate",
                f'Digest realm="pbx", nonce="n0nce", qop="auth", algorithm={algorithm}',
            )
        ],
    )
    a.receive(bytes(challenge), B_ADDR, "udp", 0.1)
    sent = [parse_message(o.data) for o in a.datagrams_to_send()]
    methods = [m.method for m in sent if isinstance(m, Request)]
    assert methods == ["ACK", "INVITE"]
    retry = sent[1]
    assert isinstance(retry, Request)
    credentials = retry.headers.get("Authorization")
    assert credentials is not None and f"algorithm={algorithm}" in credentials
    assert verify(credentials, "s3cret", "INVITE")
    assert not verify(credentials, "wrong", "INVITE")
    assert retry.cseq.seq == invite.cseq.seq + 1
    # A second challenge for the same nonce (not stale) is not answered again.
    a.receive(
        bytes(make_response(retry, 401, to_tag="srv2", headers=challenge.headers.items()[-1:])),
        B_ADDR,
        "udp",
        0.2,
    )
    assert [type(e) for e in _events(a)] == [ev.CallFailed]
    del ref


def test_refer_and_notify_progress() -> None:
    a, b = _ua(A_ADDR, 1), _ua(B_ADDR, 2)
    ref_a, _ = _call(a, b)
    assert a.refer(ref_a, "sip:agent@127.0.0.1:5090", 1.0)
    refer = parse_message(a.datagrams_to_send()[0].data)
    assert isinstance(refer, Request) and refer.method == "REFER"
    assert refer.headers.get("Refer-To") == "<sip:agent@127.0.0.1:5090>"
    a.receive(bytes(make_response(refer, 202)), B_ADDR, "udp", 1.1)
    assert _events(a) == [ev.ReferStatus(ref_a, 202)]
    notify = make_request(
        "NOTIFY",
        "sip:callcore@127.0.0.1:5070",
        [
            ("Via", "SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bKnotify1"),
            ("From", refer.headers.get("To") or ""),
            ("To", refer.headers.get("From") or ""),
            ("Call-ID", refer.call_id),
            ("CSeq", "900 NOTIFY"),
            ("Event", "refer"),
            ("Subscription-State", "terminated;reason=noresource"),
            ("Content-Type", "message/sipfrag"),
        ],
        b"SIP/2.0 200 OK\r\n",
    )
    a.receive(bytes(notify), B_ADDR, "udp", 1.2)
    answers = [parse_message(o.data) for o in a.datagrams_to_send()]
    assert [(r.status, r.cseq.method) for r in answers if isinstance(r, Response)] == [
        (200, "NOTIFY")
    ]
    assert _events(a) == [ev.ReferStatus(ref_a, 200)]


def test_retransmitted_invite_is_absorbed() -> None:
    a, b = _ua(A_ADDR, 1), _ua(B_ADDR, 2)
    a.invite("sip:ivr@127.0.0.1:5080", dest=B_ADDR, from_uri="sip:alice@x", sdp=SDP, now=0.0)
    data = a.datagrams_to_send()[0].data
    b.receive(data, A_ADDR, "udp", 0.0)
    b.receive(data, A_ADDR, "udp", 0.5)
    assert len([e for e in _events(b) if isinstance(e, ev.IncomingCall)]) == 1
    statuses = [o.data[8:11] for o in b.datagrams_to_send()]
    assert statuses == [b"100", b"100"]  # the retransmission gets the last response again
