"""RFC 4475 and RFC 5118 torture messages through the message layer (parse level).

``TABLE`` maps every file of /work/shared/testdata/sip-torture to the outcome
the RFC states, with its section:

* ``valid``: parses, and the interesting fields come out right (``check``);
* ``error``: ``parse_message`` raises SipParseError with ``status`` and a
  reason containing ``reason`` (with ``partial`` for requests whose start line
  shows a method, so that the UA can answer);
* ``flagged``: the message parses (the fault is in a header body or is only
  semantic) and the typed accessor ``accessor`` raises with ``reason``; what the
  UA answers is its business (tests/test_sip_torture_statuses.py).

Every valid message also survives ``parse(bytes(parse(x))) == parse(x)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest

from media.sip.auth import Credentials
from media.sip.errors import SipParseError
from media.sip.headers import NameAddr
from media.sip.message import Request, Response, make_response, parse_message
from media.sip.uri import OpaqueUri, SipUri

TORTURE = Path("/work/shared/testdata/sip-torture")

Message = Request | Response


def req(m: Message) -> Request:
    assert isinstance(m, Request)
    return m


def sip(uri: SipUri | OpaqueUri) -> SipUri:
    assert isinstance(uri, SipUri), uri
    return uri


def check_wsinv(m: Message) -> None:
    r = req(m)
    assert (r.method, r.uri) == ("INVITE", "sip:vivekg@chair-dnrc.example.com;unknownparam")
    assert str(r.to.uri) == "sip:vivekg@chair-dnrc.example.com" and r.to.tag == "1918181833n"
    assert r.from_.display == 'J Rosenberg \\"' and r.from_.tag == "98asjd8"
    assert r.max_forwards == 68
    assert (r.cseq.seq, r.cseq.method) == (9, "INVITE")
    vias = [(v.transport, v.host, v.branch) for v in r.vias]
    assert vias == [
        ("UDP", "192.0.2.2", "390skdjuw"),
        ("TCP", "spindle.example.com", "z9hG4bK9ikj8"),
        ("UDP", "192.168.255.111", "z9hG4bK30239"),
    ]
    assert r.headers.get("Subject") == ""
    assert r.headers.get("newfangledheader") == "newfangled value continued newfangled value"
    assert r.headers.get("UnknownHeaderWithUnusualValue") == ";;,,;;,;"
    route = r.route[0]
    assert sip(route.uri).params == {"lr": None, "unknownwith": "value", "unknown-no-value": None}
    contact = r.contact[0]
    assert contact.display == 'Quoted string ""'
    assert contact.params == {"newparam": "newvalue", "secondparam": None, "q": "0.33"}
    assert len(r.body) == 150 and r.body.startswith(b"v=0\r\n")


def check_intmeth(m: Message) -> None:
    r = req(m)
    method = "!interesting-Method0123456789_*+`.%indeed'~"
    assert r.method == method and r.cseq.method == method
    uri = sip(r.request_uri)
    assert uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert uri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
    assert uri.host == "example.com"
    assert r.to.display == "BEL:\x07 NUL:\x00 DEL:\x7f"
    assert r.from_.display == "token1~` token2'+_ token3*%!.-"
    assert r.from_.tag == "_token~1'+`*%!-."
    assert r.from_.params["fromparam''~+*_!.-%"] == '"работающий"'
    assert r.call_id == "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
    assert r.headers.get("extensionHeader-!.%*+_`'~") == "\ufeff大停電"
    assert r.max_forwards == 255


def check_esc01(m: Message) -> None:
    r = req(m)
    uri = sip(r.request_uri)
    assert (uri.user, uri.host) == ("sips:user@example.com", "example.net")
    assert sip(r.to.uri).user == "user"
    assert sip(r.from_.uri).user == "I have spaces"
    contact = sip(r.contact[0].uri)
    assert contact.user == "caller" and contact.params == {"lr": None, "name": "value%41"}
    assert r.content_type == "application/sdp"  # compact "C"


def check_escnull(m: Message) -> None:
    r = req(m)
    assert sip(r.to.uri).user == "null-\x00-null"
    assert [sip(c.uri).user for c in r.contact] == ["\x00", "\x00\x00"]


def check_esc02(m: Message) -> None:
    r = req(m)
    assert r.method == "RE%47IST%45R" and r.cseq.method == "RE%47IST%45R"
    assert [sip(c.uri).host for c in r.contact] == ["host1.example.com", "host3.example.com"]
    assert r.headers.get("C%6Fntact") == "<sip:alias2@host2.example.com>"
    assert r.to.display == "%Z%45"
    assert r.vias[0].branch == "z9hG4bK209%fzsnel234"


def check_lwsdisp(m: Message) -> None:
    assert m.from_.display == "caller" and m.from_.tag == "323"
    assert str(m.from_.uri) == "sip:caller@example.com"


def check_longreq(m: Message) -> None:
    r = req(m)
    to = r.to
    assert to.display is not None and to.display.endswith("extreme proportion")
    uri = sip(to.uri)
    assert (
        uri.port == 6000
        and uri.params[
            "longparamnamenamenamenamenamenamenamenamenamenamenamenamenamenamenamenamenamenamenamenamenamenamenamenamename"
        ]
        == "shortvalue"
    )
    assert r.from_.tag is not None and r.from_.tag.endswith("2982424")
    vias = r.vias
    assert len(vias) == 34
    assert [v.host for v in vias[:3]] == [
        "sip33.example.com",
        "sip32.example.com",
        "sip31.example.com",
    ]
    assert vias[-1].received == "192.0.2.5" and (vias[-1].branch or "").endswith("branchvalue")
    assert len(r.body) == 150


def check_dblreq(m: Message) -> None:
    r = req(m)
    assert r.method == "REGISTER" and r.body == b""
    assert r.call_id == "dblreq.0ha0isndaksdj99sdfafnl3lk233412"  # "I:" compact form


def check_semiuri(m: Message) -> None:
    uri = sip(req(m).request_uri)
    assert (uri.user, uri.host, uri.params) == ("user;par=u@example.net", "example.com", {})
    assert m.headers.get_all("Accept") == [
        "application/sdp",
        "application/pkcs7-mime",
        "multipart/mixed",
        "multipart/signed",
        "message/sip",
        "message/sipfrag",
    ]


def check_transports(m: Message) -> None:
    assert [v.transport for v in m.vias] == ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]
    assert m.call_id == "transports.kijh4akdnaqjkwendsasfdj"


def check_mpart01(m: Message) -> None:
    ct = m.content_type_header
    assert ct is not None and ct.media_type == "multipart/mixed"
    assert ct.params == {"boundary": "7a9cbec02ceef655"}
    assert len(m.body) == 553 and m.body.endswith(b"--7a9cbec02ceef655--\r\n")
    with pytest.raises(UnicodeDecodeError):
        m.body.decode("utf-8")  # binary S/MIME part, kept as bytes


def check_unreason(m: Message) -> None:
    assert isinstance(m, Response) and m.status == 200
    assert m.reason == "= 2**3 * 5**2 но сто девяносто девять - простое"
    assert len(m.body) == 154


def check_noreason(m: Message) -> None:
    assert isinstance(m, Response) and (m.status, m.reason) == (100, "")


def check_badbranch(m: Message) -> None:
    via = m.vias[0]
    assert via.branch == "z9hG4bK" and not via.has_rfc3261_branch


def check_insuf(m: Message) -> None:
    assert [n for n in ("To", "From", "Call-ID", "Max-Forwards") if n in m.headers] == []
    assert m.cseq.seq == 193942 and len(m.body) == 152
    with pytest.raises(SipParseError, match="missing From header"):
        req(m).validate()


def check_unkscm(m: Message) -> None:
    uri = req(m).request_uri
    assert isinstance(uri, OpaqueUri) and uri.scheme == "nobodyknowsthisscheme"
    assert uri.rest == "totallyopaquecontent"


def check_novelsc(m: Message) -> None:
    uri = req(m).request_uri
    assert isinstance(uri, OpaqueUri) and (uri.scheme, uri.rest) == (
        "soap.beep",
        "//192.0.2.103:3002",
    )


def check_unksm2(m: Message) -> None:
    assert str(m.to.uri) == "isbn:2983792873" and not m.to.uri.is_sip
    assert isinstance(m.from_.uri, OpaqueUri) and m.from_.uri.scheme == "http"
    assert m.from_.tag == "3234233"
    assert [str(c.uri) for c in m.contact] == ["name:John_Smith"]


def check_bext01(m: Message) -> None:
    assert m.require == ["nothingSupportsThis", "nothingSupportsThisEither"]
    assert m.proxy_require == ["noProxiesSupportThis", "norDoAnyProxiesSupportThis"]


def check_invut(m: Message) -> None:
    assert m.content_type == "application/unknownformat"
    assert m.body == b'<audio>\r\n <pcmu port="443"/>\r\n</audio>\r\n'


def check_regaut01(m: Message) -> None:
    cred = Credentials.parse(m.headers.get("Authorization") or "")
    assert cred.scheme == "NoOneKnowsThisScheme" and cred.params == {"opaque-data": "here"}


def check_bcast(m: Message) -> None:
    assert isinstance(m, Response) and m.status == 200
    assert [v.host for v in m.vias] == ["192.0.2.198", "255.255.255.255"]


def check_zeromf(m: Message) -> None:
    assert m.max_forwards == 0


def check_cparam01(m: Message) -> None:
    contact = m.contact[0]
    assert contact.params == {"unknownparam": None} and sip(contact.uri).params == {}


def check_cparam02(m: Message) -> None:
    contact = m.contact[0]
    assert contact.params == {} and sip(contact.uri).params == {"unknownparam": None}


def check_regescrt(m: Message) -> None:
    uri = sip(m.contact[0].uri)
    assert uri.headers == {"Route": "<sip:sip.example.com>"}


def check_sdp01(m: Message) -> None:
    assert m.headers.get_all("Accept") == ["text/nobodyKnowsThis"]
    assert m.content_type == "application/sdp"


def check_inv2543(m: Message) -> None:
    r = req(m)
    assert r.vias[0].branch is None and r.from_.tag is None and r.max_forwards is None
    assert "Content-Length" not in TORTURE.joinpath("rfc4475/inv2543.dat").read_text()
    assert len(r.body) == 105 and r.body.endswith(b"m=audio 49217 RTP/AVP 0\r\n")
    assert sip(r.record_route[0].uri).params == {"maddr": "ss1.example.com"}


def check_ipv6_good(m: Message) -> None:
    assert sip(req(m).request_uri).host == "2001:db8::10"
    assert (m.vias[0].host, m.vias[0].port) == ("2001:db8::9:1", None)
    assert sip(m.contact[0].uri).host == "2001:db8::1"


def check_port_ambiguous(m: Message) -> None:
    uri = sip(req(m).request_uri)
    assert (uri.host, uri.port) == ("2001:db8::10:5070", None)  # §4.3: an address, no port


def check_port_unambiguous(m: Message) -> None:
    uri = sip(req(m).request_uri)
    assert (uri.host, uri.port) == ("2001:db8::10", 5070)


def check_received(m: Message) -> None:
    via = m.vias[0]
    assert via.host == "2001:db8::9:1" and via.received == "2001:db8::9:255"
    assert (via.branch or "").startswith("z9hG4bKas3")


def check_ipv6_in_sdp(m: Message) -> None:
    assert b"c=IN IP6 2001:db8::20" in m.body and len(m.body) == 241  # CL 241 < 251 sent


def check_mult_ip_in_header(m: Message) -> None:
    vias = [(v.transport, v.host, v.port, v.received) for v in m.vias]
    assert vias == [
        ("UDP", "2001:db8::9:1", 6050, None),
        ("UDP", "192.0.2.1", None, None),
        ("TCP", "2001:db8::9:255", None, "192.0.2.200"),
    ]


def check_mult_ip_in_sdp(m: Message) -> None:
    assert b"c=IN IP4 192.0.2.1" in m.body and len(m.body) == 181


def check_ipv4_mapped(m: Message) -> None:
    assert [(v.host, v.port) for v in m.vias] == [
        ("::ffff:192.0.2.10", 19823),
        ("::ffff:192.0.2.2", None),
    ]
    assert sip(m.contact[0].uri).host == "::ffff:192.0.2.2"


def check_abnf_colons(m: Message) -> None:
    # §4.10: both forms are tolerated and name the same address.
    assert sip(req(m).request_uri).host == "2001:db8::192.0.2.1"
    assert sip(m.to.uri).host == "2001:db8::192.0.2.1"


@dataclass(frozen=True)
class Expect:
    section: str
    outcome: Literal["valid", "error", "flagged"]
    reason: str = ""
    status: int = 400
    accessor: str = ""
    check: Callable[[Message], None] | None = None


def valid(section: str, check: Callable[[Message], None]) -> Expect:
    return Expect(section, "valid", check=check)


def error(section: str, reason: str, status: int = 400) -> Expect:
    return Expect(section, "error", reason, status)


def flagged(section: str, accessor: str, reason: str) -> Expect:
    return Expect(section, "flagged", reason, accessor=accessor)


TABLE: dict[str, Expect] = {
    # RFC 4475 §3.1.1: valid messages
    "rfc4475/wsinv.dat": valid("4475 3.1.1.1", check_wsinv),
    "rfc4475/intmeth.dat": valid("4475 3.1.1.2", check_intmeth),
    "rfc4475/esc01.dat": valid("4475 3.1.1.3", check_esc01),
    "rfc4475/escnull.dat": valid("4475 3.1.1.4", check_escnull),
    "rfc4475/esc02.dat": valid("4475 3.1.1.5", check_esc02),
    "rfc4475/lwsdisp.dat": valid("4475 3.1.1.6", check_lwsdisp),
    "rfc4475/longreq.dat": valid("4475 3.1.1.7", check_longreq),
    "rfc4475/dblreq.dat": valid("4475 3.1.1.8", check_dblreq),
    "rfc4475/semiuri.dat": valid("4475 3.1.1.9", check_semiuri),
    "rfc4475/transports.dat": valid("4475 3.1.1.10", check_transports),
    "rfc4475/mpart01.dat": valid("4475 3.1.1.11", check_mpart01),
    "rfc4475/unreason.dat": valid("4475 3.1.1.12", check_unreason),
    "rfc4475/noreason.dat": valid("4475 3.1.1.13", check_noreason),
    # RFC 4475 §3.1.2: invalid messages
    "rfc4475/badinv01.dat": flagged("4475 3.1.2.1", "vias", "Via: empty parameter"),
    "rfc4475/clerr.dat": error(
        "4475 3.1.2.2", "Content-Length: 9999 bytes announced, 154 received"
    ),
    "rfc4475/ncl.dat": error("4475 3.1.2.3", "Content-Length: '-999' is not a number"),
    "rfc4475/scalar02.dat": flagged(
        "4475 3.1.2.4", "cseq", "36893488147419103232 exceeds 2147483647"
    ),
    "rfc4475/scalarlg.dat": flagged("4475 3.1.2.5", "cseq", "exceeds 2147483647"),
    "rfc4475/quotbal.dat": flagged("4475 3.1.2.6", "to", "To: unterminated quoted display name"),
    "rfc4475/ltgtruri.dat": error("4475 3.1.2.7", "Request-URI: URI '<sip:user@example.com>'"),
    "rfc4475/lwsruri.dat": error("4475 3.1.2.8", "white space inside the Request-URI"),
    "rfc4475/lwsstart.dat": error("4475 3.1.2.9", "separated by exactly one SP"),
    "rfc4475/trws.dat": error("4475 3.1.2.10", "nothing after the version"),
    "rfc4475/escruri.dat": error("4475 3.1.2.11", "header components ('?...') are not allowed"),
    "rfc4475/baddate.dat": flagged("4475 3.1.2.12", "date", "Date: time zone must be GMT"),
    "rfc4475/regbadct.dat": flagged("4475 3.1.2.13", "contact", "must be enclosed in <...>"),
    "rfc4475/badaspec.dat": flagged("4475 3.1.2.14", "to", "To: white space inside <...>"),
    "rfc4475/baddn.dat": flagged("4475 3.1.2.15", "from_", "From: display name 'Bell, Alexander'"),
    "rfc4475/badvers.dat": error("4475 3.1.2.16", "SIP version 7.0 is not supported", 505),
    "rfc4475/mismatch01.dat": flagged(
        "4475 3.1.2.17", "cseq", "method INVITE does not match the request method OPTIONS"
    ),
    "rfc4475/mismatch02.dat": flagged(
        "4475 3.1.2.18", "cseq", "does not match the request method NEWMETHOD"
    ),
    "rfc4475/bigcode.dat": error("4475 3.1.2.19", "status code '4294967301' is not a number"),
    # RFC 4475 §3.2: transaction layer
    "rfc4475/badbranch.dat": valid("4475 3.2.1", check_badbranch),
    # RFC 4475 §3.3: application layer (well formed; the UA answers)
    "rfc4475/insuf.dat": valid("4475 3.3.1", check_insuf),
    "rfc4475/unkscm.dat": valid("4475 3.3.2", check_unkscm),
    "rfc4475/novelsc.dat": valid("4475 3.3.3", check_novelsc),
    "rfc4475/unksm2.dat": valid("4475 3.3.4", check_unksm2),
    "rfc4475/bext01.dat": valid("4475 3.3.5", check_bext01),
    "rfc4475/invut.dat": valid("4475 3.3.6", check_invut),
    "rfc4475/regaut01.dat": valid("4475 3.3.7", check_regaut01),
    "rfc4475/multi01.dat": flagged(
        "4475 3.3.8", "cseq", "CSeq: 2 header lines where one is allowed"
    ),
    "rfc4475/mcl01.dat": error("4475 3.3.9", "Content-Length: conflicting values 13, 5"),
    "rfc4475/bcast.dat": valid("4475 3.3.10", check_bcast),
    "rfc4475/zeromf.dat": valid("4475 3.3.11", check_zeromf),
    "rfc4475/cparam01.dat": valid("4475 3.3.12", check_cparam01),
    "rfc4475/cparam02.dat": valid("4475 3.3.13", check_cparam02),
    "rfc4475/regescrt.dat": valid("4475 3.3.14", check_regescrt),
    "rfc4475/sdp01.dat": valid("4475 3.3.15", check_sdp01),
    # RFC 4475 §3.4: backward compatibility
    "rfc4475/inv2543.dat": valid("4475 3.4.1", check_inv2543),
    # RFC 5118 §4
    "rfc5118/ipv6-good": valid("5118 4.1", check_ipv6_good),
    "rfc5118/ipv6-bad": error("5118 4.2", "without the brackets RFC 5118 §4.2 requires"),
    "rfc5118/port-ambiguous": valid("5118 4.3", check_port_ambiguous),
    "rfc5118/port-unambiguous": valid("5118 4.4", check_port_unambiguous),
    "rfc5118/via-received-param-with-delim": valid("5118 4.5", check_received),
    "rfc5118/via-received-param-no-delim": valid("5118 4.5", check_received),
    "rfc5118/ipv6-in-sdp": valid("5118 4.6", check_ipv6_in_sdp),
    "rfc5118/mult-ip-in-header": valid("5118 4.7", check_mult_ip_in_header),
    "rfc5118/mult-ip-in-sdp": valid("5118 4.8", check_mult_ip_in_sdp),
    "rfc5118/ipv4-mapped-ipv6": valid("5118 4.9", check_ipv4_mapped),
    "rfc5118/ipv6-bug-abnf-3-colons": valid("5118 4.10", check_abnf_colons),
    "rfc5118/ipv6-correct-abnf-2-colons": valid("5118 4.10", check_abnf_colons),
}


def corpus_files() -> list[str]:
    files = [f"rfc4475/{p.name}" for p in (TORTURE / "rfc4475").glob("*.dat")]
    files += [f"rfc5118/{p.name}" for p in (TORTURE / "rfc5118").iterdir() if p.name != "README.md"]
    return sorted(files)


def test_table_covers_the_corpus_exactly() -> None:
    files = corpus_files()
    assert len(files) == 61, files  # 49 RFC 4475 + 12 RFC 5118 messages
    assert sorted(TABLE) == files


@pytest.mark.parametrize("name", sorted(TABLE))
def test_torture_message(name: str) -> None:
    expect = TABLE[name]
    data = (TORTURE / name).read_bytes()
    if expect.outcome == "error":
        with pytest.raises(SipParseError) as info:
            parse_message(data)
        exc = info.value
        assert exc.status == expect.status, exc.reason
        assert expect.reason in exc.reason
        if data.startswith(b"SIP/"):
            assert exc.partial is None or isinstance(exc.partial, Response)
        else:  # a request whose method is readable: the UA can answer from the partial
            partial = exc.partial
            assert isinstance(partial, Request)
            answer = make_response(partial, exc.status)
            assert answer.headers.get("Call-ID") == partial.headers.get("Call-ID") is not None
            assert answer.headers.values("Via") == partial.headers.values("Via") != []
        return
    message = parse_message(data)
    if expect.outcome == "flagged":
        with pytest.raises(SipParseError) as info:
            getattr(message, expect.accessor)
        assert expect.reason in info.value.reason
        assert info.value.partial is message
        with pytest.raises(SipParseError):
            message.validate()
    else:
        assert expect.check is not None
        expect.check(message)
    assert_round_trip(message)


def semantics(m: Message) -> tuple[object, ...]:
    """What a message means: start line, headers other than Content-Length, body."""
    start = (m.method, m.uri) if isinstance(m, Request) else (m.status, m.reason)
    fields = [(n.lower(), v) for n, v in m.headers.items() if n != "Content-Length"]
    return (start, m.version, fields, m.body)


def assert_round_trip(message: Message) -> None:
    wire = bytes(message)
    again = parse_message(wire, stream=True)  # Content-Length is always written
    assert semantics(again) == semantics(message)
    assert bytes(again) == wire


def test_scalar02_other_overlarge_values_are_flagged_too() -> None:
    m = parse_message((TORTURE / "rfc4475/scalar02.dat").read_bytes())
    for accessor, reason in [
        ("max_forwards", "Max-Forwards: 300 exceeds 255"),
        ("expires", "Expires: "),
    ]:
        with pytest.raises(SipParseError, match=reason):
            getattr(m, accessor)
    with pytest.raises(SipParseError, match="expires parameter: 280297596632815 exceeds"):
        m.contact[0].expires  # noqa: B018


def test_multi01_every_single_value_header_is_flagged() -> None:
    m = parse_message((TORTURE / "rfc4475/multi01.dat").read_bytes())
    for accessor, name in [
        ("call_id", "Call-ID"),
        ("to", "To"),
        ("from_", "From"),
        ("max_forwards", "Max-Forwards"),
    ]:
        with pytest.raises(SipParseError, match=f"{name}: 2 header lines"):
            getattr(m, accessor)


def test_badinv01_contact_is_flagged_as_well() -> None:
    m = parse_message((TORTURE / "rfc4475/badinv01.dat").read_bytes())
    with pytest.raises(SipParseError, match="Contact: empty parameter"):
        m.contact  # noqa: B018


def test_dblreq_second_request_is_ignored() -> None:
    data = (TORTURE / "rfc4475/dblreq.dat").read_bytes()
    m = parse_message(data)
    assert b"INVITE sip:joe@example.com" in data and b"INVITE" not in bytes(m)


def test_nameaddr_of_badaspec_without_spaces_parses() -> None:
    fixed = NameAddr.parse('"Watson, Thomas" <sip:t.watson@example.org>', "To")
    assert fixed.display == "Watson, Thomas"
