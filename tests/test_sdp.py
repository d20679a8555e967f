"""SDP model and offer/answer on SDP from real peers.

Where the bodies come from (captured on this machine, loopback):
- SIPP_OFFER: SIPp 3.6.1 ``sipp -sn uac_pcap`` (-mp 26200) calling a UDP
  listener; it is the ``sipp -sd uac_pcap`` template with its keywords filled
  in, which ``test_sipp_uac_pcap_template_is_the_captured_offer`` re-checks.
- BARESIP_*: baresip 1.0.0 (modules opus, g722, g711, gsm) dialing a test
  UAS, then its ``/hold`` and ``/resume`` re-INVITEs.
- BARESIP_ANSWER*, SIPP_UAS_ANSWER: what baresip (``answermode=auto``) and
  ``sipp -sn uas`` answered to offers made by ``build_offer`` (the offers
  are rebuilt below and compared byte for byte to what was sent).
- The RFC 4475 / RFC 5118 torture messages' SDP bodies, byte-exact.
"""

from __future__ import annotations

import re
import subprocess
from typing import Any

import pytest

from media.sdp import (
    AnswerMismatch,
    Connection,
    NegotiatedMedia,
    NoCommonCodec,
    RtpMap,
    SdpParseError,
    SessionDescription,
    build_offer,
    negotiate,
    parse_answer,
)
from tests.conftest import TORTURE

SIPP_OFFER = (
    b"v=0\r\n"
    b"o=user1 53655765 2353687637 IN IP4 127.0.0.1\r\n"
    b"s=-\r\n"
    b"c=IN IP4 127.0.0.1\r\n"
    b"t=0 0\r\n"
    b"m=audio 26200 RTP/AVP 8 101\r\n"
    b"a=rtpmap:8 PCMA/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\n"
    b"a=fmtp:101 0-11,16\r\n"
)
BARESIP_OFFER = (
    b"v=0\r\n"
    b"o=- 3839040591 1016817943 IN IP4 127.0.0.1\r\n"
    b"s=-\r\n"
    b"c=IN IP4 127.0.0.1\r\n"
    b"t=0 0\r\n"
    b"a=tool:baresip 1.0.0\r\n"
    b"m=audio 26026 RTP/AVP 96 9 0 8 3 101\r\n"
    b"a=rtpmap:96 opus/48000/2\r\n"
    b"a=fmtp:96 stereo=1;sprop-stereo=1\r\n"
    b"a=rtpmap:9 G722/8000\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:8 PCMA/8000\r\n"
    b"a=rtpmap:3 GSM/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\n"
    b"a=fmtp:101 0-15\r\n"
    b"a=sendrecv\r\n"
    b"a=label:1\r\n"
    b"a=rtcp-rsize\r\n"
    b"a=ssrc:1318017457 cname:sip:caller@127.0.0.1:25060\r\n"
    b"a=minptime:20\r\n"
    b"a=ptime:20\r\n"
)
BARESIP_HOLD = (
    b"v=0\r\n"
    b"o=- 3839040591 1016817944 IN IP4 127.0.0.1\r\n"
    b"s=-\r\n"
    b"c=IN IP4 127.0.0.1\r\n"
    b"t=0 0\r\n"
    b"a=tool:baresip 1.0.0\r\n"
    b"m=audio 26026 RTP/AVP 8 101\r\n"
    b"a=rtpmap:8 PCMA/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\n"
    b"a=fmtp:101 0-15\r\n"
    b"a=sendonly\r\n"
    b"a=label:1\r\n"
    b"a=rtcp-rsize\r\n"
    b"a=ssrc:1318017457 cname:sip:caller@127.0.0.1:25060\r\n"
    b"a=minptime:20\r\n"
    b"a=ptime:20\r\n"
)
BARESIP_RESUME = BARESIP_HOLD.replace(b"1016817944", b"1016817945").replace(
    b"a=sendonly", b"a=sendrecv"
)
BARESIP_ANSWER = (  # to build_offer(local_port=27100, session_id=42, session_version=1)
    b"v=0\r\n"
    b"o=- 4101063615 747657713 IN IP4 127.0.0.1\r\n"
    b"s=-\r\n"
    b"c=IN IP4 127.0.0.1\r\n"
    b"t=0 0\r\n"
    b"a=tool:baresip 1.0.0\r\n"
    b"m=audio 26378 RTP/AVP 0 8 101\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:8 PCMA/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\n"
    b"a=fmtp:101 0-15\r\n"
    b"a=sendrecv\r\n"
    b"a=label:1\r\n"
    b"a=ssrc:796560531 cname:sip:agent@127.0.0.1:25160\r\n"
    b"a=minptime:20\r\n"
    b"a=ptime:20\r\n"
)
BARESIP_ANSWER_ALT = (  # to the same with codecs=("PCMA", "PCMU"), telephone-event 96, ptime 30
    b"v=0\r\n"
    b"o=- 3179025774 1659232891 IN IP4 127.0.0.1\r\n"
    b"s=-\r\n"
    b"c=IN IP4 127.0.0.1\r\n"
    b"t=0 0\r\n"
    b"a=tool:baresip 1.0.0\r\n"
    b"m=audio 26332 RTP/AVP 8 0 96\r\n"
    b"a=rtpmap:8 PCMA/8000\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:96 telephone-event/8000\r\n"
    b"a=fmtp:96 0-15\r\n"
    b"a=sendrecv\r\n"
    b"a=label:1\r\n"
    b"a=ssrc:3378562980 cname:sip:agent@127.0.0.1:25160\r\n"
    b"a=minptime:20\r\n"
    b"a=ptime:30\r\n"
)
SIPP_UAS_ANSWER = (  # sipp -sn uas answering build_offer(...) (the default offer)
    b"v=0\r\n"
    b"o=user1 53655765 2353687637 IN IP4 127.0.0.1\r\n"
    b"s=-\r\n"
    b"c=IN IP4 127.0.0.1\r\n"
    b"t=0 0\r\n"
    b"m=audio 26500 RTP/AVP 0\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
)
OUR_OFFER = (  # what build_offer wrote for the captures above
    b"v=0\r\n"
    b"o=callcore 42 1 IN IP4 127.0.0.1\r\n"
    b"s=callcore\r\n"
    b"c=IN IP4 127.0.0.1\r\n"
    b"t=0 0\r\n"
    b"m=audio 27100 RTP/AVP 0 8 101\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:8 PCMA/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\n"
    b"a=fmtp:101 0-16\r\n"
    b"a=ptime:20\r\n"
    b"a=sendrecv\r\n"
)
OUR_OFFER_ALT = (
    b"v=0\r\n"
    b"o=callcore 42 1 IN IP4 127.0.0.1\r\n"
    b"s=callcore\r\n"
    b"c=IN IP4 127.0.0.1\r\n"
    b"t=0 0\r\n"
    b"m=audio 27100 RTP/AVP 8 0 96\r\n"
    b"a=rtpmap:8 PCMA/8000\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:96 telephone-event/8000\r\n"
    b"a=fmtp:96 0-16\r\n"
    b"a=ptime:30\r\n"
    b"a=sendrecv\r\n"
)


def parse(data: bytes) -> SessionDescription:
    return SessionDescription.parse(data)


def answer_to(
    data: bytes,
    version: int = 1,
    *,
    codecs: tuple[str, ...] = ("PCMU", "PCMA"),
    local_address: str = "192.0.2.50",
) -> tuple[NegotiatedMedia, bytes]:
    """Our answer (local 192.0.2.50:30000, session id 7) and its bytes."""
    media = negotiate(
        parse(data),
        local_address=local_address,
        local_port=30000,
        codecs=codecs,
        session_id=7,
        session_version=version,
    )
    return media, bytes(media.answer)


def torture_sdp(name: str) -> bytes:
    message = (TORTURE / name).read_bytes()
    return message.split(b"\r\n\r\n", 1)[1]


# --- the model ------------------------------------------------------------------


def test_sipp_uac_pcap_template_is_the_captured_offer() -> None:
    # sipp exits with 99 after dumping a scenario: the XML on stdout is what counts.
    scenario = subprocess.run(["sipp", "-sd", "uac_pcap"], capture_output=True, text=True).stdout
    invite = scenario[scenario.index("INVITE sip:") :]
    template = invite[invite.index("v=0") : invite.index("]]>")]
    lines = [line.strip() for line in template.strip().splitlines()]
    values = {"local_ip_type": "4", "local_ip": "127.0.0.1", "auto_media_port": "26200"}
    body = "".join(re.sub(r"\[(\w+)\]", lambda m: values[m[1]], x) + "\r\n" for x in lines)
    assert body.encode() == SIPP_OFFER


@pytest.mark.parametrize(
    "body",
    [SIPP_OFFER, BARESIP_OFFER, BARESIP_HOLD, BARESIP_ANSWER, SIPP_UAS_ANSWER, OUR_OFFER],
    ids=["sipp", "baresip", "baresip-hold", "baresip-answer", "sipp-answer", "ours"],
)
def test_real_bodies_round_trip_byte_exact(body: bytes) -> None:
    sdp = parse(body)
    assert bytes(sdp) == body
    assert parse(body.replace(b"\r\n", b"\n")) == sdp  # bare LF accepted, CRLF written


@pytest.mark.parametrize(
    "name",
    [
        "rfc4475/sdp01.dat",
        "rfc4475/inv2543.dat",
        "rfc5118/ipv6-in-sdp",
        "rfc5118/mult-ip-in-sdp",
        "rfc5118/ipv4-mapped-ipv6",
    ],
)
def test_torture_bodies_round_trip_byte_exact(name: str) -> None:
    body = torture_sdp(name)
    assert bytes(parse(body)) == body


def test_baresip_offer_fields() -> None:
    sdp = parse(BARESIP_OFFER)
    assert sdp.version == 0
    assert str(sdp.origin) == "- 3839040591 1016817943 IN IP4 127.0.0.1"
    assert sdp.origin.session_version == 1016817943
    assert sdp.session_name == "-"
    assert sdp.connection == Connection("IN", "IP4", "127.0.0.1")
    assert sdp.timing == "0 0"
    assert sdp.attributes == [("tool", "baresip 1.0.0")]
    (m,) = sdp.media
    assert (m.media, m.port, m.proto) == ("audio", 26026, "RTP/AVP")
    assert m.formats == ["96", "9", "0", "8", "3", "101"]
    assert m.rtpmap() == {
        96: RtpMap("opus", 48000, 2),
        9: RtpMap("G722", 8000),
        0: RtpMap("PCMU", 8000),
        8: RtpMap("PCMA", 8000),
        3: RtpMap("GSM", 8000),
        101: RtpMap("telephone-event", 8000),
    }
    assert m.fmtp(96) == "stereo=1;sprop-stereo=1" and m.fmtp(101) == "0-15"
    assert m.fmtp(0) is None
    assert m.ptime == 20 and m.attribute("minptime") == "20"
    assert m.attribute("rtcp-rsize") == "" and m.attribute("nothing") is None
    assert m.ssrc == 1318017457
    assert m.direction() == "sendrecv" and not sdp.is_hold(m)


def test_rfc5118_ipv6_in_sdp() -> None:
    sdp = parse(torture_sdp("rfc5118/ipv6-in-sdp"))
    assert sdp.origin.addrtype == "IP6" and sdp.origin.address == "2001:db8::20"
    assert sdp.origin.session_id == 971731711378798081
    assert sdp.connection == Connection("IN", "IP6", "2001:db8::20")
    assert sdp.session_name == "Live video feed for today's meeting"
    assert sdp.timing == "3338481189 3370017201"
    assert [m.rtpmap() for m in sdp.media] == [
        {2: RtpMap("G726-32", 8000)},
        {107: RtpMap("H263-1998", 90000)},
    ]


def test_rfc5118_mult_ip_in_sdp_uses_each_media_connection() -> None:
    sdp = parse(torture_sdp("rfc5118/mult-ip-in-sdp"))
    assert sdp.connection is None and sdp.session_name == ""
    assert sdp.origin.address == "host.example.com"  # an FQDN is allowed in o=
    audio, video = sdp.media
    assert sdp.connection_of(audio) == Connection("IN", "IP4", "192.0.2.1")
    assert sdp.connection_of(video) == Connection("IN", "IP6", "2001:db8::1")


def test_rfc4475_sdp01_keeps_a_malformed_rtpmap_but_ignores_it() -> None:
    sdp = parse(torture_sdp("rfc4475/sdp01.dat"))
    audio, video = sdp.media
    assert audio.formats == ["0", "12"] and audio.rtpmap() == {0: RtpMap("PCMU", 8000)}
    assert video.attribute("rtpmap") == "31 LPC"  # no clock rate: not a valid rtpmap
    assert video.rtpmap() == {}


def test_unknown_and_optional_lines_are_kept_in_rfc_order() -> None:
    body = (
        b"v=0\r\n"
        b"o=jdoe 2890844526 2890842807 IN IP4 10.47.16.5\r\n"
        b"s=SDP Seminar\r\n"
        b"i=A Seminar on the session description protocol\r\n"
        b"u=http://www.example.com/seminars/sdp.pdf\r\n"
        b"e=j.doe@example.com (Jane Doe)\r\n"
        b"c=IN IP4 224.2.17.12/127\r\n"
        b"b=CT:128\r\n"
        b"t=2873397496 2873404696\r\n"
        b"r=7d 1h 0 25h\r\n"
        b"y=an unknown line\r\n"
        b"a=recvonly\r\n"
        b"m=audio 49170/2 RTP/AVP 0\r\n"
        b"i=the audio\r\n"
        b"c=IN IP4 224.2.17.12/127/3\r\n"
        b"b=AS:64\r\n"
        b"m=video 51372 RTP/AVP 99\r\n"
        b"a=rtpmap:99 h263-1998/90000\r\n"
    )  # RFC 4566 §5 example, with repeat, bandwidth and multicast additions
    sdp = parse(body)
    assert bytes(sdp) == body
    assert sdp.connection == Connection("IN", "IP4", "224.2.17.12", "/127")
    assert sdp.media[0].port_count == 2 and sdp.media[0].other == ["i=the audio", "b=AS:64"]
    assert sdp.direction_of(sdp.media[1]) == "recvonly"  # session level inherited


def test_is_hold_definition() -> None:
    hold = parse(BARESIP_HOLD)
    assert hold.is_hold(hold.media[0])  # a=sendonly
    resume = parse(BARESIP_RESUME)
    assert not resume.is_hold(resume.media[0])
    old_style = parse(SIPP_OFFER.replace(b"c=IN IP4 127.0.0.1", b"c=IN IP4 0.0.0.0"))
    assert old_style.is_hold(old_style.media[0])  # RFC 2543 null address
    recvonly = parse(SIPP_OFFER + b"a=recvonly\r\n")
    assert not recvonly.is_hold(recvonly.media[0])


# --- parse errors ----------------------------------------------------------------

BASE = (
    "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
    "m=audio 4000 RTP/AVP 0\r\n"
)


def _edit(old: str, new: str) -> bytes:
    assert old in BASE
    return BASE.replace(old, new).encode()


PARSE_ERRORS: list[tuple[str, bytes, str]] = [
    ("empty", b"", "SDP: empty body"),
    ("blank lines", b"\r\n\r\n", "SDP: empty body"),
    ("no v=", b"o=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\n",
     "SDP line 1: expected 'v=0' first, got 'o=- 1 1 IN IP4 192.0.2.1'"),
    ("v=1", _edit("v=0", "v=1"), "SDP line 1: version '1', expected 0"),
    ("not type=value", _edit("s=-", "s -"), "SDP line 3: expected '<letter>=<value>', got 's -'"),
    ("upper-case type", _edit("s=-", "S=-"),
     "SDP line 3: expected '<letter>=<value>', got 'S=-'"),
    ("no o=", _edit("o=- 1 1 IN IP4 192.0.2.1\r\n", ""), "SDP: no o= line"),
    ("o= 5 fields", _edit("o=- 1 1 IN", "o=- 1 IN"),
     "SDP line 2: o= needs 6 fields (username sess-id sess-version nettype addrtype "
     "address), got 5"),
    ("o= id", _edit("o=- 1 1", "o=- abc 1"),
     "SDP line 2: o= session id and version must be numbers, got 'abc' '1'"),
    ("second o=", _edit("s=-", "o=- 1 1 IN IP4 192.0.2.1\r\ns=-"), "SDP line 3: second o= line"),
    ("second s=", _edit("s=-", "s=-\r\ns=again"), "SDP line 4: second s= line"),
    ("c= fields", _edit("c=IN IP4 192.0.2.1", "c=IN IP4"),
     "SDP line 4: c= needs 3 fields (nettype addrtype address), got 'IN IP4'"),
    ("c= nettype", _edit("c=IN IP4 192.0.2.1", "c=ATM NSAP 47.0005"),
     "SDP line 4: c= network type 'ATM' is not IN"),
    ("c= addrtype", _edit("c=IN IP4 192.0.2.1", "c=IN IPX 192.0.2.1"),
     "SDP line 4: c= address type 'IPX' is not IP4 or IP6"),
    ("IP4 with an IPv6 address", _edit("c=IN IP4 192.0.2.1", "c=IN IP4 2001:db8::1"),
     "SDP line 4: c= address '2001:db8::1' is IPv6 but the type is IP4"),
    ("IP6 with an IPv4 address", _edit("c=IN IP4 192.0.2.1", "c=IN IP6 192.0.2.1"),
     "SDP line 4: c= address '192.0.2.1' is IPv4 but the type is IP6"),
    ("IP6 garbage", _edit("c=IN IP4 192.0.2.1", "c=IN IP6 2001:db8::1::2"),
     "SDP line 4: c= address '2001:db8::1::2' is not an IP6 address"),
    ("c= garbage", _edit("c=IN IP4 192.0.2.1", "c=IN IP4 192.0.2.1;x"),
     "SDP line 4: c= address '192.0.2.1;x' is not an IP4 address"),
    ("second c=", _edit("c=IN IP4 192.0.2.1", "c=IN IP4 192.0.2.1\r\nc=IN IP4 192.0.2.2"),
     "SDP line 5: second c= line in the session"),
    ("second media c=",
     _edit("RTP/AVP 0\r\n", "RTP/AVP 0\r\nc=IN IP4 192.0.2.3\r\nc=IN IP4 192.0.2.4\r\n"),
     "SDP line 8: second c= line in the m=audio section"),
    ("o= address", _edit("o=- 1 1 IN IP4 192.0.2.1", "o=- 1 1 IN IP4 ::1"),
     "SDP line 2: o= address '::1' is IPv6 but the type is IP4"),
    ("t=", _edit("t=0 0", "t=now"),
     "SDP line 5: t= needs '<start> <stop>' as two integers, got 'now'"),
    ("m= no format", _edit("RTP/AVP 0", "RTP/AVP"),
     "SDP line 6: m= needs media, port, proto and at least one format, got 'audio 4000 RTP/AVP'"),
    ("m= port range", _edit("audio 4000", "audio 70000"),
     "SDP line 6: m= port '70000' is not a number 0-65535"),
    ("m= port text", _edit("audio 4000", "audio x"),
     "SDP line 6: m= port 'x' is not a number 0-65535"),
    ("m= port count", _edit("audio 4000", "audio 4000/x"),
     "SDP line 6: m= port count in '4000/x' is not a number"),
    ("RTP format name", _edit("RTP/AVP 0", "RTP/AVP 0 PCMU"),
     "SDP line 6: m=audio format 'PCMU' is not an RTP payload type 0-127"),
    ("RTP format 128", _edit("RTP/AVP 0", "RTP/AVP 128"),
     "SDP line 6: m=audio format '128' is not an RTP payload type 0-127"),
    ("no c= anywhere", _edit("c=IN IP4 192.0.2.1\r\n", ""),
     "SDP line 5: m=audio has no c= line and there is no session-level c="),
    ("a= without name", _edit("RTP/AVP 0\r\n", "RTP/AVP 0\r\na=:x\r\n"),
     "SDP line 7: attribute without a name: 'a=:x'"),
    ("v= in media", (BASE + "v=0\r\n").encode(), "SDP line 7: v= inside a media section"),
    ("not UTF-8", b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=caf\xe9\r\n",
     "SDP line 3: not UTF-8 text (byte 0xe9 at offset 34)"),
    ("long line shortened",
     _edit("s=-", "s " + "x" * 80),
     "SDP line 3: expected '<letter>=<value>', got '" + "s " + "x" * 55 + "...'"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("body", "message"), [c[1:] for c in PARSE_ERRORS], ids=[c[0] for c in PARSE_ERRORS]
)
def test_parse_errors_name_the_line_and_the_fault(body: bytes, message: str) -> None:
    with pytest.raises(SdpParseError) as info:
        parse(body)
    assert str(info.value) == message
    match = re.match(r"SDP line (\d+): (.*)", message)
    assert info.value.line == (int(match[1]) if match else None)
    assert info.value.reason == (match[2] if match else message.removeprefix("SDP: "))


def test_base_of_the_error_table_is_valid() -> None:
    assert parse(BASE.encode()).media[0].formats == ["0"]


def test_refused_stream_needs_no_connection() -> None:
    sdp = parse(_edit("c=IN IP4 192.0.2.1\r\n", "").replace(b"audio 4000", b"audio 0"))
    assert sdp.media[0].port == 0


def test_malformed_attributes_are_ignored_by_accessors() -> None:
    sdp = parse(SIPP_OFFER + b"a=ptime:soon\r\na=rtpmap:x PCMU/8000\r\na=ssrc:none\r\n")
    m = sdp.media[0]
    assert m.ptime is None and m.ssrc is None
    assert m.rtpmap() == {8: RtpMap("PCMA", 8000), 101: RtpMap("telephone-event", 8000)}


# --- negotiate (we answer) ----------------------------------------------------------


def test_answer_to_sipp_uac_pcap() -> None:
    media, answer = answer_to(SIPP_OFFER)
    assert answer == (
        b"v=0\r\n"
        b"o=callcore 7 1 IN IP4 192.0.2.50\r\n"
        b"s=callcore\r\n"
        b"c=IN IP4 192.0.2.50\r\n"
        b"t=0 0\r\n"
        b"m=audio 30000 RTP/AVP 8 101\r\n"
        b"a=rtpmap:8 PCMA/8000\r\n"
        b"a=rtpmap:101 telephone-event/8000\r\n"
        b"a=fmtp:101 0-11,16\r\n"
        b"a=ptime:20\r\n"
        b"a=sendrecv\r\n"
    )
    assert (media.codec, media.payload_type, media.telephone_event_pt) == ("PCMA", 8, 101)
    assert (media.remote_address, media.remote_port) == ("127.0.0.1", 26200)
    assert (media.ptime, media.direction, media.remote_ssrc) == (20, "sendrecv", None)


def test_baresip_offer_the_offerers_order_wins() -> None:
    # baresip lists opus, G722, PCMU, PCMA, GSM: we support PCMU and PCMA and take
    # PCMU, the offerer's first choice among them, whatever order we list ours in.
    for ours in (("PCMU", "PCMA"), ("PCMA", "PCMU")):
        media, answer = answer_to(BARESIP_OFFER, codecs=ours)
        assert media.codec == "PCMU" and media.payload_type == 0
    assert b"m=audio 30000 RTP/AVP 0 101\r\n" in answer
    assert b"a=fmtp:101 0-15\r\n" in answer  # mirrored
    assert media.remote_ssrc == 1318017457
    only_alaw, answer = answer_to(BARESIP_OFFER, codecs=("pcma",))
    assert only_alaw.codec == "PCMA" and b"m=audio 30000 RTP/AVP 8 101\r\n" in answer


def test_baresip_hold_and_resume_reinvites() -> None:
    first, first_answer = answer_to(BARESIP_OFFER, version=1)
    held, held_answer = answer_to(BARESIP_HOLD, version=2)
    resumed, resumed_answer = answer_to(BARESIP_RESUME, version=3)
    assert first.direction == "sendrecv"
    assert held.direction == "recvonly" and b"a=recvonly\r\n" in held_answer
    assert resumed.direction == "sendrecv" and b"a=sendrecv\r\n" in resumed_answer
    # RFC 3264 §8: same o= line but for the version, which counts up by one.
    origins = [parse(a).origin for a in (first_answer, held_answer, resumed_answer)]
    assert [o.session_version for o in origins] == [1, 2, 3]
    assert len({(o.username, o.session_id, o.address) for o in origins}) == 1
    assert held.codec == "PCMA"  # baresip's hold offer lists PCMA only


@pytest.mark.parametrize(
    ("edit", "ours"),
    [
        ((b"a=sendonly", b"a=sendonly"), "recvonly"),
        ((b"a=sendonly", b"a=recvonly"), "sendonly"),
        ((b"a=sendonly", b"a=inactive"), "inactive"),
        ((b"a=sendonly\r\n", b""), "sendrecv"),  # no attribute: sendrecv
        ((b"c=IN IP4 127.0.0.1", b"c=IN IP4 0.0.0.0"), "inactive"),  # RFC 2543 hold
        ((b"a=tool:baresip 1.0.0\r\n", b"a=inactive\r\n"), "recvonly"),  # media overrides session
    ],
    ids=["sendonly", "recvonly", "inactive", "none", "c=0.0.0.0", "media-over-session"],
)
def test_direction_mirrors_the_offer(edit: tuple[bytes, bytes], ours: str) -> None:
    media, answer = answer_to(BARESIP_HOLD.replace(*edit))
    assert media.direction == ours
    assert f"a={ours}\r\n".encode() in answer


def test_session_level_direction_is_inherited() -> None:
    body = SIPP_OFFER.replace(b"t=0 0\r\n", b"t=0 0\r\na=sendonly\r\n")
    media, _ = answer_to(body)
    assert media.direction == "recvonly"


@pytest.mark.parametrize(
    ("ptime_lines", "expected"),
    [
        (b"a=ptime:30\r\n", 30),
        (b"a=ptime:20\r\n", 20),
        (b"a=ptime:10\r\n", 20),  # not one of ours
        (b"a=ptime:30.0\r\n", 30),
        (b"", 20),
    ],
)
def test_ptime(ptime_lines: bytes, expected: int) -> None:
    media, answer = answer_to(SIPP_OFFER + ptime_lines)
    assert media.ptime == expected
    assert f"a=ptime:{expected}\r\n".encode() in answer


def test_session_level_ptime_counts() -> None:
    media, _ = answer_to(SIPP_OFFER.replace(b"t=0 0\r\n", b"t=0 0\r\na=ptime:30\r\n"))
    assert media.ptime == 30


@pytest.mark.parametrize(
    ("offer_edit", "te_pt", "fmtp"),
    [
        ((b"101", b"96"), 96, b"a=fmtp:96 0-11,16"),
        ((b"a=fmtp:101 0-11,16\r\n", b""), 101, b"a=fmtp:101 0-16"),  # none: we say 0-16
        ((b"telephone-event/8000", b"telephone-event/16000"), None, None),
    ],
    ids=["pt96", "no-fmtp", "16kHz-only"],
)
def test_telephone_event_payload_type(
    offer_edit: tuple[bytes, bytes], te_pt: int | None, fmtp: bytes | None
) -> None:
    media, answer = answer_to(SIPP_OFFER.replace(*offer_edit))
    assert media.telephone_event_pt == te_pt
    if fmtp is None:
        assert b"telephone-event" not in answer and b"fmtp" not in answer
        assert b"m=audio 30000 RTP/AVP 8\r\n" in answer
    else:
        assert fmtp + b"\r\n" in answer


def test_telephone_event_at_8000_chosen_among_rates() -> None:
    body = SIPP_OFFER.replace(b"RTP/AVP 8 101", b"RTP/AVP 8 100 101").replace(
        b"a=rtpmap:101", b"a=rtpmap:100 telephone-event/48000\r\na=rtpmap:101"
    )
    media, _ = answer_to(body)
    assert media.telephone_event_pt == 101


def test_dynamic_payload_type_for_pcmu() -> None:
    body = SIPP_OFFER.replace(b"RTP/AVP 8 101", b"RTP/AVP 110 101").replace(
        b"a=rtpmap:8 PCMA/8000", b"a=rtpmap:110 PCMU/8000"
    )
    media, answer = answer_to(body)
    assert (media.codec, media.payload_type) == ("PCMU", 110)
    assert b"a=rtpmap:110 PCMU/8000\r\n" in answer


def test_sdp01_audio_accepted_video_refused() -> None:
    media, answer = answer_to(torture_sdp("rfc4475/sdp01.dat"))
    assert (media.codec, media.remote_address, media.remote_port) == ("PCMU", "192.0.2.5", 49217)
    assert answer.endswith(
        b"m=audio 30000 RTP/AVP 0\r\n"
        b"a=rtpmap:0 PCMU/8000\r\n"
        b"a=ptime:20\r\n"
        b"a=sendrecv\r\n"
        b"m=video 0 RTP/AVP 31\r\n"
    )


def test_mult_ip_in_sdp_answer_keeps_the_lines() -> None:
    media, answer = answer_to(torture_sdp("rfc5118/mult-ip-in-sdp"))
    assert (media.remote_address, media.remote_port) == ("192.0.2.1", 22334)
    assert [(m.media, m.port) for m in parse(answer).media] == [("audio", 30000), ("video", 0)]


def test_second_audio_stream_and_other_media_refused_in_place() -> None:
    body = BARESIP_OFFER.replace(
        b"m=audio 26026", b"m=video 26030 RTP/AVP 100\r\na=rtpmap:100 VP8/90000\r\nm=audio 26026"
    ) + (b"m=audio 26040 RTP/AVP 0\r\nm=application 26050 UDP/BFCP *\r\n")
    sdp = parse(body)
    media, answer = answer_to(body)
    lines = parse(answer).media
    assert [(m.media, m.port, m.formats) for m in lines] == [
        ("video", 0, ["100"]),
        ("audio", 30000, ["0", "101"]),
        ("audio", 0, ["0"]),
        ("application", 0, ["*"]),
    ]
    assert len(lines) == len(sdp.media)
    assert media.remote_port == 26026


def test_ipv6_local_address() -> None:
    _, answer = answer_to(SIPP_OFFER, local_address="2001:db8::50")
    assert answer.startswith(
        b"v=0\r\no=callcore 7 1 IN IP6 2001:db8::50\r\ns=callcore\r\nc=IN IP6 2001:db8::50\r\n"
    )


NO_CODEC: list[tuple[str, bytes, str]] = [
    ("ipv6-in-sdp", torture_sdp("rfc5118/ipv6-in-sdp"),
     "no usable audio stream: stream 1: m=audio offers G726-32/8000, we accept PCMU, PCMA; "
     "stream 2: m=video is not audio"),
    ("ipv4-mapped-ipv6", torture_sdp("rfc5118/ipv4-mapped-ipv6"),
     "no usable audio stream: stream 1: m=audio offers G726-32/8000, we accept PCMU, PCMA; "
     "stream 2: m=video is not audio"),
    ("G.729 only", SIPP_OFFER.replace(b"RTP/AVP 8 101", b"RTP/AVP 18 101"),
     "no usable audio stream: stream 1: m=audio offers G729/8000, telephone-event/8000, "
     "we accept PCMU, PCMA"),
    ("PCMU at 16 kHz", SIPP_OFFER.replace(b"a=rtpmap:8 PCMA/8000", b"a=rtpmap:8 PCMA/16000"),
     "no usable audio stream: stream 1: m=audio offers PCMA/16000, telephone-event/8000, "
     "we accept PCMU, PCMA"),
    ("SRTP", SIPP_OFFER.replace(b"RTP/AVP", b"RTP/SAVP"),
     "no usable audio stream: stream 1: m=audio proto RTP/SAVP is not RTP/AVP"),
    ("refused audio", SIPP_OFFER.replace(b"audio 26200", b"audio 0"),
     "no usable audio stream: stream 1: m=audio has port 0 (refused stream)"),
    ("no m= line", SIPP_OFFER.split(b"m=")[0], "no usable audio stream: the offer has no m= line"),
    ("only PCMU accepted", BARESIP_HOLD,
     "no usable audio stream: stream 1: m=audio offers PCMA/8000, telephone-event/8000, "
     "we accept PCMU"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("body", "message"), [c[1:] for c in NO_CODEC], ids=[c[0] for c in NO_CODEC]
)
def test_no_common_codec_says_why(body: bytes, message: str) -> None:
    codecs = ("PCMU",) if body is BARESIP_HOLD else ("PCMU", "PCMA")
    with pytest.raises(NoCommonCodec) as info:
        answer_to(body, codecs=codecs)
    assert str(info.value) == message


def test_negotiate_refuses_codecs_it_cannot_do() -> None:
    with pytest.raises(ValueError) as info:
        answer_to(SIPP_OFFER, codecs=("G729",))
    assert str(info.value) == "negotiate: unsupported codec 'G729': supported are PCMU, PCMA"


# --- build_offer and parse_answer (we offer) ---------------------------------------


def test_build_offer_is_what_the_peers_were_sent() -> None:
    def ours(**kwargs: Any) -> bytes:
        return bytes(
            build_offer(local_address="127.0.0.1", local_port=27100, session_id=42, **kwargs)
        )

    assert ours(session_version=1) == OUR_OFFER
    alt = ours(codecs=("PCMA", "PCMU"), telephone_event_pt=96, ptime=30, session_version=1)
    assert alt == OUR_OFFER_ALT
    hold = ours(direction="sendonly", session_version=2)  # our re-offer: version + 1
    assert hold == OUR_OFFER.replace(b"42 1 ", b"42 2 ").replace(b"sendrecv", b"sendonly")
    no_te = ours(telephone_event_pt=None, codecs=("pcmu",), session_version=1)
    assert b"m=audio 27100 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=ptime:20\r\n" in no_te


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"codecs": ("G722",)}, "build_offer: unsupported codec 'G722': supported are PCMU, PCMA"),
        ({"codecs": ()}, "build_offer: no codec to offer"),
        ({"direction": "hold"}, "build_offer: direction 'hold' is not one of ('sendrecv', "
         "'sendonly', 'recvonly', 'inactive')"),
        ({"telephone_event_pt": 8}, "build_offer: telephone-event payload type 8 is not in 96-127"),
        ({"ptime": 0}, "build_offer: ptime 0 ms is not in 10-200"),
    ],
)  # fmt: skip
def test_build_offer_errors(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as info:
        build_offer(
            local_address="127.0.0.1", local_port=1, session_id=1, session_version=1, **kwargs
        )
    assert str(info.value) == message


def test_our_offer_answered_by_our_negotiate() -> None:
    offer = build_offer(local_address="192.0.2.9", local_port=5000, session_id=1, session_version=1)
    media, _ = answer_to(bytes(offer))
    assert (media.codec, media.telephone_event_pt, media.remote_port) == ("PCMU", 101, 5000)
    back = parse_answer(offer, parse(bytes(media.answer)))
    assert (back.codec, back.payload_type, back.telephone_event_pt) == ("PCMU", 0, 101)
    assert (back.remote_address, back.remote_port, back.direction) == (
        "192.0.2.50",
        30000,
        "sendrecv",
    )


def test_parse_answer_baresip() -> None:
    media = parse_answer(parse(OUR_OFFER), parse(BARESIP_ANSWER))
    assert (media.codec, media.payload_type, media.telephone_event_pt) == ("PCMU", 0, 101)
    assert (media.remote_address, media.remote_port) == ("127.0.0.1", 26378)
    assert (media.ptime, media.direction, media.remote_ssrc) == (20, "sendrecv", 796560531)
    assert media.answer == parse(BARESIP_ANSWER)


def test_parse_answer_baresip_alt_keeps_pt96_and_ptime_30() -> None:
    media = parse_answer(parse(OUR_OFFER_ALT), parse(BARESIP_ANSWER_ALT))
    assert (media.codec, media.payload_type, media.telephone_event_pt) == ("PCMA", 8, 96)
    assert (media.ptime, media.remote_port) == (30, 26332)


def test_parse_answer_sipp_uas() -> None:
    media = parse_answer(parse(OUR_OFFER), parse(SIPP_UAS_ANSWER))
    assert (media.codec, media.payload_type, media.telephone_event_pt) == ("PCMU", 0, None)
    assert (media.remote_address, media.remote_port, media.ptime) == ("127.0.0.1", 26500, 20)


def test_parse_answer_sipp_uas_answering_a_codec_we_did_not_offer() -> None:
    # sipp -sn uas always answers PCMU: to an A-law-only offer that is no answer.
    offer = build_offer(
        local_address="127.0.0.1",
        local_port=27100,
        codecs=("PCMA",),
        session_id=1,
        session_version=1,
    )
    with pytest.raises(NoCommonCodec) as info:
        parse_answer(offer, parse(SIPP_UAS_ANSWER))
    assert str(info.value) == (
        "the answer accepted no audio: stream 1: answer has PCMU/8000, we offered PCMA"
    )


@pytest.mark.parametrize(
    ("ours", "theirs", "expected"),
    [
        ("sendonly", "recvonly", "sendonly"),  # we hold, they accept
        ("sendonly", "sendrecv", "sendonly"),  # a sloppy answer cannot widen our offer
        ("sendrecv", "recvonly", "sendonly"),
        ("sendrecv", "sendonly", "recvonly"),
        ("sendrecv", "inactive", "inactive"),
        ("inactive", "sendrecv", "inactive"),
        ("recvonly", "sendonly", "recvonly"),
    ],
)
def test_parse_answer_direction(ours: str, theirs: str, expected: str) -> None:
    offer = parse(OUR_OFFER.replace(b"a=sendrecv", f"a={ours}".encode()))
    answer = parse(BARESIP_ANSWER.replace(b"a=sendrecv", f"a={theirs}".encode()))
    assert parse_answer(offer, answer).direction == expected


def test_parse_answer_null_address_is_inactive() -> None:
    answer = parse(BARESIP_ANSWER.replace(b"c=IN IP4 127.0.0.1", b"c=IN IP4 0.0.0.0"))
    assert parse_answer(parse(OUR_OFFER), answer).direction == "inactive"


def test_parse_answer_refused_and_mismatched() -> None:
    offer = parse(OUR_OFFER)
    with pytest.raises(NoCommonCodec) as refused:
        parse_answer(offer, parse(BARESIP_ANSWER.replace(b"m=audio 26378", b"m=audio 0")))
    assert str(refused.value) == "the answer accepted no audio: stream 1: refused (port 0)"
    two = parse(BARESIP_ANSWER + b"m=video 0 RTP/AVP 31\r\n")
    with pytest.raises(AnswerMismatch) as extra:
        parse_answer(offer, two)
    assert str(extra.value) == "answer has 2 m= lines, the offer has 1"
    video = parse(BARESIP_ANSWER.replace(b"m=audio", b"m=video"))
    with pytest.raises(AnswerMismatch) as kind:
        parse_answer(offer, video)
    assert str(kind.value) == "answer m= line 1 is video, the offer's is audio"


def test_parse_answer_telephone_event_we_did_not_offer_is_ignored() -> None:
    offer = build_offer(
        local_address="127.0.0.1", local_port=27100, telephone_event_pt=None, session_id=1,
        session_version=1,
    )  # fmt: skip
    assert parse_answer(offer, parse(BARESIP_ANSWER)).telephone_event_pt is None
