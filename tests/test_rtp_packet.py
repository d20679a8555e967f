"""RTP packets: real captures, round trips, every refusal with its exact text."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from media.rtp.packet import RtpPacket, RtpParseError, is_rtcp, rtp_header
from tests.pcap import PcapError, read_udp_datagrams, read_udp_payloads

SIPP = Path("/usr/share/sip-tester")
DTMF_FILES = sorted(SIPP.glob("dtmf_2833_*.pcap"))


def test_real_pcma_stream_fields_and_round_trip() -> None:
    datagrams = [d for _, d in read_udp_payloads(SIPP / "g711a.pcap")]
    assert len(datagrams) == 236
    packets = [RtpPacket.parse(d) for d in datagrams]
    first = packets[0]
    # values as tshark shows them: "PT=ITU-T G.711 PCMA, SSRC=0xDEE0EE8F, Seq=59133, Time=240, Mark"
    assert (first.payload_type, first.ssrc, first.sequence_number, first.timestamp) == (
        8,
        0xDEE0EE8F,
        59133,
        240,
    )
    assert first.marker is True
    assert (first.csrc, first.extension_profile, first.padding) == ([], None, 0)
    assert len(first.payload) == 240
    assert not any(p.marker for p in packets[1:])
    for i, p in enumerate(packets):
        assert p.sequence_number == (59133 + i) & 0xFFFF
        assert p.timestamp == 240 * (i + 1)
    for d, p in zip(datagrams, packets, strict=True):
        assert bytes(p) == d


@pytest.mark.parametrize("path", DTMF_FILES, ids=lambda p: p.stem)
def test_real_telephone_event_packets(path: Path) -> None:
    datagrams = [d for _, d in read_udp_payloads(path)]
    packets = [RtpPacket.parse(d) for d in datagrams]
    assert len(packets) == 10
    assert {(p.payload_type, p.ssrc) for p in packets} == {(101, 0x0E05384E)}
    assert [p.marker for p in packets] == [True] + [False] * 9
    assert len({p.timestamp for p in packets}) == 1  # one event, one timestamp
    # 8 packets in sequence, then the end packet sent twice more with the same number
    seqs = [p.sequence_number for p in packets]
    assert seqs == [*range(seqs[0], seqs[0] + 8), seqs[0] + 7, seqs[0] + 7]
    assert [p.payload[1] >> 7 for p in packets] == [0] * 7 + [1] * 3  # E bit
    assert all(len(p.payload) == 4 for p in packets)
    for d, p in zip(datagrams, packets, strict=True):
        assert bytes(p) == d
        assert not is_rtcp(d)


def test_dtmf_1_first_packet_exact_fields() -> None:
    # tshark: seq 7984, timestamp 13280, marker, SSRC 0x0e05384e, PT 101, event 1, volume 10
    data = read_udp_payloads(SIPP / "dtmf_2833_1.pcap")[0][1]
    assert data.hex() == "80e51f30000033e00e05384e010a0000"
    p = RtpPacket.parse(data)
    assert (p.payload_type, p.marker, p.sequence_number, p.timestamp, p.ssrc) == (
        101,
        True,
        7984,
        13280,
        0x0E05384E,
    )
    assert p.payload == bytes.fromhex("010a0000")


def test_csrc_extension_and_padding_round_trip() -> None:
    # built by hand: V=2 P=1 X=1 CC=2, M=1 PT=96, then CSRCs, a 2-word extension, payload, padding
    data = (
        bytes.fromhex("b2e000010000000200000003")
        + bytes.fromhex("0000000a0000000b")
        + bytes.fromhex("bede00021122334455667788")
        + b"payload!"
        + bytes.fromhex("000003")
    )
    p = RtpPacket.parse(data)
    assert (p.payload_type, p.marker, p.sequence_number, p.timestamp, p.ssrc) == (96, True, 1, 2, 3)
    assert p.csrc == [10, 11]
    assert p.extension_profile == 0xBEDE
    assert p.extension == bytes.fromhex("1122334455667788")
    assert p.payload == b"payload!"
    assert p.padding == 3
    assert bytes(p) == data


def test_padding_only_packet() -> None:
    data = bytes.fromhex("a00000050000000000000001") + b"ab" + bytes.fromhex("0002")
    p = RtpPacket.parse(data)
    assert (p.payload, p.padding) == (b"ab", 2)
    assert bytes(p) == data


def test_rtp_header_matches_serialised_packet() -> None:
    header = rtp_header(0, True, 65535, 0xFFFFFFFF, 0x12345678)
    assert header.hex() == "8080ffffffffffff12345678"
    p = RtpPacket(0, 65535, 0xFFFFFFFF, 0x12345678, b"\xff" * 160, marker=True)
    assert bytes(p) == header + b"\xff" * 160
    assert rtp_header(8, False, 7, 160, 1).hex() == "80080007000000a000000001"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "RTP packet too short: 0 bytes, need at least 12"),
        (bytes(11), "RTP packet too short: 11 bytes, need at least 12"),
        (bytes.fromhex("40000001000000020000000300"), "RTP version 1, expected 2"),
        (bytes.fromhex("00000001000000020000000300"), "RTP version 0, expected 2"),
        (bytes.fromhex("c0000001000000020000000300"), "RTP version 3, expected 2"),
        (
            bytes.fromhex("83000001000000020000000300000004"),
            "RTP CSRC count 3 needs a 24-byte header, packet has 16 bytes",
        ),
        (
            bytes.fromhex("90000001000000020000000300"),
            "RTP header extension at byte 12 needs 4 bytes, packet has 13 bytes",
        ),
        (
            bytes.fromhex("91000001000000020000000300000009bede000211223344"),
            "RTP header extension of 2 words at byte 16 ends at byte 28, packet has 24 bytes",
        ),
        (
            bytes.fromhex("a00000010000000200000003"),
            "RTP padding length 3 is invalid: 0 bytes follow the 12-byte header",
        ),
        (
            bytes.fromhex("a0000001000000020000000300"),
            "RTP padding length 0 is invalid: 1 bytes follow the 12-byte header",
        ),
        (
            bytes.fromhex("a000000100000002000000030005"),
            "RTP padding length 5 is invalid: 2 bytes follow the 12-byte header",
        ),
        (
            bytes.fromhex("b00000010000000200000003000100007777777709"),
            "RTP padding length 9 is invalid: 5 bytes follow the 16-byte header",
        ),
    ],
)
def test_refusals_name_what_and_where(data: bytes, message: str) -> None:
    with pytest.raises(RtpParseError) as err:
        RtpPacket.parse(data)
    assert str(err.value) == message
    assert isinstance(err.value, ValueError)


def test_every_truncation_of_a_real_packet_parses_or_raises_rtp_parse_error() -> None:
    data = bytes.fromhex("b2e0000100000002000000030000000a0000000b") + bytes.fromhex(
        "bede0001112233447061796c000003"
    )
    outcomes = set()
    for n in range(len(data) + 1):
        try:
            RtpPacket.parse(data[:n])
            outcomes.add("ok")
        except RtpParseError:
            outcomes.add("error")
    assert outcomes == {"ok", "error"}


def test_serialising_impossible_fields_is_refused() -> None:
    with pytest.raises(
        ValueError, match=r"^RTP header extension must be a multiple of 4 bytes, got 3$"
    ):
        bytes(RtpPacket(0, 1, 2, 3, extension_profile=1, extension=b"abc"))
    with pytest.raises(ValueError, match=r"^RTP packet has 16 CSRCs, at most 15 fit$"):
        bytes(RtpPacket(0, 1, 2, 3, csrc=list(range(16))))
    with pytest.raises(ValueError, match=r"^RTP padding must be 1-255 bytes, got 256$"):
        bytes(RtpPacket(0, 1, 2, 3, padding=256))


@pytest.mark.parametrize(
    ("second_byte", "rtcp"),
    [
        (200, True),  # SR
        (201, True),  # RR
        (202, True),  # SDES
        (203, True),  # BYE
        (192, True),  # lower end of the RFC 5761 range
        (223, True),  # upper end
        (191, False),  # marker + payload type 63
        (224, False),  # marker + payload type 96 (dynamic)
        (0, False),  # PCMU
        (8, False),  # PCMA
        (101, False),  # telephone-event
        (0x80 | 101, False),  # telephone-event with marker
    ],
)
def test_is_rtcp_rfc5761_range(second_byte: int, rtcp: bool) -> None:
    assert is_rtcp(bytes([0x80, second_byte]) + bytes(10)) is rtcp


def test_is_rtcp_on_too_short_data() -> None:
    assert is_rtcp(b"") is False
    assert is_rtcp(b"\x80") is False


# --- the capture reader the tests above rely on (tests/pcap.py) -------------------


def test_pcap_reader_addresses_and_times_match_tshark() -> None:
    datagrams = read_udp_datagrams(SIPP / "g711a.pcap")
    # tshark: "10.1.3.143 -> 10.1.6.18", UDP 5000 -> 2006, last packet at +7.049628 s
    assert {(src, dst) for _, src, dst, _ in datagrams} == {
        (("10.1.3.143", 5000), ("10.1.6.18", 2006))
    }
    assert datagrams[-1][0] - datagrams[0][0] == pytest.approx(7.049628, abs=1e-6)


def test_pcap_reader_linux_cooked_capture(tmp_path: Path) -> None:
    # re-wrap the real Ethernet frames of g711a.pcap as LINKTYPE_LINUX_SLL (113) records
    raw = (SIPP / "g711a.pcap").read_bytes()
    out = bytearray(raw[:20] + struct.pack("<I", 113))
    pos = 24
    while pos < len(raw):
        sec, usec, caplen, _ = struct.unpack_from("<IIII", raw, pos)
        frame = raw[pos + 16 : pos + 16 + caplen]
        sll = struct.pack("!HHH8sH", 0, 1, 6, frame[6:12] + b"\x00\x00", 0x0800) + frame[14:]
        out += struct.pack("<IIII", sec, usec, len(sll), len(sll)) + sll
        pos += 16 + caplen
    path = tmp_path / "sll.pcap"
    path.write_bytes(bytes(out))
    assert read_udp_payloads(path) == read_udp_payloads(SIPP / "g711a.pcap")


def test_pcap_reader_refuses_what_it_cannot_read(tmp_path: Path) -> None:
    not_pcap = tmp_path / "x.pcapng"
    not_pcap.write_bytes(bytes.fromhex("0a0d0d0a") + bytes(40))
    with pytest.raises(PcapError) as err:
        read_udp_payloads(not_pcap)
    assert str(err.value) == f"{not_pcap}: not a classic pcap file (magic 0a0d0d0a)"
    cut = tmp_path / "cut.pcap"
    whole = (SIPP / "dtmf_2833_1.pcap").read_bytes()  # first record: 16 + 58 bytes at 24
    cut.write_bytes(whole[:60])
    with pytest.raises(PcapError) as err:
        read_udp_payloads(cut)
    assert str(err.value) == f"{cut}: record at byte 24 needs 58 bytes, file ends"
    cut.write_bytes(whole[:100])
    with pytest.raises(PcapError) as err:
        read_udp_payloads(cut)
    assert str(err.value) == f"{cut}: record header at byte 98 is truncated"


@settings(max_examples=1000, deadline=None, derandomize=True)
@given(st.binary(min_size=0, max_size=80))
def test_arbitrary_bytes_parse_or_raise_rtp_parse_error(data: bytes) -> None:
    try:
        packet = RtpPacket.parse(data)
    except RtpParseError:
        return
    if not data[0] & 0x20:  # padding content is normalised; everything else round-trips
        assert bytes(packet) == data
