"""Every RFC 4475 / RFC 5118 torture message through the UA core, over UDP and TCP.

``EXPECTED`` maps each file to what a UAS answers and the RFC section that
says so: a status code, ``CALL`` (a valid INVITE: 100 Trying and an
``IncomingCall``) or ``None`` (no answer is due: the message is a response).
Methods we do not implement (REGISTER, MESSAGE, unknown ones) are valid
requests for which the RFC names no status: we answer 501 with Allow, as a
UA that is not a registrar. After each message the same UA must still answer
an OPTIONS with 200, and no exception may reach ``receive``'s last-resort
handler (``internal_errors`` stays 0).

The hypothesis tests mutate valid messages (bytes and whole lines) and feed
them to one UA in sequence; the UA must never fail internally, every answer
must be a parseable response sent back to the sender, and once the clock
runs past every timer no transaction may be left behind.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from media.sip.events import IncomingCall
from media.sip.message import Response, parse_message
from media.sip.useragent import ALLOW, UserAgent
from tests.conftest import TORTURE

CALL = "call"
PEER = ("127.0.0.1", 5099)

EXPECTED: dict[str, tuple[int | str | None, str]] = {
    # RFC 4475 §3.1.1: valid messages, processed
    "wsinv": (481, "4475 3.1.1.1 valid INVITE with a To tag: no such dialog here"),
    "intmeth": (501, "4475 3.1.1.2 unknown method"),
    "esc01": (CALL, "4475 3.1.1.3 escaped characters in URIs"),
    "escnull": (501, "4475 3.1.1.4 REGISTER with %00 escapes: not a registrar"),
    "esc02": (501, "4475 3.1.1.5 escaped method name is another (unknown) method"),
    "lwsdisp": (200, "4475 3.1.1.6 OPTIONS, no LWS between display name and <"),
    "longreq": (CALL, "4475 3.1.1.7 long values"),
    "dblreq": (501, "4475 3.1.1.8 first message (REGISTER) only, trailing bytes ignored"),
    "semiuri": (200, "4475 3.1.1.9 OPTIONS, ';' in the Request-URI user part"),
    "transports": (200, "4475 3.1.1.10 OPTIONS, Via with unknown transports"),
    "mpart01": (501, "4475 3.1.1.11 MESSAGE with multipart body: method not implemented"),
    "unreason": (None, "4475 3.1.1.12 response: nothing to answer"),
    "noreason": (None, "4475 3.1.1.13 response: nothing to answer"),
    # RFC 4475 §3.1.2: invalid messages, rejected
    "badinv01": (400, "4475 3.1.2.1 extraneous header field separators"),
    "clerr": (400, "4475 3.1.2.2 Content-Length larger than the message"),
    "ncl": (400, "4475 3.1.2.3 negative Content-Length"),
    "scalar02": (400, "4475 3.1.2.4 overlarge scalar values in a request"),
    "scalarlg": (None, "4475 3.1.2.5 overlarge scalars in a response: dropped"),
    "quotbal": (400, "4475 3.1.2.6 unterminated quoted display name"),
    "ltgtruri": (400, "4475 3.1.2.7 <> around the Request-URI"),
    "lwsruri": (400, "4475 3.1.2.8 LWS inside the Request-URI"),
    "lwsstart": (400, "4475 3.1.2.9 several SP between request-line elements"),
    "trws": (400, "4475 3.1.2.10 SP after the request line"),
    "escruri": (400, "4475 3.1.2.11 escaped headers in the Request-URI"),
    "baddate": (400, "4475 3.1.2.12 Date not in GMT"),
    "regbadct": (400, "4475 3.1.2.13 Contact URI with '?' not enclosed in <>"),
    "badaspec": (400, "4475 3.1.2.14 spaces inside an addr-spec"),
    "baddn": (400, "4475 3.1.2.15 non-token characters in an unquoted display name"),
    "badvers": (505, "4475 3.1.2.16 SIP/7.0: Version Not Supported"),
    "mismatch01": (400, "4475 3.1.2.17 request method and CSeq method differ"),
    "mismatch02": (400, "4475 3.1.2.18 unknown method with a CSeq mismatch: 400, not 501"),
    "bigcode": (None, "4475 3.1.2.19 response with an overlarge code: dropped"),
    # RFC 4475 §3.2: transaction layer
    "badbranch": (200, "4475 3.2.1 bare z9hG4bK branch: matched the RFC 2543 way, answered"),
    # RFC 4475 §3.3: application layer
    "insuf": (400, "4475 3.3.1 missing required header fields"),
    "unkscm": (416, "4475 3.3.2 unknown Request-URI scheme"),
    "novelsc": (416, "4475 3.3.3 known but atypical Request-URI scheme (soap.beep)"),
    "unksm2": (501, "4475 3.3.4 REGISTER with non-SIP To/From schemes: not a registrar"),
    "bext01": (420, "4475 3.3.5 Require with unknown extensions: 420 + Unsupported"),
    "invut": (415, "4475 3.3.6 INVITE with an unknown Content-Type"),
    "regaut01": (501, "4475 3.3.7 REGISTER with an unknown authorization scheme"),
    "multi01": (400, "4475 3.3.8 several values in single-value header fields"),
    "mcl01": (400, "4475 3.3.9 several Content-Length values"),
    "bcast": (None, "4475 3.3.10 200 with a broadcast Via: a response, dropped"),
    "zeromf": (200, "4475 3.3.11 Max-Forwards 0: an endpoint processes it"),
    "cparam01": (501, "4475 3.3.12 REGISTER with a Contact parameter"),
    "cparam02": (501, "4475 3.3.13 REGISTER with a url-parameter"),
    "regescrt": (501, "4475 3.3.14 REGISTER with an escaped header in Contact"),
    "sdp01": (406, "4475 3.3.15 Accept without application/sdp: 406 Not Acceptable"),
    # RFC 4475 §3.4: backward compatibility
    "inv2543": (CALL, "4475 3.4.1 RFC 2543 INVITE (no branch, no tags): accepted"),
    # RFC 5118 §4
    "ipv6-good": (501, "5118 4.1 valid IPv6 reference (REGISTER)"),
    "ipv6-bad": (400, "5118 4.2 IPv6 address without brackets in the Request-URI"),
    "port-ambiguous": (501, "5118 4.3 port inside the brackets: a valid address (REGISTER)"),
    "port-unambiguous": (501, "5118 4.4 port after the brackets (REGISTER)"),
    "via-received-param-with-delim": (481, "5118 4.5 received=[...] accepted; BYE, no dialog"),
    "via-received-param-no-delim": (200, "5118 4.5 received without brackets; OPTIONS"),
    "ipv6-in-sdp": (CALL, "5118 4.6 IPv6 addresses in the SDP"),
    "mult-ip-in-header": (481, "5118 4.7 IPv4 and IPv6 Vias; BYE outside a dialog"),
    "mult-ip-in-sdp": (CALL, "5118 4.8 IPv4 and IPv6 in the SDP"),
    "ipv4-mapped-ipv6": (CALL, "5118 4.9 IPv4-mapped IPv6 addresses"),
    "ipv6-bug-abnf-3-colons": (200, "5118 4.10 3-colon form of RFC 3261's ABNF bug: tolerated"),
    "ipv6-correct-abnf-2-colons": (200, "5118 4.10 correct 2-colon form"),
}
# A stream needs Content-Length to frame a message (RFC 3261 §18.3): over TCP
# the RFC 2543 INVITE, which has none, cannot be taken.
TCP_EXPECTED: dict[str, int] = {"inv2543": 400}
# Headers the answer must carry (RFC 3261 §20.5 Allow for 501/405, §20.40
# Unsupported for 420, §21.4.13 Accept for 415).
MUST_CARRY = {501: "Allow", 420: "Unsupported", 415: "Accept"}

FILES = sorted((TORTURE / "rfc4475").glob("*.dat")) + sorted(
    p for p in (TORTURE / "rfc5118").iterdir() if p.is_file()
)


def _name(path: Path) -> str:
    return path.stem if path.suffix == ".dat" else path.name


def options(n: int, transport: str = "UDP") -> bytes:
    return (
        "OPTIONS sip:ivr@127.0.0.1:5060 SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport} 127.0.0.1:5099;branch=z9hG4bK-probe{n};rport\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:probe@127.0.0.1>;tag=p{n}\r\n"
        "To: <sip:ivr@127.0.0.1>\r\n"
        f"Call-ID: probe-{n}@127.0.0.1\r\n"
        f"CSeq: {n} OPTIONS\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def run_until_quiet(ua: UserAgent, now: float) -> float:
    """Fire every deadline in turn (virtual time) until none is left; the final time."""
    while (deadline := ua.next_deadline()) is not None:
        now = max(now, deadline)
        ua.handle_timer(now)
        ua.datagrams_to_send()
    return now


def test_table_covers_the_whole_corpus() -> None:
    names = {_name(p) for p in FILES}
    assert len(names) == len(FILES) == 61  # 49 RFC 4475 files + 12 RFC 5118 files
    assert names == set(EXPECTED)


@pytest.mark.parametrize("transport", ["udp", "tcp"])
@pytest.mark.parametrize("path", FILES, ids=_name)
def test_torture_message(path: Path, transport: str) -> None:
    name = _name(path)
    expected = EXPECTED[name][0]
    if transport == "tcp":
        expected = TCP_EXPECTED.get(name, expected)
    ua = UserAgent(local_host="127.0.0.1", local_port=5060)
    ua.receive(path.read_bytes(), PEER, transport, 0.0)
    out = ua.datagrams_to_send()
    answers = [parse_message(o.data) for o in out]
    assert all(isinstance(a, Response) for a in answers)
    assert all(o.addr == PEER and o.transport == transport for o in out)
    event = ua.next_event()
    statuses = [a.status for a in answers if isinstance(a, Response)]
    if expected == CALL:
        assert statuses == [100]
        assert isinstance(event, IncomingCall) and event.offer
    elif expected is None:
        assert statuses == [] and event is None
    else:
        assert statuses == [expected], EXPECTED[name][1]
        assert event is None
        header = MUST_CARRY.get(int(expected))
        if header is not None:
            assert isinstance(answers[0], Response) and answers[0].headers.get(header)
    assert ua.internal_errors == 0
    ua.receive(options(1, transport.upper()), PEER, transport, 1.0)
    assert [parse_message(o.data).status for o in ua.datagrams_to_send()] == [200]  # type: ignore[union-attr]


def test_bext01_lists_the_required_extensions() -> None:
    ua = UserAgent(local_host="127.0.0.1", local_port=5060)
    ua.receive((TORTURE / "rfc4475" / "bext01.dat").read_bytes(), PEER, "udp", 0.0)
    [resp] = [parse_message(o.data) for o in ua.datagrams_to_send()]
    assert isinstance(resp, Response)
    assert resp.headers.get("Unsupported") == "nothingSupportsThis, nothingSupportsThisEither"
    assert resp.headers.get("Allow") is None
    ua.receive((TORTURE / "rfc4475" / "intmeth.dat").read_bytes(), PEER, "udp", 0.0)
    [resp] = [parse_message(o.data) for o in ua.datagrams_to_send()]
    assert isinstance(resp, Response) and resp.headers.get("Allow") == ALLOW


def test_every_torture_message_into_one_ua_in_a_row() -> None:
    """The whole corpus into the same UA, UDP then TCP: state never breaks, nothing leaks."""
    ua = UserAgent(local_host="127.0.0.1", local_port=5060)
    now = 0.0
    for n, (transport, path) in enumerate((t, p) for t in ("udp", "tcp") for p in FILES):
        now += 0.01
        ua.receive(path.read_bytes(), PEER, transport, now)
        refs = [e.call for e in iter(ua.next_event, None) if isinstance(e, IncomingCall)]
        for ref in refs:  # the application turns every call down
            assert ua.reject(ref, 486, now)
        ua.receive(options(n, transport.upper()), PEER, transport, now)
        statuses = [parse_message(o.data).status for o in ua.datagrams_to_send()]  # type: ignore[union-attr]
        assert statuses[-1] == 200, path.name
    assert ua.internal_errors == 0
    run_until_quiet(ua, now)
    assert ua.layer.server == {} and ua.layer.client == {} and ua.next_deadline() is None


# ------------------------------------------------------------------- fuzzing
def _seed(method: str, extra: str = "", body: str = "") -> bytes:
    ctype = "Content-Type: application/sdp\r\n" if body else ""
    return (
        f"{method} sip:ivr@127.0.0.1:5060 SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK-fz1;rport\r\n"
        "Max-Forwards: 70\r\n"
        'From: "Fuzz" <sip:fuzz@127.0.0.1>;tag=f1\r\n'
        "To: <sip:ivr@127.0.0.1>" + extra + "\r\n"
        "Call-ID: fuzz-1@127.0.0.1\r\n"
        f"CSeq: 1 {method}\r\n"
        "Contact: <sip:fuzz@127.0.0.1:5099>\r\n"
        f"{ctype}Content-Length: {len(body)}\r\n\r\n{body}"
    ).encode()


SDP = (
    "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio 4000 RTP/AVP 0\r\n"
)
SEEDS = [
    _seed("INVITE", body=SDP),
    _seed("OPTIONS"),
    _seed("CANCEL"),
    _seed("ACK"),
    _seed("BYE", ";tag=x"),
    _seed("INFO", ";tag=x"),
    b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKabc\r\n"
    b"From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:b@127.0.0.1>;tag=2\r\nCall-ID: c\r\n"
    b"CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
] + [p.read_bytes() for p in FILES[::6]]
NASTY = [
    "", " ", ";", ";;", "<>", "<sip:>", "sip:", "\x00", "\xff", "z9hG4bK", "99999999999999999999",
    "-1", "0", '"', "a\r\n b", ",,,", "sip:[::1", "tel:+1", "INVITE", "SIP/2.0/UDP", "%",
    "<sip:a@b>;tag=", "2 ACK", "application/sdp", "multipart/mixed;boundary=",
]  # fmt: skip


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = draw(st.sampled_from(SEEDS))
    for _ in range(draw(st.integers(1, 3))):
        lines = data.split(b"\r\n")
        op = draw(st.sampled_from(["flip", "cut", "insert", "dup", "drop", "value", "trunc"]))
        i = draw(st.integers(0, max(len(lines) - 1, 0)))
        if op == "flip" and data:
            pos = draw(st.integers(0, len(data) - 1))
            data = data[:pos] + bytes([draw(st.integers(0, 255))]) + data[pos + 1 :]
        elif op == "cut" and data:
            pos = draw(st.integers(0, len(data) - 1))
            data = data[:pos] + data[pos + draw(st.integers(1, 8)) :]
        elif op == "insert":
            pos = draw(st.integers(0, len(data)))
            data = data[:pos] + draw(st.binary(min_size=1, max_size=6)) + data[pos:]
        elif op == "dup":
            data = b"\r\n".join(lines[: i + 1] + lines[i:])
        elif op == "drop":
            data = b"\r\n".join(lines[:i] + lines[i + 1 :])
        elif op == "value" and b":" in lines[i]:
            name = lines[i].split(b":", 1)[0]
            value = draw(st.sampled_from(NASTY)).encode("utf-8", "surrogateescape")
            data = b"\r\n".join([*lines[:i], name + b": " + value, *lines[i + 1 :]])
        elif op == "trunc":
            data = data[: draw(st.integers(0, len(data)))]
    return data


def _check_outputs(ua: UserAgent) -> list[int]:
    codes = []
    for out in ua.datagrams_to_send():
        assert out.addr == PEER  # answers only ever go back to the sender
        msg = parse_message(out.data)  # everything we send parses
        if isinstance(msg, Response):
            codes.append(msg.status)
    return codes


@settings(max_examples=600, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
@given(st.lists(st.tuples(mutated(), st.sampled_from(["udp", "tcp"])), min_size=1, max_size=8))
def test_fuzzed_messages_never_break_the_ua(messages: list[tuple[bytes, str]]) -> None:
    ua = UserAgent(local_host="127.0.0.1", local_port=5060)
    now = 0.0
    for data, transport in messages:
        now += 0.1
        if (due := ua.next_deadline()) is not None and due <= now:
            ua.handle_timer(now)  # as the shell does: timers first, then the datagram
        ua.receive(data, PEER, transport, now)
        _check_outputs(ua)
        deadline = ua.next_deadline()
        assert deadline is None or deadline > now
        while (event := ua.next_event()) is not None:
            if isinstance(event, IncomingCall):  # the application answers some calls
                ua.answer(event.call, SDP.encode(), now) if len(data) % 2 else ua.ring(
                    event.call, now
                )
    assert ua.internal_errors == 0
    ua.receive(options(99), PEER, "udp", now)
    assert _check_outputs(ua)[-1] == 200
    run_until_quiet(ua, now)  # every transaction and retransmission runs to its end
    assert ua.internal_errors == 0
    assert ua.layer.client == {}
    assert all(tx.state.value == "proceeding" for tx in ua.layer.server.values())  # rung only
