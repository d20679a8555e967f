"""Transaction state machines on virtual time (RFC 3261 §17, RFC 6026).

Every timer test drives ``handle_timer`` at the transaction's own
``next_deadline`` and records the instants at which bytes went out, so the
assertions are the exact schedules of the RFC: timer A doubling without cap,
E and G capped at T2, B/F/H at 64*T1, D/I/J/K waits and their zero values
over TCP. Messages are real SIP text parsed by the message layer.
"""

from __future__ import annotations

import pytest

from media.sip.errors import SipUsageError
from media.sip.events import Outgoing
from media.sip.message import Request, Response, make_response, parse_message
from media.sip.timers import TimerConfig
from media.sip.transaction import (
    ClientInviteTransaction,
    ClientNonInviteTransaction,
    ServerInviteTransaction,
    ServerNonInviteTransaction,
    TransactionLayer,
    TxState,
    client_key,
    server_key,
)
from tests.conftest import TORTURE

PEER = ("127.0.0.1", 5070)
CONFIG = TimerConfig()


def request(
    method: str = "INVITE",
    *,
    branch: str = "z9hG4bK-abc",
    sent_by: str = "127.0.0.1:5070",
    cseq: int = 1,
    cseq_method: str | None = None,
    to_tag: str | None = None,
    from_tag: str = "ft1",
    call_id: str = "call-1@127.0.0.1",
    transport: str = "UDP",
) -> Request:
    to = "<sip:bob@127.0.0.1>" + (f";tag={to_tag}" if to_tag else "")
    text = (
        f"{method} sip:bob@127.0.0.1:5060 SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport} {sent_by};branch={branch}\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:alice@127.0.0.1>;tag={from_tag}\r\n"
        f"To: {to}\r\n"
        f"Call-ID: {call_id}\r\n"
        f"CSeq: {cseq} {cseq_method or method}\r\n"
        "Content-Length: 0\r\n\r\n"
    )
    msg = parse_message(text.encode())
    assert isinstance(msg, Request)
    return msg


def reply(req: Request, status: int, to_tag: str | None = "tt9") -> Response:
    return make_response(req, status, to_tag=to_tag)


def sent_instants(
    tx: ClientInviteTransaction
    | ClientNonInviteTransaction
    | ServerInviteTransaction
    | ServerNonInviteTransaction,
    outbox: list[Outgoing],
    until: float,
) -> list[float]:
    """Run the transaction's timers up to ``until``; when did it send something?"""
    instants: list[float] = []
    outbox.clear()
    while True:
        when = tx.next_deadline()
        if when is None or when > until:
            return instants
        tx.handle_timer(when)
        instants += [when] * len(outbox)
        outbox.clear()


# ------------------------------------------------------------------ client INVITE
def test_timer_A_doubles_without_cap_and_B_times_out_at_64_T1() -> None:
    outbox: list[Outgoing] = []
    tx = ClientInviteTransaction(request(), PEER, "udp", CONFIG, outbox, now=0.0)
    assert [o.addr for o in outbox] == [PEER] and tx.state is TxState.CALLING
    assert sent_instants(tx, outbox, 100.0) == [0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert tx.timed_out and tx.state is TxState.TERMINATED and tx.next_deadline() is None


def test_timer_A_follows_a_configured_T1() -> None:
    outbox: list[Outgoing] = []
    tx = ClientInviteTransaction(request(), PEER, "udp", TimerConfig(t1=0.1), outbox, now=10.0)
    assert sent_instants(tx, outbox, 100.0) == pytest.approx([10.1, 10.3, 10.7, 11.5, 13.1, 16.3])
    assert tx.timed_out  # timer B = 64 * 0.1 = 6.4 s after the start


def test_client_invite_provisional_stops_retransmissions_and_timer_B() -> None:
    outbox: list[Outgoing] = []
    req = request()
    tx = ClientInviteTransaction(req, PEER, "udp", CONFIG, outbox, now=0.0)
    tx.handle_timer(0.5)
    assert tx.receive_response(reply(req, 180), 0.7) is True
    assert tx.state is TxState.PROCEEDING and tx.next_deadline() is None
    assert not tx.timed_out


def test_client_invite_non_2xx_is_acked_with_the_same_branch_and_absorbed() -> None:
    outbox: list[Outgoing] = []
    req = request(branch="z9hG4bK-inv")
    tx = ClientInviteTransaction(req, PEER, "udp", CONFIG, outbox, now=0.0)
    outbox.clear()
    busy = reply(req, 486, to_tag="uas-tag")
    assert tx.receive_response(busy, 1.0) is True
    assert tx.state is TxState.COMPLETED
    ack = parse_message(outbox[0].data)
    assert isinstance(ack, Request) and ack.method == "ACK"
    assert ack.vias[0].branch == "z9hG4bK-inv" and ack.to.tag == "uas-tag"
    assert ack.cseq.seq == 1 and ack.cseq.method == "ACK" and ack.uri == req.uri
    outbox.clear()
    assert tx.receive_response(busy, 2.0) is False  # retransmission: ACK again, not up
    assert [o.data for o in outbox] == [tx.ack]
    assert tx.timer("D") == 33.0  # 32 s after the first final response
    tx.handle_timer(33.0)
    assert tx.state is TxState.TERMINATED and not tx.timed_out


def test_client_invite_2xx_enters_accepted_and_passes_retransmissions_up() -> None:
    outbox: list[Outgoing] = []
    req = request()
    tx = ClientInviteTransaction(req, PEER, "udp", CONFIG, outbox, now=0.0)
    ok = reply(req, 200)
    assert tx.receive_response(ok, 1.0) is True
    assert tx.state is TxState.ACCEPTED and tx.ack is None
    assert tx.receive_response(ok, 1.5) is True  # RFC 6026: the UA core re-ACKs
    assert tx.receive_response(reply(req, 486), 1.6) is False
    assert tx.timer("M") == 33.0
    tx.handle_timer(33.0)
    assert tx.terminated


def test_client_invite_over_tcp_never_retransmits_and_D_is_zero() -> None:
    outbox: list[Outgoing] = []
    req = request(transport="TCP")
    tx = ClientInviteTransaction(req, PEER, "tcp", CONFIG, outbox, now=0.0)
    assert tx.timer("A") is None and tx.timer("B") == 32.0
    assert tx.receive_response(reply(req, 603), 1.0) is True
    assert tx.state is TxState.TERMINATED  # timer D = 0 over a reliable transport
    assert len(outbox) == 2  # INVITE, ACK


# -------------------------------------------------------------- client non-INVITE
def test_timer_E_is_capped_at_T2_and_F_times_out() -> None:
    outbox: list[Outgoing] = []
    tx = ClientNonInviteTransaction(request("OPTIONS"), PEER, "udp", CONFIG, outbox, now=0.0)
    assert sent_instants(tx, outbox, 100.0) == [
        0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5,
    ]  # fmt: skip
    assert tx.timed_out and tx.terminated


def test_timer_E_in_proceeding_is_T2() -> None:
    outbox: list[Outgoing] = []
    req = request("BYE")
    tx = ClientNonInviteTransaction(req, PEER, "udp", CONFIG, outbox, now=0.0)
    tx.handle_timer(0.5)  # first retransmission; E re-armed at 0.5 + 2*T1
    assert tx.receive_response(reply(req, 100), 0.6) is True
    assert tx.state is TxState.PROCEEDING
    # E was already armed for 1.5; from there on it is T2.
    assert sent_instants(tx, outbox, 14.0) == [1.5, 5.5, 9.5, 13.5]


def test_client_non_invite_final_then_timer_K_absorbs_retransmissions() -> None:
    outbox: list[Outgoing] = []
    req = request("BYE")
    tx = ClientNonInviteTransaction(req, PEER, "udp", CONFIG, outbox, now=0.0)
    assert tx.receive_response(reply(req, 200), 0.2) is True
    assert tx.state is TxState.COMPLETED and tx.timer("E") is None and tx.timer("K") == 5.2
    assert tx.receive_response(reply(req, 200), 0.3) is False
    tx.handle_timer(5.2)
    assert tx.terminated and not tx.timed_out


def test_client_non_invite_over_tcp() -> None:
    outbox: list[Outgoing] = []
    req = request("INFO", transport="TCP")
    tx = ClientNonInviteTransaction(req, PEER, "tcp", CONFIG, outbox, now=0.0)
    assert tx.timer("E") is None and tx.timer("F") == 32.0
    assert tx.receive_response(reply(req, 200), 0.1) is True
    assert tx.terminated  # timer K = 0


def test_non_invite_client_refuses_invite_and_ack() -> None:
    with pytest.raises(SipUsageError, match="ACK cannot use a non-INVITE client transaction"):
        ClientNonInviteTransaction(request("ACK"), PEER, "udp", CONFIG, [], now=0.0)


# ------------------------------------------------------------------ server INVITE
def _server_invite(transport: str = "udp") -> tuple[ServerInviteTransaction, list[Outgoing]]:
    outbox: list[Outgoing] = []
    req = request(transport=transport.upper())
    tx = ServerInviteTransaction(server_key(req), req, PEER, transport, CONFIG, outbox)
    return tx, outbox


def test_server_invite_retransmission_gets_the_last_provisional_again() -> None:
    tx, outbox = _server_invite()
    assert tx.receive_request(tx.request, 0.1) is False and outbox == []  # nothing sent yet
    tx.send_response(reply(tx.request, 100, None), 0.0)
    tx.send_response(reply(tx.request, 180), 0.1)
    outbox.clear()
    assert tx.receive_request(tx.request, 0.5) is False
    assert [o.data[:20] for o in outbox] == [b"SIP/2.0 180 Ringing\r"]


def test_timer_G_capped_at_T2_and_H_reports_a_missing_ack() -> None:
    tx, outbox = _server_invite()
    tx.send_response(reply(tx.request, 486), 0.0)
    assert tx.state is TxState.COMPLETED
    instants = sent_instants(tx, outbox, 100.0)
    assert instants == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert tx.ack_timed_out and tx.terminated


def test_server_invite_ack_confirms_and_timer_I_absorbs_ack_retransmissions() -> None:
    tx, outbox = _server_invite()
    final = reply(tx.request, 404)
    tx.send_response(final, 0.0)
    outbox.clear()
    assert tx.receive_request(tx.request, 0.2) is False  # INVITE again: 404 again
    assert [o.data for o in outbox] == [bytes(final)]
    ack = request("ACK", cseq_method="ACK", to_tag="tt9")
    assert tx.receive_request(ack, 1.0) is False
    assert tx.state is TxState.CONFIRMED and tx.timer("G") is None and tx.timer("I") == 6.0
    assert tx.receive_request(ack, 2.0) is False
    tx.handle_timer(6.0)
    assert tx.terminated and not tx.ack_timed_out


def test_server_invite_2xx_accepted_absorbs_invite_retransmissions() -> None:
    tx, outbox = _server_invite()
    ok = reply(tx.request, 200)
    tx.send_response(ok, 0.0)
    assert tx.state is TxState.ACCEPTED and tx.timer("L") == 32.0
    outbox.clear()
    assert tx.receive_request(tx.request, 0.3) is False
    assert outbox == []  # RFC 6026: absorbed; the UA core retransmits the 2xx itself
    tx.send_response(ok, 0.5)  # the UA core's retransmission goes through
    assert len(outbox) == 1
    ack = request("ACK", cseq_method="ACK", to_tag="tt9")
    assert tx.receive_request(ack, 0.6) is True  # an ACK in Accepted goes up
    with pytest.raises(SipUsageError, match="state accepted cannot send 486"):
        tx.send_response(reply(tx.request, 486), 0.7)
    tx.handle_timer(32.0)
    assert tx.terminated


def test_server_invite_over_tcp_has_no_G_and_I_is_zero() -> None:
    tx, _ = _server_invite("tcp")
    tx.send_response(reply(tx.request, 486), 0.0)
    assert tx.timer("G") is None and tx.timer("H") == 32.0
    tx.receive_request(request("ACK", cseq_method="ACK", transport="TCP"), 0.1)
    assert tx.terminated


# -------------------------------------------------------------- server non-INVITE
def test_server_non_invite_trying_discards_and_completed_repeats() -> None:
    outbox: list[Outgoing] = []
    req = request("OPTIONS")
    tx = ServerNonInviteTransaction(server_key(req), req, PEER, "udp", CONFIG, outbox)
    assert tx.receive_request(req, 0.0) is False and outbox == []
    ok = reply(req, 200)
    tx.send_response(ok, 0.1)
    assert tx.state is TxState.COMPLETED and tx.timer("J") == pytest.approx(32.1)
    outbox.clear()
    tx.receive_request(req, 1.0)
    assert [o.data for o in outbox] == [bytes(ok)]
    with pytest.raises(SipUsageError, match="OPTIONS server transaction in state completed"):
        tx.send_response(ok, 1.1)
    tx.handle_timer(32.1)
    assert tx.terminated


def test_server_non_invite_over_tcp_ends_with_the_final_response() -> None:
    outbox: list[Outgoing] = []
    req = request("BYE", transport="TCP")
    tx = ServerNonInviteTransaction(server_key(req), req, PEER, "tcp", CONFIG, outbox)
    tx.send_response(reply(req, 100, None), 0.0)
    assert tx.state is TxState.PROCEEDING
    tx.send_response(reply(req, 200), 0.0)
    assert tx.terminated


# ------------------------------------------------------------------------- layer
def test_layer_matches_retransmissions_and_acks_by_branch_sent_by_and_method() -> None:
    layer = TransactionLayer()
    inv = request()
    first = layer.receive_request(inv, PEER, "udp", 0.0)
    assert first.new and first.pass_up and isinstance(first.tx, ServerInviteTransaction)
    again = layer.receive_request(request(), PEER, "udp", 0.1)
    assert again.tx is first.tx and not again.new and not again.pass_up
    other_host = layer.receive_request(request(sent_by="127.0.0.2:5070"), PEER, "udp", 0.2)
    assert other_host.new and other_host.tx is not first.tx  # same branch, other sent-by
    first.tx.send_response(reply(inv, 486), 0.3)
    ack = layer.receive_request(request("ACK", cseq_method="ACK", to_tag="tt9"), PEER, "udp", 0.4)
    assert ack.tx is first.tx and not ack.pass_up and first.tx.state is TxState.CONFIRMED
    ack_2xx = layer.receive_request(
        request("ACK", branch="z9hG4bK-new", cseq_method="ACK"), PEER, "udp", 0.5
    )
    assert ack_2xx.tx is None and ack_2xx.pass_up  # a 2xx ACK belongs to the dialog


def test_layer_cancel_finds_its_invite_by_branch_only() -> None:
    layer = TransactionLayer()
    invite = layer.receive_request(request(), PEER, "udp", 0.0).tx
    cancel = request("CANCEL")
    match = layer.receive_request(cancel, PEER, "udp", 0.1)
    assert match.new and match.tx is not invite  # a CANCEL is its own transaction
    assert layer.invite_for_cancel(cancel) is invite
    assert layer.invite_for_cancel(request("CANCEL", branch="z9hG4bK-other")) is None


def test_layer_response_matching_uses_the_cseq_method() -> None:
    layer = TransactionLayer()
    inv = request(branch="z9hG4bK-c1")
    itx = layer.start_client(inv, PEER, "udp", 0.0)
    ctx = layer.start_client(request("CANCEL", branch="z9hG4bK-c1"), PEER, "udp", 0.1)
    assert itx.key == client_key("z9hG4bK-c1", "INVITE") != ctx.key
    tx, up = layer.receive_response(reply(ctx.request, 200), 0.2)
    assert tx is ctx and up and itx.state is TxState.CALLING
    stray, up = layer.receive_response(reply(request(branch="z9hG4bK-zz"), 200), 0.3)
    assert stray is None and up
    with pytest.raises(SipUsageError, match="branch z9hG4bK-c1 already exists"):
        layer.start_client(inv, PEER, "udp", 0.4)


def test_layer_merged_request_detection() -> None:
    layer = TransactionLayer()
    a = layer.receive_request(request(branch="z9hG4bK-path1"), PEER, "udp", 0.0).tx
    b = layer.receive_request(request(branch="z9hG4bK-path2"), PEER, "udp", 0.0).tx
    assert a is not None and b is not None
    assert not layer.is_merged(a) and layer.is_merged(b)
    c = layer.receive_request(request(branch="z9hG4bK-path3", cseq=2), PEER, "udp", 0.0).tx
    assert c is not None and not layer.is_merged(c)


def test_layer_rfc2543_fallback_matching_inv2543() -> None:
    data = (TORTURE / "rfc4475" / "inv2543.dat").read_bytes()
    inv = parse_message(data)
    assert isinstance(inv, Request)
    layer = TransactionLayer()
    match = layer.receive_request(inv, PEER, "udp", 0.0)
    assert match.new and match.tx is not None and match.tx.key[0] == "2543"
    again = layer.receive_request(parse_message(data), PEER, "udp", 0.1)  # type: ignore[arg-type]
    assert again.tx is match.tx and not again.pass_up
    match.tx.send_response(make_response(inv, 486, to_tag="ours"), 0.2)
    ack_text = (
        data.split(b"\r\n\r\n")[0]
        .replace(b"INVITE sip:UserB", b"ACK sip:UserB")
        .replace(b"CSeq: 56 INVITE", b"CSeq: 56 ACK")
        .replace(b"Content-Type: application/sdp", b"Content-Length: 0")
    )
    wrong_tag = parse_message(ack_text.replace(b"user=phone\r\nCall", b"user=phone;tag=x\r\nCall"))
    assert isinstance(wrong_tag, Request)
    assert layer.receive_request(wrong_tag, PEER, "udp", 0.3).tx is None
    right_tag = parse_message(
        ack_text.replace(b"user=phone\r\nCall", b"user=phone;tag=ours\r\nCall")
    )
    assert isinstance(right_tag, Request)
    ack = layer.receive_request(right_tag, PEER, "udp", 0.4)
    assert ack.tx is match.tx and match.tx.state is TxState.CONFIRMED


def test_bare_magic_cookie_is_an_rfc2543_branch() -> None:
    """RFC 4475 §3.2.1 badbranch: 'z9hG4bK' alone is not an RFC 3261 branch."""
    req = parse_message((TORTURE / "rfc4475" / "badbranch.dat").read_bytes())
    assert isinstance(req, Request)
    assert server_key(req)[0] == "2543"


def test_layer_timers_and_sweep() -> None:
    layer = TransactionLayer(TimerConfig(t1=0.5))
    stx = layer.receive_request(request("OPTIONS"), PEER, "udp", 0.0).tx
    assert stx is not None
    stx.send_response(reply(stx.request, 200), 0.0)
    ctx = layer.start_client(request("BYE", branch="z9hG4bK-b"), PEER, "udp", 0.0)
    assert layer.next_deadline() == 0.5 and layer.pending_client() == 1
    ended = layer.handle_timer(32.0)
    assert len(ended) == 2 and stx in ended and ctx in ended  # J and F both at 64*T1
    assert ctx.timed_out
    assert layer.server == {} and layer.client == {} and layer.next_deadline() is None
    tcp = layer.receive_request(request("INFO", transport="TCP"), PEER, "tcp", 40.0).tx
    assert tcp is not None
    tcp.send_response(reply(tcp.request, 200), 40.0)
    assert layer.sweep() == [tcp] and layer.server == {}


def test_timer_config_refuses_nonsense() -> None:
    with pytest.raises(SipUsageError, match=r"t1 > 0, t2 >= t1, t4 >= 0 \(got t1=0"):
        TimerConfig(t1=0.0)
    assert TimerConfig(t1=1.0).timer_d(reliable=False) == 64.0  # D is at least 64*T1
