"""RTCP: hand-assembled RFC 3550 packets, round trips, NTP conversion, malformed input."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from media.rtp.packet import is_rtcp
from media.rtp.rtcp import (
    NTP_EPOCH_OFFSET,
    Bye,
    ReceiverReport,
    ReportBlock,
    RtcpPacket,
    RtcpParseError,
    RtcpUnknown,
    SdesChunk,
    SenderReport,
    SourceDescription,
    ntp_from_unix,
    ntp_middle32,
    parse_compound,
    serialize_compound,
    unix_from_ntp,
)

# An SR with one report block, assembled field by field from RFC 3550 §6.4.1.
SR_BYTES = bytes.fromhex(
    "81c8000c"  # V=2 P=0 RC=1, PT=200, length 12 words
    "11111111"  # sender SSRC
    "e8f0a1b2"
    "80000000"  # NTP: seconds, fraction 0.5
    "00001f40"  # RTP timestamp 8000
    "00000064"  # packet count 100
    "00003e80"  # octet count 16000
    "22222222"  # report block: SSRC
    "19"
    "fffffe"  # fraction lost 25/256, cumulative lost -2
    "0001fffe"  # extended highest seq: 1 cycle, 65534
    "00000020"  # jitter 32
    "a1b28000"  # LSR
    "00018000"  # DLSR 1.5 s
)
SDES_BYTES = bytes.fromhex("81ca0004111111110108") + b"ivr@host" + bytes.fromhex("0000")
BYE_BYTES = bytes.fromhex("81cb00031111111106") + b"hangup" + bytes.fromhex("00")
RR_BYTES = bytes.fromhex("80c9000133333333")


def test_sender_report_fields() -> None:
    (sr,) = parse_compound(SR_BYTES)
    assert isinstance(sr, SenderReport)
    assert (sr.ssrc, sr.rtp_timestamp, sr.packet_count, sr.octet_count) == (
        0x11111111,
        8000,
        100,
        16000,
    )
    assert sr.ntp_timestamp == 0xE8F0A1B2_80000000
    assert sr.reports == [ReportBlock(0x22222222, 25, -2, 0x1FFFE, 32, 0xA1B28000, 0x18000)]
    assert bytes(sr) == SR_BYTES
    assert SenderReport.parse(SR_BYTES) == sr


def test_compound_round_trip_and_demux() -> None:
    compound = SR_BYTES + SDES_BYTES + BYE_BYTES
    packets = parse_compound(compound)
    _, sdes, bye = packets
    assert isinstance(sdes, SourceDescription)
    assert sdes.chunks == [SdesChunk(0x11111111, [(1, b"ivr@host")])]
    assert sdes.chunks[0].cname == "ivr@host"
    assert isinstance(bye, Bye) and (bye.ssrcs, bye.reason) == ([0x11111111], b"hangup")
    assert serialize_compound(packets) == compound
    assert is_rtcp(compound)


def test_receiver_report_without_blocks() -> None:
    (rr,) = parse_compound(RR_BYTES)
    assert rr == ReceiverReport(0x33333333, [])
    assert bytes(rr) == RR_BYTES


def test_built_packets_parse_back() -> None:
    block = ReportBlock(7, 255, 0x7FFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 1, 2)
    packets: list[RtcpPacket] = [
        ReceiverReport(5, [block, ReportBlock(8, 0, -0x800000, 0, 0)]),
        SourceDescription(
            [
                SdesChunk(5, [(1, "caf\u00e9@h\u00f4te".encode()), (6, b"callcore")]),
                SdesChunk(6, []),
            ]
        ),
        Bye([5, 6]),
    ]
    data = serialize_compound(packets)
    assert len(data) % 4 == 0
    assert parse_compound(data) == packets
    assert SourceDescription.with_cname(1, "x" * 300).chunks[0].items[0][1] == b"x" * 255


def test_sdes_chunk_padding_for_every_length() -> None:
    for n in range(0, 12):
        packet = SourceDescription.with_cname(9, "a" * n)
        data = bytes(packet)
        assert len(data) % 4 == 0
        assert parse_compound(data) == [packet]


def test_unknown_packet_types_are_kept_verbatim() -> None:
    app = bytes.fromhex("80cc000211111111") + b"NAME"
    xr = bytes.fromhex("80cf000144444444")
    packets = parse_compound(RR_BYTES + app + xr)
    assert packets[1] == RtcpUnknown(204, 0, bytes.fromhex("11111111") + b"NAME")
    assert packets[2] == RtcpUnknown(207, 0, bytes.fromhex("44444444"))
    assert serialize_compound(packets) == RR_BYTES + app + xr


def test_padding_on_the_last_packet() -> None:
    padded = bytes.fromhex("a0c900023333333300000004")  # RR + 4 bytes padding
    assert parse_compound(RR_BYTES + padded)[1] == ReceiverReport(0x33333333, [])


def test_ntp_conversion() -> None:
    assert ntp_from_unix(0.0) == NTP_EPOCH_OFFSET << 32
    assert ntp_from_unix(1.5) == ((NTP_EPOCH_OFFSET + 1) << 32) | 0x80000000
    # 2024-01-01T00:00:00Z is 3913056000 s after 1900 (1704067200 + 2208988800)
    assert ntp_from_unix(1_704_067_200.25) >> 32 == 3_913_056_000
    assert ntp_from_unix(1_704_067_200.25) & 0xFFFFFFFF == 0x40000000
    assert unix_from_ntp(ntp_from_unix(1_704_067_200.123456)) == pytest.approx(
        1_704_067_200.123456, abs=1e-9
    )
    assert ntp_middle32(0x0123456789ABCDEF) == 0x456789AB


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "RTCP datagram too short: 0 bytes, need at least 4"),
        (b"\x81\xc8\x00", "RTCP datagram too short: 3 bytes, need at least 4"),
        (bytes.fromhex("41c9000133333333"), "RTCP version 1 at byte 0, expected 2"),
        (RR_BYTES + bytes.fromhex("01"), "RTCP header at byte 8 is truncated: 1 bytes left"),
        (
            RR_BYTES + bytes.fromhex("80c9000333333333"),
            "RTCP packet type 201 at byte 8: length 3 words needs 16 bytes, 8 left",
        ),
        (
            bytes.fromhex("a0c9000133333304") + RR_BYTES,
            "RTCP packet type 201 at byte 0: padding bit set on a packet that is not the last",
        ),
        (
            bytes.fromhex("a0c9000133333305"),
            "RTCP packet type 201 at byte 0: padding length 5 is invalid for a 4-byte body",
        ),
        (
            bytes.fromhex("a0c9000133333300"),
            "RTCP packet type 201 at byte 0: padding length 0 is invalid for a 4-byte body",
        ),
        (
            bytes.fromhex("81c9000133333333"),
            "RTCP RR: 1 report blocks need 32 bytes, packet has 8 (packet 0 at byte 0)",
        ),
        (
            RR_BYTES + bytes.fromhex("80c8000111111111"),
            "RTCP SR: header and sender info need 28 bytes, packet has 8 (packet 1 at byte 8)",
        ),
        (
            bytes.fromhex("80c90000"),
            "RTCP RR: header needs 8 bytes, packet has 4 (packet 0 at byte 0)",
        ),
        (
            bytes.fromhex("82ca00021111111100000000"),
            "RTCP SDES: chunk 1 at offset 12 is truncated (packet 0 at byte 0)",
        ),
        (
            bytes.fromhex("81ca0002111111110109aaaa"),
            "RTCP SDES: chunk 0, item type 1 at offset 8 is truncated (packet 0 at byte 0)",
        ),
        (
            bytes.fromhex("81ca0002111111110102aaaa"),
            "RTCP SDES: chunk 0 has no end of items before offset 12 (packet 0 at byte 0)",
        ),
        (
            bytes.fromhex("82cb000111111111"),
            "RTCP BYE: 2 SSRCs need 12 bytes, packet has 8 (packet 0 at byte 0)",
        ),
        (
            bytes.fromhex("81cb00021111111109616263"),
            "RTCP BYE: reason of 9 bytes at offset 8 exceeds the packet (packet 0 at byte 0)",
        ),
    ],
)
def test_malformed_input_names_what_and_where(data: bytes, message: str) -> None:
    with pytest.raises(RtcpParseError) as err:
        parse_compound(data)
    assert str(err.value) == message


def test_single_packet_parsers_check_their_type_and_length() -> None:
    with pytest.raises(RtcpParseError, match=r"^RTCP packet type 201 is not SR \(200\)$"):
        SenderReport.parse(RR_BYTES)
    with pytest.raises(
        RtcpParseError, match=r"^RTCP RR: length field says 8 bytes, packet has 12$"
    ):
        ReceiverReport.parse(RR_BYTES + b"\x00" * 4)
    with pytest.raises(RtcpParseError, match=r"^RTCP BYE too short: 2 bytes, need at least 4$"):
        Bye.parse(b"\x81\xcb")


def outcome(data: bytes) -> str:
    """ "ok" or "error"; any exception other than RtcpParseError fails the test."""
    try:
        parse_compound(data)
    except RtcpParseError:
        return "error"
    return "ok"


def test_every_truncation_and_corruption_raises_only_rtcp_parse_error() -> None:
    compound = SR_BYTES + SDES_BYTES + BYE_BYTES
    truncated = {outcome(compound[:n]) for n in range(len(compound))}
    assert truncated == {"ok", "error"}  # ok exactly at packet boundaries
    corrupted = {
        outcome(compound[:i] + bytes((value,)) + compound[i + 1 :])
        for i in range(len(compound))
        for value in (0x00, 0xFF, 0x1F, 0xA0)
    }
    assert corrupted == {"ok", "error"}


def test_serialising_impossible_values_is_refused() -> None:
    with pytest.raises(ValueError, match=r"^RTCP RR can carry at most 31 entries, got 32$"):
        bytes(ReceiverReport(1, [ReportBlock(i, 0, 0, 0, 0) for i in range(32)]))
    with pytest.raises(ValueError, match=r"^BYE reason of 256 bytes: at most 255 fit$"):
        bytes(Bye([1], b"x" * 256))
    with pytest.raises(ValueError, match=r"^SDES item type 0 with 1 bytes cannot be sent$"):
        bytes(SourceDescription([SdesChunk(1, [(0, b"x")])]))


@settings(max_examples=1000, deadline=None, derandomize=True)
@given(st.binary(min_size=0, max_size=120))
def test_arbitrary_bytes_parse_or_raise_rtcp_parse_error(data: bytes) -> None:
    with contextlib.suppress(RtcpParseError):
        parse_compound(data)


def _framed(parts: list[tuple[int, int, bytes]]) -> bytes:
    """Valid RTCP framing (version, count, length) around arbitrary bodies."""
    out = b""
    for packet_type, count, body in parts:
        body = body[: len(body) // 4 * 4]
        out += bytes((0x80 | count, packet_type)) + (len(body) // 4).to_bytes(2, "big") + body
    return out


@settings(max_examples=1000, deadline=None, derandomize=True)
@given(
    st.lists(
        st.tuples(st.integers(200, 204), st.integers(0, 31), st.binary(max_size=64)),
        min_size=1,
        max_size=3,
    )
)
def test_valid_framing_with_any_body_parses_or_raises_rtcp_parse_error(
    parts: list[tuple[int, int, bytes]],
) -> None:
    data = _framed(parts)
    try:
        packets = parse_compound(data)
    except RtcpParseError:
        return
    assert len(packets) == len(parts)
    if all(packet_type == 204 for packet_type, _, _ in parts):  # APP: kept verbatim
        assert serialize_compound(packets) == data
