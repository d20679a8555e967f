"""SIP messages (media/sip/message.py, media/sip/headers.py).

Grammar details on hand-written messages, typed header values, responses per
RFC 3261 §8.2.6, hypothesis fuzzing (random bytes and mutations of the RFC
4475 corpus: only SipParseError ever escapes, and whatever parses survives
a round trip), and real peers: SIPp's UAC calls a UAS built from
``parse_message``/``make_response``, our UAC calls SIPp's UAS, and baresip's
INVITE is parsed and answered.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import zlib
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from media.sip.errors import SipParseError, SipUsageError
from media.sip.headers import CSeq, NameAddr, Via, split_list
from media.sip.message import (
    COMPACT,
    Headers,
    Request,
    Response,
    make_request,
    make_response,
    parse_message,
    reason_phrase,
)
from media.sip.uri import SipUri
from tests.peers.baresip import Baresip
from tests.peers.sipp import Sipp

TORTURE = Path("/work/shared/testdata/sip-torture")
CRLF = "\r\n"

INVITE = CRLF.join(
    [
        "INVITE sip:bob@biloxi.example.com SIP/2.0",
        "Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds",
        "Via: SIP/2.0/UDP bigbox3.site3.atlanta.example.com;branch=z9hG4bK77ef4c2312983.1"
        ";received=192.0.2.2, SIP/2.0/TCP client.atlanta.example.com:5060;branch=z9hG4bK74bf9",
        "Max-Forwards: 70",
        "To: Bob <sip:bob@biloxi.example.com>",
        'From: "Alice, A." <sip:alice@atlanta.example.com>;tag=1928301774',
        "Call-ID: a84b4c76e66710@pc33.atlanta.example.com",
        "CSeq: 314159 INVITE",
        "Record-Route: <sip:p2.biloxi.example.com;lr>, <sip:p1.atlanta.example.com;lr>",
        "Contact: <sip:alice@pc33.atlanta.example.com>",
        "Timestamp: 54",
        "Content-Type: application/sdp",
        "Content-Length: 10",
        "",
        "v=0\r\no=x\r\n",
    ]
).encode()


def parse(text: str | bytes, stream: bool = False) -> Request | Response:
    return parse_message(text.encode() if isinstance(text, str) else text, stream=stream)


def request(text: str | bytes, max_size: int = 65535) -> Request:
    msg = parse_message(text.encode() if isinstance(text, str) else text, max_size=max_size)
    assert isinstance(msg, Request)
    return msg


def minimal(*headers: str, body: str = "", start: str = "OPTIONS sip:a@b.example SIP/2.0") -> str:
    base = [
        start,
        "Via: SIP/2.0/UDP h.example;branch=z9hG4bK1",
        "From: <sip:x@y.example>;tag=1",
        "To: <sip:a@b.example>",
        "Call-ID: c1",
        "CSeq: 1 " + start.split(" ")[0] if not start.startswith("SIP/") else "CSeq: 1 OPTIONS",
    ]
    return CRLF.join([*base, *headers, "", body])


# ------------------------------------------------------------- parsing basics


def test_invite_fields_and_typed_views() -> None:
    r = request(INVITE)
    assert (r.method, r.uri, r.version) == ("INVITE", "sip:bob@biloxi.example.com", "2.0")
    assert r.call_id == "a84b4c76e66710@pc33.atlanta.example.com"
    assert r.cseq == CSeq(314159, "INVITE")
    assert [v.host for v in r.vias] == [
        "pc33.atlanta.example.com",
        "bigbox3.site3.atlanta.example.com",
        "client.atlanta.example.com",
    ]
    assert r.vias[1].received == "192.0.2.2" and r.vias[2].port == 5060
    assert r.from_.display == "Alice, A." and r.from_.tag == "1928301774"
    assert r.to.display == "Bob" and r.to.tag is None
    assert [str(a.uri) for a in r.record_route] == [
        "sip:p2.biloxi.example.com;lr",
        "sip:p1.atlanta.example.com;lr",
    ]
    assert r.max_forwards == 70 and r.body == b"v=0\r\no=x\r\n"
    r.validate()


def test_header_order_and_canonical_names_are_kept_on_output() -> None:
    r = request(
        minimal(
            "x-custom-Header: 1",
            "call-info: <http://x.example/a>",
            "WWW-AUTHENTICATE: Digest realm=r, nonce=n",
            "cseq: 2 OPTIONS",
        ).replace("CSeq: 1 OPTIONS\r\n", "")
    )
    names = [n for n, _ in r.headers.items()]
    assert names == [
        "Via",
        "From",
        "To",
        "Call-ID",
        "x-custom-Header",  # extension headers keep their spelling
        "Call-Info",
        "WWW-Authenticate",
        "CSeq",
    ]
    assert r.headers.get("X-CUSTOM-HEADER") == "1"
    assert bytes(r).split(b"\r\n")[5:8] == [
        b"x-custom-Header: 1",
        b"Call-Info: <http://x.example/a>",
        b"WWW-Authenticate: Digest realm=r, nonce=n",
    ]


@pytest.mark.parametrize(("short", "full"), sorted(COMPACT.items()))
def test_compact_forms_are_expanded(short: str, full: str) -> None:
    for spelling in (short, short.upper()):
        h = Headers([(spelling, "v")])
        assert h.items() == [(full, "v")]
        assert h.get(full.upper()) == "v" and h.get(short) == "v"


def test_compact_forms_in_a_message() -> None:
    text = CRLF.join(
        [
            "INVITE sip:a@b.example SIP/2.0",
            "v: SIP/2.0/UDP h.example;branch=z9hG4bK1",
            "f: <sip:x@y.example>;tag=1",
            "t: <sip:a@b.example>",
            "i: c1",
            "CSeq: 1 INVITE",
            "m: <sip:x@h.example>",
            "c: application/sdp",
            "k: 100rel, timer",
            "l: 3",
            "",
            "abc",
        ]
    )
    r = request(text)
    assert r.call_id == "c1" and r.supported == ["100rel", "timer"]
    assert r.content_type == "application/sdp" and r.body == b"abc"
    assert b"\r\nCall-ID: c1\r\n" in bytes(r) and b"\r\nContact: <sip:x@h.example>\r\n" in bytes(r)


def test_folded_header_lines_are_unfolded() -> None:
    r = request(
        minimal(
            "Subject: I know you're there,",
            "\tpick up the phone",
            "    and talk to me!",
            "Contact:",
            "   <sip:x@h.example>",
            "   ;expires=60",
        )
    )
    assert r.headers.get("Subject") == "I know you're there, pick up the phone and talk to me!"
    assert r.contact[0].expires == 60
    assert b"Subject: I know you're there, pick up the phone and talk to me!\r\n" in bytes(r)


def test_lists_split_outside_quotes_and_angle_brackets() -> None:
    r = request(
        minimal(
            'Contact: "Doe, John" <sip:j,d@h.example;x=a>;q=0.5, <sip:two@h.example>',
            "Contact: sip:three@h.example",
            "Accept: application/sdp,,text/plain",
        )
    )
    assert r.headers.get_all("Contact") == [
        '"Doe, John" <sip:j,d@h.example;x=a>;q=0.5',
        "<sip:two@h.example>",
        "sip:three@h.example",
    ]
    assert [c.display for c in r.contact] == ["Doe, John", None, None]
    assert r.headers.get_all("Accept") == ["application/sdp", "text/plain"]
    assert split_list('a, "b, \\" c", <d,e>') == ["a", '"b, \\" c"', "<d,e>"]


@pytest.mark.parametrize(
    "header",
    [
        'WWW-Authenticate: Digest realm="a, b", nonce="n", qop="auth,auth-int"',
        'Authorization: Digest username="u", realm="r", nonce="n", uri="sip:a", response="x"',
        'Proxy-Authenticate: Digest realm="a", nonce="n"',
        'Proxy-Authorization: Digest username="u", realm="r"',
        "Date: Sat, 13 Nov 2010 23:29:00 GMT",
        "Subject: hello, world",
        "X-Unknown: a, b, c",
        "User-Agent: Foo/1.0 (Linux, x86)",
    ],
)
def test_non_list_headers_are_never_split(header: str) -> None:
    name, _, value = header.partition(": ")
    r = request(minimal(header))
    assert r.headers.get_all(name) == [value]


def test_empty_list_header_from_baresip() -> None:
    r = request(minimal("Supported:", "Allow: INVITE, ACK"))
    assert r.supported == [] and r.headers.get("Supported") == ""
    assert r.headers.get_all("Allow") == ["INVITE", "ACK"]


def test_case_insensitive_names_and_whitespace_before_colon() -> None:
    r = request(minimal("MAX-forwards  : 0012", "content-TYPE:application/SDP ; charset=utf-8"))
    assert r.max_forwards == 12
    ct = r.content_type_header
    assert (
        ct is not None and ct.media_type == "application/sdp" and ct.params == {"charset": "utf-8"}
    )
    assert r.content_type == "application/sdp"


def test_lf_only_line_endings_and_leading_crlfs() -> None:
    text = "\r\n\r\n" + minimal(body="hello").replace("\r\n", "\n")
    r = request(text)
    assert r.call_id == "c1" and r.body == b"hello"


def test_non_utf8_header_bytes_survive() -> None:
    data = minimal('From: "J\xf6rg" <sip:j@h.example>;tag=9').encode("latin-1")
    data = data.replace(b"From: <sip:x@y.example>;tag=1\r\n", b"")
    r = request(data)
    assert r.from_.tag == "9"
    assert b'From: "J\xf6rg" <sip:j@h.example>;tag=9\r\n' in bytes(r)


# ------------------------------------------------------------- Content-Length


def test_content_length_cuts_a_longer_datagram() -> None:
    r = request(minimal("Content-Length: 3", body="abcdef"))
    assert r.body == b"abc" and r.headers.get("Content-Length") == "3"


def test_content_length_larger_than_datagram_is_an_error() -> None:
    with pytest.raises(SipParseError) as info:
        parse(minimal("Content-Length: 10", body="abc"))
    assert info.value.reason == "Content-Length: 10 bytes announced, 3 received"
    assert isinstance(info.value.partial, Request) and info.value.status == 400


def test_missing_content_length_udp_takes_the_rest_stream_refuses() -> None:
    text = minimal(body="rest of\r\n\r\ndatagram")
    assert request(text).body == b"rest of\r\n\r\ndatagram"
    with pytest.raises(SipParseError, match="mandatory on a stream transport"):
        parse(text, stream=True)


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        (["-1"], "Content-Length: '-1' is not a number"),
        (["1e3"], "Content-Length: '1e3' is not a number"),
        ([""], "Content-Length: '' is not a number"),
        (["\u0663"], "is not a number"),  # Arabic-Indic digit three: not ASCII
        (["9" * 5000], "exceeds"),
        (["3", "4"], "Content-Length: conflicting values 3, 4"),
    ],
)
def test_bad_content_length(values: list[str], reason: str) -> None:
    text = minimal(*(f"Content-Length: {v}" for v in values), body="abcd")
    with pytest.raises(SipParseError) as info:
        parse(text)
    assert reason in info.value.reason


def test_repeated_identical_content_length_is_collapsed() -> None:
    r = request(minimal("l: 2", "Content-Length: 2", body="abcd"))
    assert r.body == b"ab" and r.headers.values("Content-Length") == ["2"]


def test_bytes_always_writes_the_right_content_length_in_place() -> None:
    r = request(minimal("Content-Length: 0", "Subject: after"))
    r.body = b"\x00\xff\r\n\r\nbinary"
    wire = bytes(r)
    assert b"\r\nContent-Length: 12\r\nSubject: after\r\n\r\n\x00\xff" in wire
    again = request(wire)
    assert again.body == r.body
    r.headers.remove("Content-Length")
    assert bytes(r).endswith(b"Subject: after\r\nContent-Length: 12\r\n\r\n\x00\xff\r\n\r\nbinary")


def test_binary_body_is_never_decoded() -> None:
    body = bytes(range(256)) * 3
    r = make_request(
        "MESSAGE", "sip:a@b.example", [("Content-Type", "application/octet-stream")], body
    )
    assert request(bytes(r)).body == body


# ------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("start", "status", "reason", "has_partial"),
    [
        ("INVITE sip:a@b.example SIP/3.0", 505, "SIP version 3.0 is not supported", True),
        ("INVITE  sip:a@b.example SIP/2.0", 400, "exactly one SP", True),
        ("INVITE sip:a@b.example SIP/2.0 ", 400, "nothing after the version", True),
        ("INVITE sip:a@b.example extra SIP/2.0", 400, "white space inside the Request-URI", True),
        ("INVITE <sip:a@b.example> SIP/2.0", 400, "Request-URI: URI '<sip:a@b.example>'", True),
        ("INVITE sip:a@b.example?x=y SIP/2.0", 400, "not allowed in a Request-URI", True),
        ("INV(ITE sip:a@b.example SIP/2.0", 400, "malformed request line", False),
        ("GET / HTTP/1.1", 400, "malformed request line", False),
        ("hello", 400, "not a SIP request or status line: 'hello'", False),
        ("SIP/2.0 99 Too Small", 400, "status code '99' is not a number from 100 to 699", False),
        ("SIP/2.0 700 Too Big", 400, "status code '700'", False),
        ("SIP/2.0 20x OK", 400, "status code '20x'", False),
        ("SIP/2.0", 400, "status code ''", False),
        ("SIP/2.x 200 OK", 400, "invalid SIP version 'SIP/2.x'", False),
        ("SIP/3.0 200 OK", 505, "SIP version 3.0 is not supported", True),
    ],
)
def test_start_line_errors(start: str, status: int, reason: str, has_partial: bool) -> None:
    with pytest.raises(SipParseError) as info:
        parse(minimal(start=start))
    exc = info.value
    assert (exc.status, reason in exc.reason) == (status, True), exc.reason
    assert (exc.partial is not None) == has_partial
    if isinstance(exc.partial, Request):
        answer = make_response(exc.partial, exc.status)
        assert answer.headers.get("Call-ID") == "c1" and answer.status == status


def test_lowercase_version_and_reasonless_status_line() -> None:
    assert request(minimal(start="OPTIONS sip:a@b.example sip/2.0")).version == "2.0"
    resp = parse(minimal(start="SIP/2.0 180"))
    assert isinstance(resp, Response) and (resp.status, resp.reason) == (180, "")


def test_broken_header_line_gives_a_partial_request_for_a_400() -> None:
    text = minimal("Good: 1", "this line has no colon", "Also-Good: 2", body="")
    with pytest.raises(SipParseError) as info:
        parse(text)
    exc = info.value
    assert exc.reason == "line 8: malformed header line 'this line has no colon'"
    partial = exc.partial
    assert isinstance(partial, Request) and partial.method == "OPTIONS"
    assert partial.headers.get("Also-Good") == "2"  # lines after the bad one are kept too
    answer = make_response(partial, 400, to_tag="t1")
    wire = bytes(answer)
    assert wire.startswith(
        b"SIP/2.0 400 Bad Request\r\nVia: SIP/2.0/UDP h.example;branch=z9hG4bK1\r\n"
    )
    assert answer.to.tag == "t1" and answer.cseq == CSeq(1, "OPTIONS")


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (" leading space", "line 2: continuation line without a header before it"),
        ("\tleading tab", "line 2: continuation line without a header before it"),
        (": no name", "line 2: malformed header line ': no name'"),
        ("Bad Name: x", "line 2: malformed header line 'Bad Name: x'"),
        ("Bad\rCR: x", "line 2: malformed header line"),
        ("Name: bare\rcr", "line 2: Name: bare CR in the header line"),
        (
            "Name\x00: x",
            r"line 2: malformed header line 'Name\x00: x'",
        ),  # control chars shown escaped
    ],
)
def test_header_line_errors(line: str, reason: str) -> None:
    lines = minimal().split(CRLF)
    lines.insert(1, line)
    with pytest.raises(SipParseError) as info:
        parse(CRLF.join(lines))
    assert reason in info.value.reason


def test_oversized_message_is_413_with_partial() -> None:
    text = minimal(f"X-Big: {'a' * 70000}")
    with pytest.raises(SipParseError) as info:
        parse(text)
    assert info.value.status == 413 and isinstance(info.value.partial, Request)
    assert info.value.reason == f"message of {len(text)} bytes exceeds 65535"
    assert request(text, max_size=80000).call_id == "c1"


def test_empty_and_whitespace_input() -> None:
    for data in (b"", b"\r\n\r\n", b"\n", b" "):
        with pytest.raises(SipParseError):
            parse_message(data)


# ------------------------------------------------------------- typed headers


@pytest.mark.parametrize(
    ("value", "transport", "host", "port", "params"),
    [
        ("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKx;rport", "UDP", "192.0.2.1", 5060,
         {"branch": "z9hG4bKx", "rport": None}),
        ("SIP/2.0/tcp h.example;rport=5062;received=192.0.2.9", "TCP", "h.example", None,
         {"rport": "5062", "received": "192.0.2.9"}),
        ("SIP / 2.0 / TLS  [2001:db8::1] : 5061 ; branch = z9hG4bK2", "TLS", "2001:db8::1", 5061,
         {"branch": "z9hG4bK2"}),
        ("SIP/2.0/WSS df7jal23ls0d.invalid;branch=z9hG4bK56sdasks", "WSS", "df7jal23ls0d.invalid",
         None, {"branch": "z9hG4bK56sdasks"}),
        ("SIP/2.0/UDP h.example;maddr=239.0.0.1;ttl=16;Branch=z9hG4bK3", "UDP", "h.example", None,
         {"maddr": "239.0.0.1", "ttl": "16", "branch": "z9hG4bK3"}),
    ],
)  # fmt: skip
def test_via_values(
    value: str, transport: str, host: str, port: int | None, params: dict[str, str | None]
) -> None:
    via = Via.parse(value)
    assert (via.transport, via.host, via.port, via.params) == (transport, host, port, params)
    assert Via.parse(str(via)) == via


def test_via_properties() -> None:
    via = Via.parse("SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKabc;rport")
    assert via.has_rport and via.rport is None and via.has_rfc3261_branch
    assert via.sent_by == ("10.0.0.1", 5060)
    via.params["rport"] = "40000"
    via.params["received"] = "192.0.2.7"
    assert str(via) == "SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKabc;rport=40000;received=192.0.2.7"
    assert Via.parse(str(via)).rport == 40000
    assert Via.parse("SIP/2.0/TLS h.example").sent_by == ("h.example", 5061)
    assert Via.parse("SIP/2.0/UDP h;received=[2001:db8::9]").received == "2001:db8::9"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("SIP/2.0 h.example", "Via: malformed sent-protocol"),
        ("SIP/2.0/UDP", "Via: missing sent-by after the transport"),
        ("HTTP/1.1/TCP h.example", "Via: protocol 'HTTP' is not SIP"),
        ("SIP/2.0/UDP h.example;branch", "Via: invalid branch None"),
        ("SIP/2.0/UDP h.example;branch=", "invalid value '' for parameter 'branch'"),
        ("SIP/2.0/UDP h.example;;branch=z9hG4bK1", "Via: empty parameter"),
        ("SIP/2.0/UDP h.example;branch=z9hG4bK1;", "Via: empty parameter"),
        ("SIP/2.0/UDP h.example;received=example.com", "received='example.com' is not an IP"),
        ("SIP/2.0/UDP h.example;rport=70000", "rport: port 70000 is out of range"),
        ("SIP/2.0/UDP h.example;ttl=256", "ttl: 256 exceeds 255"),
        ("SIP/2.0/UDP 2001:db8::1;branch=z9hG4bK1", "IPv6 address without brackets"),
        ("SIP/2.0/UDP h.example:65536", "port 65536 is out of range"),
        ("SIP/2.0/UDP h..example", "Via: invalid host name 'h..example'"),
        ("SIP/2.0/UDP h.example;branch=a;branch=b", "parameter 'branch' appears twice"),
    ],
)
def test_via_errors(value: str, reason: str) -> None:
    with pytest.raises(SipParseError) as info:
        Via.parse(value)
    assert reason in info.value.reason
    assert info.value.reason.startswith("Via")


def test_vias_from_message_reject_empty_list_elements() -> None:
    r = request(minimal().replace("branch=z9hG4bK1", "branch=z9hG4bK1, ,SIP/2.0/UDP x.example"))
    with pytest.raises(SipParseError, match="Via: empty element"):
        r.vias  # noqa: B018


@pytest.mark.parametrize(
    ("value", "display", "uri", "params"),
    [
        ('"Bob" <sip:bob@b.example>;tag=a6c85cf', "Bob", "sip:bob@b.example", {"tag": "a6c85cf"}),
        ("Bob Smith<sip:bob@b.example>", "Bob Smith", "sip:bob@b.example", {}),
        ("<sip:bob@b.example;transport=tcp>;expires=30", None, "sip:bob@b.example;transport=tcp",
         {"expires": "30"}),
        ("sip:bob@b.example;tag=x", None, "sip:bob@b.example", {"tag": "x"}),
        ("sip:bob@b.example ; tag = x", None, "sip:bob@b.example", {"tag": "x"}),
        ('"" <sip:bob@b.example>', "", "sip:bob@b.example", {}),
        ('"a \\"quoted\\" \\\\ name" <tel:+1234>', 'a "quoted" \\ name', "tel:+1234", {}),
        ('<sip:a@b.example>;+sip.instance="<urn:uuid:f81d4fae>";reg-id=1', None, "sip:a@b.example",
         {"+sip.instance": '"<urn:uuid:f81d4fae>"', "reg-id": "1"}),
        ('sip:a@b.example;+sip.instance="<urn:uuid:1>"', None, "sip:a@b.example",
         {"+sip.instance": '"<urn:uuid:1>"'}),
        ("<urn:service:sos>", None, "urn:service:sos", {}),
    ],
)  # fmt: skip
def test_name_addr_values(
    value: str, display: str | None, uri: str, params: dict[str, str | None]
) -> None:
    na = NameAddr.parse(value, "Contact")
    assert (na.display, str(na.uri), na.params) == (display, uri, params)
    again = NameAddr.parse(str(na), "Contact")
    assert (again.display, str(again.uri), again.params) == (display, uri, params)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ('"Bob <sip:bob@b.example>', "To: unterminated quoted display name"),
        ('"Bob" sip:bob@b.example', "To: a quoted display name must be followed by <URI>"),
        ("Bob, Smith <sip:bob@b.example>", "To: display name 'Bob, Smith' must be tokens"),
        ("<sip:bob@b.example", "To: '<' without a closing '>'"),
        ("< sip:bob@b.example>", "To: white space inside <...>"),
        ("<sip:bob@b.example> junk", "To: unexpected 'junk' after '>'"),
        ("sip:bob@b.example?subject=x", "To: a URI containing '?' or ','"),
        ("sip:bob @b.example", "To: white space inside the address"),
        ("<sip:bob@b.example>;tag", "To: invalid tag parameter"),
        ('<sip:bob@b.example>;tag="quoted"', "To: invalid tag parameter"),
        ("<sip:bob@b.example>;", "To: empty parameter"),
        ("<sip:b ob@b.example>", "To: URI 'sip:b ob@b.example': invalid user part"),
        ("", "To: empty value"),
        ("<>", "To: URI '' does not start with a scheme"),
    ],
)
def test_name_addr_errors(value: str, reason: str) -> None:
    with pytest.raises(SipParseError) as info:
        NameAddr.parse(value, "To")
    assert reason in info.value.reason


def test_name_addr_built_quotes_display() -> None:
    na = NameAddr(SipUri("sip", "b.example", "bob"), 'Bob "the" Builder', {"tag": "9"})
    assert str(na) == '"Bob \\"the\\" Builder" <sip:bob@b.example>;tag=9'
    assert NameAddr.parse(str(na)).display == 'Bob "the" Builder'


@pytest.mark.parametrize(
    ("value", "method", "result"),
    [
        ("1 INVITE", None, CSeq(1, "INVITE")),
        ("  0009\t INVITE ", None, CSeq(9, "INVITE")),
        ("2147483647 BYE", "BYE", CSeq(2**31 - 1, "BYE")),
        ("0 ACK", "ACK", CSeq(0, "ACK")),
    ],
)
def test_cseq_values(value: str, method: str | None, result: CSeq) -> None:
    assert CSeq.parse(value, method) == result
    assert str(result) == f"{result.seq} {result.method}"


@pytest.mark.parametrize(
    ("value", "method", "reason"),
    [
        ("2147483648 INVITE", None, "CSeq: sequence number: 2147483648 exceeds 2147483647"),
        ("INVITE", None, "CSeq: expected 'number METHOD', got 'INVITE'"),
        ("1 INVITE extra", None, "CSeq: expected 'number METHOD'"),
        ("-1 INVITE", None, "CSeq: sequence number: '-1' is not a number"),
        ("1 INV/ITE", None, "CSeq: invalid method 'INV/ITE'"),
        ("1 invite", "INVITE", "CSeq: method invite does not match the request method INVITE"),
    ],
)
def test_cseq_errors(value: str, method: str | None, reason: str) -> None:
    with pytest.raises(SipParseError) as info:
        CSeq.parse(value, method)
    assert info.value.reason == reason or reason in info.value.reason


def test_request_cseq_must_match_method_response_cseq_need_not() -> None:
    r = request(minimal().replace("CSeq: 1 OPTIONS", "CSeq: 1 INVITE"))
    with pytest.raises(SipParseError) as info:
        r.cseq  # noqa: B018
    assert info.value.partial is r
    assert CSeq.parse(r.headers.get("CSeq") or "") == CSeq(1, "INVITE")  # the data stays readable
    resp = parse(minimal(start="SIP/2.0 200 OK").replace("CSeq: 1 OPTIONS", "CSeq: 7 INVITE"))
    assert resp.cseq == CSeq(7, "INVITE")


def test_single_value_headers_and_missing_headers() -> None:
    r = request(minimal("Call-ID: c2", "Max-Forwards: 70", "Max-Forwards: 69"))
    with pytest.raises(SipParseError, match="Call-ID: 2 header lines where one is allowed"):
        r.call_id  # noqa: B018
    with pytest.raises(SipParseError, match="Max-Forwards: 2 header lines"):
        r.max_forwards  # noqa: B018
    bare = request("OPTIONS sip:a@b.example SIP/2.0\r\n\r\n")
    for view, name in [("call_id", "Call-ID"), ("cseq", "CSeq"), ("from_", "From"), ("to", "To")]:
        with pytest.raises(SipParseError, match=f"^missing {name} header$"):
            getattr(bare, view)
    with pytest.raises(SipParseError, match="missing Via header"):
        bare.top_via  # noqa: B018
    assert bare.vias == [] and bare.contact == [] and bare.max_forwards is None
    assert bare.expires is None and bare.date is None and bare.content_type is None


def test_other_typed_headers() -> None:
    r = request(
        minimal(
            "Max-Forwards: 255",
            "Expires: 4294967295",
            "Date: Sat, 13 Nov 2010 23:29:00 GMT",
            "Require: 100rel",
            "Proxy-Require: sec-agree",
            "Unsupported: foo, bar",
            "Contact: *",
        )
    )
    assert r.max_forwards == 255 and r.expires == 2**32 - 1
    assert r.date == datetime(2010, 11, 13, 23, 29, 0, tzinfo=UTC)
    assert r.require == ["100rel"] and r.proxy_require == ["sec-agree"]
    assert r.unsupported == ["foo", "bar"]
    assert r.contact_is_star and r.contact == []


@pytest.mark.parametrize(
    ("header", "view", "reason"),
    [
        ("Max-Forwards: 256", "max_forwards", "Max-Forwards: 256 exceeds 255"),
        ("Max-Forwards: seventy", "max_forwards", "Max-Forwards: 'seventy' is not a number"),
        ("Expires: 4294967296", "expires", "Expires: 4294967296 exceeds 4294967295"),
        ("Date: Sat, 13 Nov 2010 23:29:00 EST", "date", "time zone must be GMT"),
        ("Date: Sat, 31 Feb 2010 23:29:00 GMT", "date", "day is out of range"),
        ("Date: yesterday", "date", "Date: 'yesterday' is not an RFC 1123 date"),
        ("Require: a b", "require", "Require: invalid option tag 'a b'"),
        ("Content-Type: application", "content_type_header", "malformed media type"),
        ("Content-Type: text/plain;charset", "content_type_header", None),
        ("Content-Type: a/b;;c=d", "content_type_header", "Content-Type: empty parameter"),
        ("Contact: <sip:a@b.example>, *", "contact", "Contact: URI '*'"),
        ("Record-Route: <sip:p.example;lr>,", "record_route", "Record-Route: empty element"),
        ("Route: sip:p.example, ", "route", "Route: empty element"),
    ],
)
def test_typed_header_errors(header: str, view: str, reason: str | None) -> None:
    r = request(minimal(header))
    if reason is None:  # well formed after all
        getattr(r, view)
        return
    with pytest.raises(SipParseError) as info:
        getattr(r, view)
    assert reason in info.value.reason and info.value.partial is r


def test_call_id_grammar() -> None:
    assert request(minimal().replace("Call-ID: c1", "Call-ID: a@b@c")).headers.get("Call-ID")
    with pytest.raises(SipParseError, match="Call-ID: invalid value 'a@b@c'"):
        request(minimal().replace("Call-ID: c1", "Call-ID: a@b@c")).call_id  # noqa: B018
    with pytest.raises(SipParseError, match="Call-ID: invalid value 'a b'"):
        request(minimal().replace("Call-ID: c1", "Call-ID: a b")).call_id  # noqa: B018


def test_validate_collects_the_mandatory_checks() -> None:
    request(minimal()).validate()
    with pytest.raises(SipParseError, match="missing Call-ID header"):
        request(minimal().replace("Call-ID: c1\r\n", "")).validate()
    with pytest.raises(SipParseError, match="Date: time zone"):
        request(minimal("Date: Sat, 13 Nov 2010 23:29:00 PST")).validate()
    resp = parse(minimal(start="SIP/2.0 200 OK"))
    assert isinstance(resp, Response)
    resp.validate()


# ------------------------------------------------------------- responses


def test_make_response_rfc3261_8_2_6() -> None:
    inv = request(INVITE)
    resp = make_response(inv, 180, to_tag="314159")
    names = [n for n, _ in resp.headers.items()]
    assert names == ["Via", "Via", "To", "From", "Call-ID", "CSeq", "Record-Route"]
    assert resp.headers.values("Via") == inv.headers.values("Via")  # raw lines, in order
    assert [v.host for v in resp.vias] == [v.host for v in inv.vias]
    assert resp.to.tag == "314159" and resp.from_.tag == "1928301774"
    assert resp.headers.get("Record-Route") == inv.headers.get("Record-Route")
    assert (resp.status, resp.reason) == (180, "Ringing")
    assert bytes(resp).endswith(b"Content-Length: 0\r\n\r\n")


def test_make_response_to_tag_rules() -> None:
    inv = request(INVITE)
    assert make_response(inv, 100, to_tag="x").to.tag is None  # 100 Trying establishes nothing
    assert make_response(inv, 100).headers.get("Timestamp") == "54"  # §8.2.6.1
    assert make_response(inv, 180).headers.get("Timestamp") is None
    in_dialog = request(
        INVITE.replace(b"To: Bob <sip:bob@biloxi.example.com>", b"To: <sip:b@h>;tag=abc")
    )
    assert make_response(in_dialog, 200, to_tag="zzz").headers.get("To") == "<sip:b@h>;tag=abc"


@pytest.mark.parametrize(
    ("method", "status", "copied"),
    [
        ("INVITE", 100, False),
        ("INVITE", 183, True),
        ("INVITE", 200, True),
        ("INVITE", 486, False),
        ("SUBSCRIBE", 202, True),
        ("OPTIONS", 200, False),
        ("BYE", 200, False),
    ],
)
def test_record_route_only_for_dialog_creating_responses(
    method: str, status: int, copied: bool
) -> None:
    r = request(INVITE.replace(b"INVITE", method.encode()))
    resp = make_response(r, status, to_tag="t")
    assert ("Record-Route" in resp.headers) == copied


def test_make_response_body_and_extra_headers() -> None:
    inv = request(INVITE)
    sdp = b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n"
    resp = make_response(
        inv,
        200,
        "Fine",
        to_tag="t",
        body=sdp,
        content_type="application/sdp",
        headers=[("Contact", "<sip:bob@192.0.2.4>"), ("Allow", "INVITE, ACK, BYE")],
    )
    again = parse(bytes(resp))
    assert isinstance(again, Response) and (again.status, again.reason) == (200, "Fine")
    assert again.body == sdp and again.content_type == "application/sdp"
    assert again.headers.get("Content-Length") == str(len(sdp))
    assert [str(c.uri) for c in again.contact] == ["sip:bob@192.0.2.4"]


def test_reason_phrases() -> None:
    assert reason_phrase(481) == "Call/Transaction Does Not Exist"
    assert reason_phrase(505) == "Version Not Supported"
    assert reason_phrase(499) == "Bad Request"  # unknown codes take their class's x00 phrase
    assert reason_phrase(299) == "OK"


# ------------------------------------------------------------- Headers API


def test_headers_api() -> None:
    h = Headers([("Via", "a"), ("v", "b"), ("Route", "<sip:r1>, <sip:r2>")])
    assert h.get("VIA") == "a" and h.values("via") == ["a", "b"] and h.count("Via") == 2
    assert h.get_all("route") == ["<sip:r1>", "<sip:r2>"]
    h.prepend("Via", "top")
    assert h.values("Via") == ["top", "a", "b"]
    h.set("Via", "only")
    assert h.items() == [("Via", "only"), ("Route", "<sip:r1>, <sip:r2>")]
    h.add("X-A", "1")
    copy = h.copy()
    h.remove("via")
    assert "Via" not in h and "Via" in copy and len(copy) == 3 and copy != h
    assert list(copy) == copy.items()
    assert Headers([("i", "x")]) == Headers([("CALL-ID", "x")])


@pytest.mark.parametrize(
    ("name", "value"),
    [("X-A", "a\r\nInjected: yes"), ("X-A", "a\nb"), ("Bad Name", "v"), ("", "v"), ("X:", "v")],
)
def test_headers_refuse_injection(name: str, value: str) -> None:
    with pytest.raises(SipUsageError):
        Headers().add(name, value)
    with pytest.raises(SipUsageError):
        Headers().set(name, value)
    with pytest.raises(SipUsageError):
        make_request("OPTIONS", "sip:a@b.example", [(name, value)])


def test_make_request_round_trip() -> None:
    req = make_request(
        "OPTIONS",
        "sip:a@b.example",
        [("Via", "SIP/2.0/TCP h.example;branch=z9hG4bK9"), ("CSeq", "5 OPTIONS"), ("Call-ID", "z")],
    )
    again = parse(bytes(req), stream=True)
    assert isinstance(again, Request) and (again.method, again.uri) == (
        "OPTIONS",
        "sip:a@b.example",
    )
    assert again.headers.items() == [*req.headers.items(), ("Content-Length", "0")]
    assert again.cseq == CSeq(5, "OPTIONS") and again.body == b""


# ------------------------------------------------------------- fuzzing

VALID_CORPUS = [
    p.read_bytes()
    for p in sorted((TORTURE / "rfc4475").glob("*.dat"))
    if p.stem
    in {
        "wsinv", "intmeth", "esc01", "escnull", "esc02", "lwsdisp", "longreq", "dblreq",
        "semiuri", "transports", "mpart01", "unreason", "noreason", "inv2543", "badbranch",
        "unksm2", "cparam01", "cparam02", "regescrt", "zeromf", "bcast", "multi01", "scalar02",
        "badinv01", "quotbal", "baddn", "badaspec", "mismatch01",
    }
] + [INVITE]  # fmt: skip

VIEWS = (
    "call_id", "cseq", "vias", "from_", "to", "contact", "route", "record_route", "max_forwards",
    "expires", "content_type", "content_type_header", "require", "proxy_require", "supported",
    "unsupported", "date", "contact_is_star",
)  # fmt: skip


def exercise(data: bytes) -> None:
    """Parse; on success touch every typed view and check the round trip."""
    try:
        msg = parse_message(data)
    except SipParseError as exc:
        assert isinstance(exc.reason, str) and exc.reason and exc.status in (400, 413, 505)
        assert exc.partial is None or isinstance(exc.partial, Request | Response)
        if isinstance(exc.partial, Request):
            bytes(make_response(exc.partial, exc.status))
        return
    for view in VIEWS:
        try:
            getattr(msg, view)
        except SipParseError as exc:
            assert exc.reason and exc.partial is msg
    if isinstance(msg, Request):
        with contextlib.suppress(SipParseError):
            msg.request_uri  # noqa: B018
        bytes(make_response(msg, 400, to_tag="x"))
    wire = bytes(msg)
    again = parse_message(wire, stream=True)

    def meaning(m: Request | Response) -> list[tuple[str, str]]:
        return [(n, v) for n, v in m.headers.items() if n != "Content-Length"]

    assert type(again) is type(msg) and meaning(again) == meaning(msg)
    if isinstance(msg, Request):
        assert isinstance(again, Request) and (again.method, again.uri) == (msg.method, msg.uri)
    else:
        assert isinstance(again, Response) and (again.status, again.reason) == (
            msg.status,
            msg.reason,
        )
    assert again.body == msg.body and bytes(again) == wire


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400))
def test_random_bytes_only_raise_sip_parse_error(data: bytes) -> None:
    exercise(data)


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_random_bytes_after_a_start_line(data: bytes) -> None:
    exercise(b"INVITE sip:a@b.example SIP/2.0\r\n" + data)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(VALID_CORPUS)))
    for _ in range(draw(st.integers(1, 8))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "dup"]))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[pos] = draw(st.sampled_from(b' \t\r\n:;,<>"\\@[]%=?/0a\x00\xff'))
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=6))
        elif op == "delete":
            del data[pos : pos + draw(st.integers(1, 20))]
        else:
            end = min(len(data), pos + draw(st.integers(1, 40)))
            data[pos:pos] = data[pos:end]
    return bytes(data)


@settings(max_examples=4000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_valid_messages_parse_or_raise_sip_parse_error(data: bytes) -> None:
    exercise(data)


@pytest.mark.parametrize("index", range(len(VALID_CORPUS)))
def test_corpus_messages_survive_exercise(index: int) -> None:
    exercise(VALID_CORPUS[index])


# ------------------------------------------------------------- real peers


class UdpPeer:
    """A UDP socket on 127.0.0.1 served by ``handler(message, addr)`` in a thread."""

    def __init__(
        self, handler: Callable[[UdpPeer, Request | Response, tuple[str, int]], None]
    ) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port: int = self.sock.getsockname()[1]
        self.handler = handler
        self.received: list[bytes] = []
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> UdpPeer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()

    def send(self, msg: Request | Response, addr: tuple[str, int]) -> None:
        self.sock.sendto(bytes(msg), addr)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            self.received.append(data)
            try:
                self.handler(self, parse_message(data), addr)
            except BaseException as exc:  # reported by the test
                self.errors.append(exc)


SDP = (
    b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    b"m=audio 40000 RTP/AVP 0\r\n"
)


def uas_handler(peer: UdpPeer, msg: Request | Response, addr: tuple[str, int]) -> None:
    """The smallest UAS: 100/180/200 to INVITE, 200 to BYE, nothing for ACK."""
    assert isinstance(msg, Request)
    msg.validate()
    if msg.method == "INVITE":
        tag = f"uas{zlib.crc32(msg.call_id.encode()):x}"
        peer.send(make_response(msg, 100), addr)
        peer.send(make_response(msg, 180, to_tag=tag), addr)
        contact = [("Contact", f"<sip:uas@127.0.0.1:{peer.port}>")]
        peer.send(
            make_response(
                msg, 200, to_tag=tag, body=SDP, content_type="application/sdp", headers=contact
            ),
            addr,
        )
    elif msg.method == "BYE":
        peer.send(make_response(msg, 200), addr)


@pytest.mark.peer
def test_sipp_uac_calls_a_uas_built_on_this_layer() -> None:
    with UdpPeer(uas_handler) as peer:
        result = Sipp("uac", remote=f"127.0.0.1:{peer.port}", calls=3, rate=10, timeout=20).run()
    assert peer.errors == []
    assert result.ok and result.stats.successful == 3, result.summary()
    methods = [m.method for m in map(parse_message, peer.received) if isinstance(m, Request)]
    assert sorted(methods) == ["ACK"] * 3 + ["BYE"] * 3 + ["INVITE"] * 3
    for data in peer.received:  # real SIPp messages round-trip
        exercise(data)
        msg = parse_message(data)
        assert msg.vias[0].has_rfc3261_branch and msg.max_forwards == 70
    invite = next(
        m
        for m in map(parse_message, peer.received)
        if isinstance(m, Request) and m.method == "INVITE"
    )
    assert invite.content_type == "application/sdp" and invite.body.startswith(b"v=0")


@pytest.mark.peer
def test_our_uac_calls_sipp_uas() -> None:
    finals: list[Response] = []
    done = threading.Event()
    answered = threading.Event()

    def uac_handler(peer: UdpPeer, msg: Request | Response, addr: tuple[str, int]) -> None:
        assert isinstance(msg, Response)
        msg.validate()
        answered.set()
        if msg.cseq.method == "INVITE" and msg.status == 200:
            finals.append(msg)
            to = msg.headers.get("To") or ""
            ack = make_request(
                "ACK",
                str(msg.contact[0].uri),
                [
                    ("Via", f"SIP/2.0/UDP 127.0.0.1:{peer.port};branch=z9hG4bK-ack-1"),
                    ("Max-Forwards", "70"),
                    ("From", msg.headers.get("From") or ""),
                    ("To", to),
                    ("Call-ID", msg.call_id),
                    ("CSeq", f"{msg.cseq.seq} ACK"),
                ],
            )
            peer.send(ack, addr)
            bye = make_request(
                "BYE",
                str(msg.contact[0].uri),
                [
                    ("Via", f"SIP/2.0/UDP 127.0.0.1:{peer.port};branch=z9hG4bK-bye-1"),
                    ("Max-Forwards", "70"),
                    ("From", msg.headers.get("From") or ""),
                    ("To", to),
                    ("Call-ID", msg.call_id),
                    ("CSeq", f"{msg.cseq.seq + 1} BYE"),
                ],
            )
            peer.send(bye, addr)
        elif msg.cseq.method == "BYE":
            finals.append(msg)
            done.set()

    sipp = Sipp("uas", calls=1, timeout=15)
    proc = sipp.start()
    try:
        with UdpPeer(uac_handler) as peer:
            invite = make_request(
                "INVITE",
                f"sip:service@127.0.0.1:{proc.port}",
                [
                    ("Via", f"SIP/2.0/UDP 127.0.0.1:{peer.port};branch=z9hG4bK-inv-1"),
                    ("Max-Forwards", "70"),
                    ("From", f"<sip:caller@127.0.0.1:{peer.port}>;tag=ours1"),
                    ("To", f"<sip:service@127.0.0.1:{proc.port}>"),
                    ("Call-ID", "uac-test-1@127.0.0.1"),
                    ("CSeq", "1 INVITE"),
                    ("Contact", f"<sip:caller@127.0.0.1:{peer.port}>"),
                    ("Content-Type", "application/sdp"),
                ],
                SDP,
            )
            for _ in range(20):  # SIPp may not listen yet: retransmit as Timer A would
                peer.send(invite, ("127.0.0.1", proc.port))
                if answered.wait(0.5):
                    break
            assert done.wait(10), f"no answer to BYE; received {peer.received!r}"
        result = proc.wait(10)
    finally:
        if proc.running():
            proc.wait(0)  # kills SIPp's process group
    assert peer.errors == []
    assert result.ok, result.summary()
    assert [(f.status, f.cseq.method) for f in finals] == [(200, "INVITE"), (200, "BYE")]
    statuses = [m.status for m in map(parse_message, peer.received) if isinstance(m, Response)]
    assert statuses == [180, 200, 200]
    ok = finals[0]
    assert ok.to.tag and ok.body.startswith(b"v=0") and ok.content_type == "application/sdp"
    for data in peer.received:
        exercise(data)


@pytest.mark.peer
def test_baresip_invite_is_parsed_and_refused() -> None:
    invites: list[Request] = []
    acked = threading.Event()

    def busy(peer: UdpPeer, msg: Request | Response, addr: tuple[str, int]) -> None:
        assert isinstance(msg, Request)
        msg.validate()
        if msg.method == "INVITE":
            invites.append(msg)
            peer.send(make_response(msg, 486, to_tag="busy1"), addr)
        elif msg.method == "ACK":
            acked.set()

    with UdpPeer(busy) as peer, Baresip() as phone:
        phone.dial(f"sip:agent@127.0.0.1:{peer.port}")
        assert acked.wait(10), f"baresip did not ACK our 486; received {peer.received!r}"
    assert peer.errors == []
    invite = invites[0]
    assert invite.headers.get("Supported") == "" and invite.supported == []  # sent empty
    assert "ACK" in invite.headers.get_all("Allow") and invite.vias[0].has_rport
    assert invite.content_type == "application/sdp" and b"m=audio" in invite.body
    assert invite.from_.tag and invite.vias[0].has_rfc3261_branch
    for data in peer.received:
        exercise(data)
