"""SDP parsing and offer/answer with offers real peers send."""

from __future__ import annotations

import pytest

from media.sdp import NoCommonCodec, SdpParseError, SessionDescription, build_offer, negotiate
from tests.conftest import TORTURE

# SIPp's built-in uac_pcap offer with its [keywords] filled in.
SIPP_UAC_PCAP = (
    b"v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n"
    b"t=0 0\r\nm=audio 6000 RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-11,16\r\n"
)
# What baresip 1.0 offers with its default codec modules.
BARESIP = (
    b"v=0\r\no=- 1184735215 2106380766 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n"
    b"t=0 0\r\nm=audio 10000 RTP/AVP 96 9 0 8 101\r\nb=AS:96\r\n"
    b"a=rtpmap:96 opus/48000/2\r\na=fmtp:96 stereo=1;sprop-stereo=1\r\n"
    b"a=rtpmap:9 G722/8000\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:20\r\na=sendrecv\r\n"
    b"a=rtcp-rsize\r\n"
)


def _answer(offer: bytes, **kw: object) -> object:
    return negotiate(
        SessionDescription.parse(offer),
        local_address="127.0.0.1",
        local_port=30000,
        session_id=7,
        session_version=1,
        **kw,  # type: ignore[arg-type]
    )


def test_sipp_offer_gets_pcma_and_telephone_event() -> None:
    media = _answer(SIPP_UAC_PCAP)
    assert (media.codec, media.payload_type, media.telephone_event_pt) == ("PCMA", 8, 101)
    assert (media.remote_address, media.remote_port, media.ptime) == ("127.0.0.1", 6000, 20)
    assert media.direction == "sendrecv"
    text = bytes(media.answer).decode()
    assert "m=audio 30000 RTP/AVP 8 101\r\n" in text
    assert "a=rtpmap:101 telephone-event/8000\r\n" in text
    assert "a=fmtp:101 0-11,16\r\n" in text  # mirrored from the offer
    assert "c=IN IP4 127.0.0.1\r\n" in text


def test_baresip_offer_follows_the_offerers_order() -> None:
    media = _answer(BARESIP)
    assert media.codec == "PCMU"  # first of its list that we support (opus, G722 are not)
    assert SessionDescription.parse(bytes(media.answer)).media[0].formats == ["0", "101"]


def test_ptime_30_is_kept_and_unsupported_ptime_falls_back() -> None:
    assert _answer(SIPP_UAC_PCAP + b"a=ptime:30\r\n").ptime == 30  # type: ignore[attr-defined]
    assert _answer(SIPP_UAC_PCAP + b"a=ptime:40\r\n").ptime == 20  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("attribute", "ours"),
    [(b"a=sendonly", "recvonly"), (b"a=recvonly", "sendonly"), (b"a=inactive", "inactive")],
)
def test_hold_directions_are_mirrored(attribute: bytes, ours: str) -> None:
    media = _answer(SIPP_UAC_PCAP + attribute + b"\r\n")
    assert media.direction == ours  # type: ignore[attr-defined]
    assert f"a={ours}\r\n".encode() in bytes(media.answer)  # type: ignore[attr-defined]


def test_old_style_hold_address() -> None:
    media = _answer(SIPP_UAC_PCAP.replace(b"c=IN IP4 127.0.0.1", b"c=IN IP4 0.0.0.0"))
    assert media.direction == "inactive"  # type: ignore[attr-defined]


def test_no_common_codec_is_488_material() -> None:
    offer = BARESIP.replace(b"RTP/AVP 96 9 0 8 101", b"RTP/AVP 96 9 101")
    with pytest.raises(NoCommonCodec, match="we accept PCMU, PCMA"):
        _answer(offer)


def test_video_and_second_audio_lines_are_refused_with_port_0() -> None:
    offer = SIPP_UAC_PCAP + b"m=video 6002 RTP/AVP 31\r\nm=audio 6004 RTP/AVP 0\r\n"
    answer = SessionDescription.parse(bytes(_answer(offer).answer))  # type: ignore[attr-defined]
    assert [(m.media, m.port) for m in answer.media] == [
        ("audio", 30000),
        ("video", 0),
        ("audio", 0),
    ]


def test_torture_sdp_bodies() -> None:
    body = (TORTURE / "rfc5118" / "ipv6-in-sdp").read_bytes().split(b"\r\n\r\n", 1)[1]
    sdp = SessionDescription.parse(body)
    assert sdp.connection is not None and sdp.connection.addrtype == "IP6"
    assert sdp.connection.address == "2001:db8::20"
    with pytest.raises(NoCommonCodec, match="G726-32"):  # audio is G.726 only: 488
        _answer(body)
    esc01 = (TORTURE / "rfc4475" / "esc01.dat").read_bytes().split(b"\r\n\r\n", 1)[1]
    assert _answer(esc01).codec == "PCMU"  # type: ignore[attr-defined]


def test_round_trip_and_errors() -> None:
    sdp = SessionDescription.parse(BARESIP)
    again = SessionDescription.parse(bytes(sdp))
    assert bytes(again) == bytes(sdp)
    assert again.media[0].rtpmap()[96][:2] == ("opus", 48000)
    with pytest.raises(SdpParseError, match="SDP line 3: expected '<letter>=<value>'"):
        SessionDescription.parse(b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nbroken\r\n")
    with pytest.raises(SdpParseError, match="no o= line"):
        SessionDescription.parse(b"v=0\r\ns=-\r\n")
    with pytest.raises(SdpParseError, match=r"port .99999. is not a number 0-65535"):
        SessionDescription.parse(b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nm=audio 99999 RTP/AVP 0\r\n")


def test_build_offer_is_answerable() -> None:
    offer = build_offer(local_address="127.0.0.1", local_port=4000, session_id=1, session_version=1)
    media = _answer(bytes(offer))
    assert (media.codec, media.telephone_event_pt) == ("PCMU", 101)  # type: ignore[attr-defined]
