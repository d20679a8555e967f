"""Dialog state and in-dialog requests (RFC 3261 §12), from real messages.

The INVITE below is RFC 3261 §24.2's F1 shape with two Record-Routes (one
per proxy, both loose routers), so the route set order of §12.1.1 (UAS: as
received) and §12.1.2 (UAC: reversed) can be told apart.
"""

from __future__ import annotations

import pytest

from media.sip.dialog import Dialog, DialogId, strip_tag
from media.sip.errors import SipParseError, SipUsageError
from media.sip.message import Request, make_response, parse_message
from tests.conftest import TORTURE

PEER = ("127.0.0.1", 5099)
INVITE = (
    b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP proxy2.example.com;branch=z9hG4bK2\r\n"
    b"Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK1\r\n"
    b"Record-Route: <sip:proxy2.example.com;lr>\r\n"
    b"Record-Route: <sip:proxy1.example.com;lr>\r\n"
    b"Max-Forwards: 68\r\n"
    b'From: "Alice" <sip:alice@atlanta.example.com>;tag=9fxced76sl\r\n'
    b"To: Bob <sip:bob@biloxi.example.com>\r\n"
    b"Call-ID: 3848276298220188511@atlanta.example.com\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Contact: <sip:alice@pc33.atlanta.example.com>\r\n"
    b"Content-Length: 0\r\n\r\n"
)


def parse_request(data: bytes) -> Request:
    msg = parse_message(data)
    assert isinstance(msg, Request)
    return msg


def uas_dialog() -> Dialog:
    return Dialog.for_uas(
        parse_request(INVITE), local_tag="bobtag", local_seq=0, peer=PEER, transport="udp"
    )


def test_uas_dialog_from_invite() -> None:
    d = uas_dialog()
    assert d.id == DialogId("3848276298220188511@atlanta.example.com", "bobtag", "9fxced76sl")
    assert d.remote_target == "sip:alice@pc33.atlanta.example.com"
    assert d.route_set == ["<sip:proxy2.example.com;lr>", "<sip:proxy1.example.com;lr>"]
    assert d.remote_seq == 314159 and d.local_seq == 0
    assert d.local_party == "Bob <sip:bob@biloxi.example.com>"
    assert d.remote_party == '"Alice" <sip:alice@atlanta.example.com>'


def test_uas_bye_uses_remote_target_routes_in_order_and_both_tags() -> None:
    d = uas_dialog()
    bye = d.request("BYE", sent_by="127.0.0.1:5070", branch="z9hG4bKbye1")
    assert bye.method == "BYE" and bye.uri == "sip:alice@pc33.atlanta.example.com"
    assert bye.headers.get_all("Route") == [
        "<sip:proxy2.example.com;lr>",
        "<sip:proxy1.example.com;lr>",
    ]
    assert bye.from_.tag == "bobtag" and bye.to.tag == "9fxced76sl"
    assert bye.from_.display == "Bob" and bye.to.display == "Alice"
    assert bye.cseq.seq == 1 and bye.cseq.method == "BYE"  # our own sequence, from empty
    assert bye.vias[0].branch == "z9hG4bKbye1" and "rport" in bye.vias[0].params
    assert bye.headers.get("Contact") is None
    reparsed = parse_request(bytes(bye))
    reparsed.validate()
    assert reparsed.call_id == d.call_id


def test_uac_dialog_reverses_the_record_route_of_the_2xx() -> None:
    invite = parse_request(INVITE)
    ok = make_response(invite, 200, to_tag="bobtag")
    ok.headers.add("Contact", "<sip:bob@192.0.2.4>")
    d = Dialog.for_uac(invite, ok, peer=PEER, transport="tcp")
    assert d.id == DialogId(invite.call_id, "9fxced76sl", "bobtag")
    assert d.route_set == ["<sip:proxy1.example.com;lr>", "<sip:proxy2.example.com;lr>"]
    assert d.remote_target == "sip:bob@192.0.2.4" and d.local_seq == 314159
    ack = d.ack(314159, sent_by="127.0.0.1:5060", branch="z9hG4bKack")
    assert ack.cseq.seq == 314159 and ack.cseq.method == "ACK"  # §13.2.2.4: same number
    assert ack.headers.get_all("Via") == ["SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bKack;rport"]
    reinvite = d.request(
        "INVITE",
        sent_by="127.0.0.1:5060",
        branch="z9hG4bKre",
        contact="<sip:me@127.0.0.1:5060>",
        body=b"v=0\r\n",
        content_type="application/sdp",
    )
    assert reinvite.cseq.seq == 314160 and reinvite.headers.get("Contact")
    assert reinvite.content_type == "application/sdp" and reinvite.body == b"v=0\r\n"


def test_uac_dialog_needs_a_to_tag() -> None:
    invite = parse_request(INVITE)
    with pytest.raises(SipParseError, match="To: the response that creates a dialog has no tag"):
        Dialog.for_uac(invite, make_response(invite, 200), peer=PEER, transport="udp")


def test_strict_router_first_hop_becomes_the_request_uri() -> None:
    """§12.2.1.1: without ;lr the first route is the Request-URI, the target goes last."""
    d = uas_dialog()
    d.route_set = ["<sip:strict.example.com>", "<sip:proxy1.example.com;lr>"]
    bye = d.request("BYE", sent_by="127.0.0.1:5070", branch="z9hG4bKs")
    assert bye.uri == "sip:strict.example.com"
    assert bye.headers.get_all("Route") == [
        "<sip:proxy1.example.com;lr>",
        "<sip:alice@pc33.atlanta.example.com>",
    ]


def test_remote_cseq_order_and_target_refresh() -> None:
    d = uas_dialog()
    assert not d.accept_remote_seq(314158)  # lower: out of order, 500
    assert d.accept_remote_seq(314159) and d.accept_remote_seq(314200)
    assert not d.accept_remote_seq(314199) and d.remote_seq == 314200
    reinvite = parse_request(INVITE.replace(b"pc33.atlanta", b"pc99.atlanta"))
    d.refresh_target(reinvite)
    assert d.remote_target == "sip:alice@pc99.atlanta.example.com"
    d.refresh_target(parse_request(INVITE.replace(b"Contact: <sip:alice@pc33", b"X-C: <sip:x")))
    assert d.remote_target == "sip:alice@pc99.atlanta.example.com"  # no Contact: kept


def test_local_cseq_cannot_pass_2_to_the_31() -> None:
    d = uas_dialog()
    d.local_seq = 2**31 - 1
    with pytest.raises(SipUsageError, match="local CSeq exhausted"):
        d.next_seq()


def test_rfc2543_invite_without_contact_uses_the_from_uri() -> None:
    inv = parse_request((TORTURE / "rfc4475" / "inv2543.dat").read_bytes())
    d = Dialog.for_uas(inv, local_tag="t", local_seq=0, peer=PEER, transport="udp")
    assert d.remote_tag == ""  # RFC 2543: no From tag
    assert d.remote_target == "sip:+13035551111@ift.client.example.net;user=phone"
    assert d.route_set == ["<sip:UserB@example.com;maddr=ss1.example.com>"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("<sip:a@x>;tag=12", "<sip:a@x>"),
        ('"A; B" <sip:a@x;lr>;foo=1;tag=9;bar', '"A; B" <sip:a@x;lr>;foo=1;bar'),
        ("sip:caller@example.net;tag=2234923", "sip:caller@example.net"),
        ("sip:caller@example.net ; TAG = 5 ; x=y", "sip:caller@example.net;x=y"),
    ],
)
def test_strip_tag(value: str, expected: str) -> None:
    assert strip_tag(value) == expected
