"""RFC 4733 telephone-events: real SIPp captures, loss, duplication, reordering, sending."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from media.dtmf.rfc4733 import (
    DtmfEvent,
    EventPacket,
    TelephoneEventReceiver,
    TelephoneEventSender,
    event_code,
    event_payload,
)
from media.rtp.packet import RtpPacket
from tests.pcap import read_udp_payloads

SIPP = Path("/usr/share/sip-tester")
FILES = {
    **{str(d): SIPP / f"dtmf_2833_{d}.pcap" for d in range(10)},
    "*": SIPP / "dtmf_2833_star.pcap",
    "#": SIPP / "dtmf_2833_pound.pcap",
}


def capture(digit: str) -> list[RtpPacket]:
    return [RtpPacket.parse(d) for _, d in read_udp_payloads(FILES[digit])]


def digits(receiver: TelephoneEventReceiver, packets: list[RtpPacket]) -> list[str]:
    return [e.digit for p in packets for e in receiver.feed(p, 0.0)]


@pytest.mark.parametrize("digit", list(FILES))
def test_each_real_capture_gives_its_digit_exactly_once(digit: str) -> None:
    receiver = TelephoneEventReceiver()
    events = [e for p in capture(digit) for e in receiver.feed(p, 0.0)]
    assert events == [DtmfEvent(digit, 0, 10, "rfc4733")]  # first packet: duration 0, volume 10


def test_all_captures_back_to_back_give_the_sequence() -> None:
    receiver = TelephoneEventReceiver()
    packets = [p for d in FILES for p in capture(d)]
    assert digits(receiver, packets) == list(FILES)


@pytest.mark.parametrize("digit", ["1", "#"])
def test_lost_marker_packet_still_gives_the_digit_once(digit: str) -> None:
    packets = capture(digit)
    receiver = TelephoneEventReceiver()
    events = [e for p in packets[1:] for e in receiver.feed(p, 0.0)]
    assert [e.digit for e in events] == [digit]
    assert events[0].duration_ms == 40  # the second packet said 320 units (the capture's own)


def test_all_end_packets_lost_still_gives_the_digit_once() -> None:
    packets = capture("7")
    assert digits(TelephoneEventReceiver(), packets[:7]) == ["7"]


def test_only_end_packets_arrive() -> None:
    packets = capture("9")
    assert digits(TelephoneEventReceiver(), packets[7:]) == ["9"]


def test_every_packet_duplicated() -> None:
    packets = [p for p in capture("3") for _ in range(2)]
    assert digits(TelephoneEventReceiver(), packets) == ["3"]


def test_reordered_packets_of_several_digits() -> None:
    rng = random.Random(4733)
    receiver = TelephoneEventReceiver()
    out: list[str] = []
    for digit in ("1", "2", "*"):
        packets = capture(digit)
        rng.shuffle(packets)
        out += digits(receiver, packets)
    assert out == ["1", "2", "*"]


def test_late_packet_of_an_earlier_digit_is_not_reported_again() -> None:
    receiver = TelephoneEventReceiver()
    first, second = capture("4"), capture("5")
    assert digits(receiver, first[:5] + second[:3] + first[5:] + second[3:]) == ["4", "5"]


def test_same_digit_twice_is_two_presses() -> None:
    packets = capture("8")
    again = [
        RtpPacket(p.payload_type, p.sequence_number + 20, p.timestamp + 4000, p.ssrc, p.payload)
        for p in packets[1:]  # and the second press lost its marker packet
    ]
    assert digits(TelephoneEventReceiver(), packets + again) == ["8", "8"]


def test_non_digit_events_and_short_payloads_are_counted_not_reported() -> None:
    receiver = TelephoneEventReceiver()
    flash = RtpPacket(101, 1, 1000, 5, event_payload(16, False, 10, 160), marker=True)
    tone = RtpPacket(101, 2, 2000, 5, event_payload(32, False, 10, 160), marker=True)
    short = RtpPacket(101, 3, 3000, 5, b"\x05\x0a\x00")
    assert [receiver.feed(p, 0.0) for p in (flash, tone, short)] == [[], [], []]
    assert (receiver.ignored, receiver.malformed) == (2, 1)


def test_sender_packets_for_100_ms_at_20_ms() -> None:
    packets = TelephoneEventSender(ptime_ms=20, volume=10).packets("5", 100)
    assert packets == [
        EventPacket(True, 0, bytes.fromhex("050a00a0")),  # duration 160
        EventPacket(False, 0, bytes.fromhex("050a0140")),  # 320
        EventPacket(False, 0, bytes.fromhex("050a01e0")),  # 480
        EventPacket(False, 0, bytes.fromhex("050a0280")),  # 640
        EventPacket(False, 0, bytes.fromhex("058a0320")),  # end, 800
        EventPacket(False, 0, bytes.fromhex("058a0320")),
        EventPacket(False, 0, bytes.fromhex("058a0320")),
    ]


def test_sender_very_short_press_and_star() -> None:
    packets = TelephoneEventSender(ptime_ms=30, volume=7).packets("*", 10)
    end = bytes.fromhex("0a8700f0")  # event 10, end, volume 7, duration 240 (one ptime)
    assert packets == [
        EventPacket(True, 0, end),
        EventPacket(False, 0, end),
        EventPacket(False, 0, end),
    ]


def test_sender_to_receiver_round_trip_with_loss() -> None:
    sender = TelephoneEventSender()
    receiver = TelephoneEventReceiver()
    seq, start, out = 0, 80000, []
    for i, digit in enumerate("0123456789*#ABCD"):
        packets = sender.packets(digit, 120)
        for j, (marker, offset, payload) in enumerate(packets):
            seq += 1
            if (i + j) % 3 == 0:
                continue  # lose a third of the packets, markers included
            packet = RtpPacket(101, seq, start + offset, 77, payload, marker=marker)
            out += [e.digit for e in receiver.feed(packet, 0.0)]
        start += 2400
    assert "".join(out) == "0123456789*#ABCD"


def test_long_press_is_sent_in_segments_and_received_once() -> None:
    packets = TelephoneEventSender(ptime_ms=20).packets("#", 20_000)  # 160,000 units
    offsets = sorted({p.timestamp_offset for p in packets})
    assert offsets == [0, 65535, 131070]
    assert [p.marker for p in packets].count(True) == 1
    durations = [int.from_bytes(p.payload[2:], "big") for p in packets]
    assert max(durations) <= 0xFFFF
    assert packets[-1].payload == event_payload(11, True, 10, 160_000 - 131070)
    receiver = TelephoneEventReceiver()
    got = [
        e.digit
        for n, (marker, offset, payload) in enumerate(packets)
        for e in receiver.feed(RtpPacket(101, n, 5000 + offset, 9, payload, marker=marker), 0.0)
    ]
    assert got == ["#"]


def test_event_codes() -> None:
    assert [event_code(d) for d in "0123456789*#ABCDabcd"] == [*range(16), 12, 13, 14, 15]
    for bad in ("E", "", "12", "!"):
        with pytest.raises(ValueError) as err:
            event_code(bad)
        assert str(err.value) == f"not a DTMF digit: {bad!r} (expected one of 0-9, *, #, A-D)"


def test_sender_refuses_bad_settings() -> None:
    with pytest.raises(ValueError, match=r"^ptime must be positive, got 0 ms$"):
        TelephoneEventSender(ptime_ms=0)
    with pytest.raises(ValueError, match=r"^volume is 0-63 \(-dBm0\), got 64$"):
        TelephoneEventSender(volume=64)


@settings(max_examples=1000, deadline=None, derandomize=True)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 3), st.integers(0, 0xFFFFFFFF), st.booleans(), st.binary(max_size=8)
        ),
        max_size=30,
    )
)
def test_any_packets_give_digits_or_nothing(packets: list[tuple[int, int, bool, bytes]]) -> None:
    receiver = TelephoneEventReceiver()
    for n, (ssrc, timestamp, marker, payload) in enumerate(packets):
        events = receiver.feed(RtpPacket(101, n, timestamp, ssrc, payload, marker=marker), 0.0)
        assert len(events) <= 1
        assert all(e.digit in "0123456789*#ABCD" for e in events)
