"""Per-stream RTP state: send numbering, strict latching, RFC 3550 A.1/A.3/A.8, RTCP timing."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from media.rtp.packet import RtpPacket
from media.rtp.rtcp import (
    Bye,
    ReceiverReport,
    SenderReport,
    SourceDescription,
    ntp_from_unix,
    parse_compound,
)
from media.rtp.stream import (
    MAX_DROPOUT,
    MAX_SOURCES,
    RtcpScheduler,
    RtpReceiveState,
    RtpSendState,
)
from tests.pcap import read_udp_datagrams

SIPP = Path("/usr/share/sip-tester")
PEER = ("192.0.2.10", 40000)
OTHER = ("192.0.2.99", 40000)


def pkt(seq: int, ts: int | None = None, ssrc: int = 0x1234, pt: int = 0) -> RtpPacket:
    return RtpPacket(pt, seq & 0xFFFF, (160 * seq if ts is None else ts) & 0xFFFFFFFF, ssrc, b"")


def feed(state: RtpReceiveState, seqs: list[int], addr: tuple[str, int] = PEER) -> list[bool]:
    return [state.accept(pkt(s), addr, 0.02 * i) for i, s in enumerate(seqs)]


# --- sending ---------------------------------------------------------------


def test_send_state_starts_random_from_the_rng_and_advances_per_frame() -> None:
    reference = random.Random(7)
    ssrc, seq, ts = reference.getrandbits(32), reference.getrandbits(16), reference.getrandbits(32)
    state = RtpSendState(random.Random(7))
    assert (state.ssrc, state.seq, state.timestamp) == (ssrc, seq, ts)
    headers = [RtpPacket.parse(state.next_header(8, 160)) for _ in range(3)]
    assert [h.sequence_number for h in headers] == [seq, (seq + 1) & 0xFFFF, (seq + 2) & 0xFFFF]
    assert [h.timestamp for h in headers] == [ts, (ts + 160) & 0xFFFFFFFF, (ts + 320) & 0xFFFFFFFF]
    assert {(h.ssrc, h.payload_type) for h in headers} == {(ssrc, 8)}
    assert (state.packets, state.octets) == (3, 480)
    assert RtpSendState(random.Random(8)).ssrc != ssrc


def test_send_state_wraps_sequence_and_timestamp() -> None:
    state = RtpSendState(random.Random(1))
    state.seq, state.timestamp = 0xFFFF, 0xFFFFFF00
    first = RtpPacket.parse(state.next_header(0, 0x100))
    second = RtpPacket.parse(state.next_header(0, 0x100))
    assert (first.sequence_number, first.timestamp) == (0xFFFF, 0xFFFFFF00)
    assert (second.sequence_number, second.timestamp) == (0, 0)


def test_marker_on_first_packet_and_on_talkspurt_start() -> None:
    state = RtpSendState(random.Random(1))
    markers = [RtpPacket.parse(state.next_header(0, 160)).marker for _ in range(3)]
    state.start_talkspurt()
    markers += [RtpPacket.parse(state.next_header(0, 160)).marker for _ in range(2)]
    markers.append(RtpPacket.parse(state.next_header(0, 160, True)).marker)
    assert markers == [True, False, False, True, False, True]


def test_octets_counted_as_given_and_event_headers_keep_the_event_timestamp() -> None:
    state = RtpSendState(random.Random(3))
    state.next_header(0, 160)
    start = state.timestamp
    h1 = RtpPacket.parse(state.event_header(101, start, True, 160))
    h2 = RtpPacket.parse(state.event_header(101, start, False, 160))
    audio = RtpPacket.parse(state.next_header(0, 160, octets=80))
    assert (h1.timestamp, h2.timestamp, h1.marker, h2.marker) == (start, start, True, False)
    assert h2.sequence_number == (h1.sequence_number + 1) & 0xFFFF
    assert audio.sequence_number == (h2.sequence_number + 1) & 0xFFFF
    assert audio.timestamp == (start + 320) & 0xFFFFFFFF  # time went on during the event
    assert (state.packets, state.octets) == (4, 160 + 4 + 4 + 80)


def test_rtp_time_extrapolates_from_the_last_timed_packet() -> None:
    state = RtpSendState(random.Random(4))
    first = state.timestamp
    assert state.rtp_time(10.0) == first  # nothing sent with a time yet
    for i in range(5):
        state.next_header(0, 160, now=100.0 + 0.02 * i)
    # last packet (ts first + 640) went at 100.08; 0.5 s later is 4000 units on
    assert state.rtp_time(100.58) == (first + 640 + 4000) & 0xFFFFFFFF


# --- latching ------------------------------------------------------------


def test_first_address_latches_and_others_are_dropped_and_counted() -> None:
    state = RtpReceiveState()
    assert state.accept(pkt(1), PEER, 0.0) is False  # latched, but on probation
    assert state.source == PEER
    assert state.accept(pkt(2), OTHER, 0.01) is False
    assert state.accept(pkt(2), PEER, 0.02) is True
    assert state.accept(pkt(3), OTHER, 0.03) is False
    assert (state.dropped_wrong_source, state.accepted) == (2, 1)


def test_relatch_moves_to_the_next_address() -> None:
    state = RtpReceiveState()
    feed(state, [1, 2, 3])
    state.relatch()
    assert state.accept(pkt(4), OTHER, 1.0) is True  # same SSRC continues, new address latched
    assert state.source == OTHER
    assert state.accept(pkt(5), PEER, 1.02) is False
    assert state.dropped_wrong_source == 1


def test_the_address_of_the_sdp_takes_the_latch_from_a_stray_stream() -> None:
    # Another stream reached the port first (a reused port, a scanner): the
    # peer's packets from the address its SDP gave move the latch back.
    state = RtpReceiveState(signalled=PEER)
    assert feed(state, [500, 501, 502], OTHER) == [False, True, True]
    assert state.source == OTHER
    assert state.accept(pkt(1, ssrc=0x99), PEER, 1.0) is False  # latched; new SSRC on probation
    assert (state.source, state.switched) == (PEER, 1)
    assert state.accept(pkt(2, ssrc=0x99), PEER, 1.02) is True
    assert state.accept(pkt(503), OTHER, 1.03) is False  # the stray one is dropped from now on
    assert (state.dropped_wrong_source, state.switched) == (1, 1)


def test_behind_a_nat_the_first_source_keeps_the_latch() -> None:
    # The SDP names an address the packets never come from (NAT): latching as before.
    state = RtpReceiveState(signalled=("10.0.0.5", 4000))
    assert feed(state, [1, 2, 3]) == [False, True, True]
    assert state.accept(pkt(4), OTHER, 1.0) is False
    assert (state.source, state.switched, state.dropped_wrong_source) == (PEER, 0, 1)


# --- RFC 3550 A.1 ----------------------------------------------------------


def test_probation_needs_two_in_sequence() -> None:
    state = RtpReceiveState()
    # 10 alone, then 20 (out of sequence: probation restarts), 21 in sequence: valid
    assert feed(state, [10, 20, 21, 22]) == [False, False, True, True]
    stats = state.sources[0x1234]
    assert (stats.base_seq, stats.received, stats.expected, stats.lost) == (21, 2, 2, 0)
    assert state.dropped_invalid == 2


def test_sequence_wrap_counts_a_cycle() -> None:
    state = RtpReceiveState()
    assert all(feed(state, [65533, 65534, 65535, 0, 1])[1:])
    stats = state.sources[0x1234]
    assert stats.cycles == 65536
    assert stats.extended_max == 65536 + 1
    assert (stats.expected, stats.received, stats.lost) == (4, 4, 0)


def test_gaps_count_as_lost_and_duplicates_reduce_it() -> None:
    state = RtpReceiveState()
    feed(state, [100, 101, 102, 105, 106, 106, 104])  # 103 never arrives, 106 twice, 104 late
    stats = state.sources[0x1234]
    assert stats.expected == 106 - 101 + 1
    assert stats.received == 6  # 101 102 105 106 106 104
    assert stats.lost == 0  # a duplicate hides a loss, as A.3 says
    feed_more = [state.accept(pkt(s), PEER, 1.0) for s in (110,)]
    assert feed_more == [True]
    assert stats.lost == 3  # 107 108 109


def test_large_jump_is_dropped_until_the_sender_confirms_it() -> None:
    state = RtpReceiveState()
    feed(state, [1, 2, 3])
    jump = 3 + MAX_DROPOUT + 10
    assert state.accept(pkt(jump), PEER, 1.0) is False
    assert state.accept(pkt(4), PEER, 1.02) is True  # the old stream goes on: jump ignored
    assert state.accept(pkt(jump + 50), PEER, 1.04) is False
    assert state.accept(pkt(jump + 51), PEER, 1.06) is True  # two in a row: restart
    stats = state.sources[0x1234]
    assert (stats.base_seq, stats.received, stats.lost) == (jump + 51, 1, 0)


def test_small_jump_within_dropout_is_accepted_as_loss() -> None:
    state = RtpReceiveState()
    feed(state, [1, 2])
    assert state.accept(pkt(2 + MAX_DROPOUT - 1), PEER, 1.0) is True
    assert state.sources[0x1234].lost == MAX_DROPOUT - 2


def test_old_packet_beyond_misorder_is_dropped() -> None:
    state = RtpReceiveState()
    feed(state, list(range(1000, 1300)))
    assert state.accept(pkt(1299 - 99), PEER, 9.0) is True  # 99 back: reordered
    assert state.accept(pkt(1299 - 100), PEER, 9.1) is False  # MAX_MISORDER back: a jump


def test_each_ssrc_has_its_own_state_and_old_ones_are_forgotten() -> None:
    state = RtpReceiveState()
    for ssrc in range(1, MAX_SOURCES + 2):
        assert [state.accept(pkt(s, ssrc=ssrc), PEER, 0.0) for s in (5, 6)] == [False, True]
    assert list(state.sources) == list(range(2, MAX_SOURCES + 2))


# --- RFC 3550 A.8 jitter ---------------------------------------------------


def test_jitter_zero_for_perfect_timing_even_across_timestamp_wrap() -> None:
    state = RtpReceiveState()
    start = 0xFFFFFFFF - 160 * 10
    for i in range(40):
        state.accept(pkt(i, ts=start + 160 * i), PEER, 50.0 + 0.02 * i)
    assert state.sources[0x1234].jitter == pytest.approx(0.0, abs=1e-6)


def test_jitter_follows_the_a8_recursion() -> None:
    state = RtpReceiveState()
    n = 60
    for i in range(n):
        wobble = 0.002 if i % 2 else 0.0  # every other packet 2 ms late: |D| = 16 units
        state.accept(pkt(i, ts=160 * i), PEER, 0.02 * i + wobble)
    # valid from packet 1; D from packet 2 on: n - 2 steps of J += (16 - J) / 16
    expected = 16 * (1 - (15 / 16) ** (n - 2))
    assert state.sources[0x1234].jitter == pytest.approx(expected, rel=1e-9)


def test_repeated_timestamps_do_not_count_as_jitter() -> None:
    state = RtpReceiveState()
    for i in range(10):  # one telephone event: 10 packets, one timestamp, 20 ms apart
        state.accept(pkt(i, ts=8000, pt=101), PEER, 0.02 * i)
    assert state.sources[0x1234].jitter == 0.0


def test_real_capture_jitter_matches_tshark() -> None:
    # tshark -o rtp.heuristic_rtp:TRUE -q -z rtp,streams g711a.pcap:
    # 236 packets, lost 0, mean jitter 0.350 ms, max jitter 0.829 ms
    state = RtpReceiveState()
    jitter_ms = []
    for when, src, _, data in read_udp_datagrams(SIPP / "g711a.pcap"):
        packet = RtpPacket.parse(data)
        if state.accept(packet, src, when):
            jitter_ms.append(state.sources[packet.ssrc].jitter / 8)
    stats = state.sources[0xDEE0EE8F]
    assert (stats.received, stats.lost, state.dropped_invalid) == (235, 0, 1)
    assert max(jitter_ms) == pytest.approx(0.829, abs=0.001)
    assert sum(jitter_ms) / len(jitter_ms) == pytest.approx(0.350, abs=0.001)


# --- RFC 3550 A.3 report blocks --------------------------------------------


def test_report_blocks_interval_fraction_and_cumulative_loss() -> None:
    state = RtpReceiveState()
    feed(state, list(range(0, 101)))  # 0 on probation; 1..100 valid, none lost
    (block,) = state.report_blocks(2.0)
    assert (block.ssrc, block.fraction_lost, block.packets_lost, block.highest_seq) == (
        0x1234,
        0,
        0,
        100,
    )
    assert state.report_blocks(3.0) == []  # nothing heard since
    # next interval: 101..200 with 105, 115 ... 195 missing (10 of 100 lost)
    for s in range(101, 201):
        if s % 10 != 5:
            state.accept(pkt(s), PEER, 4.0)
    (block,) = state.report_blocks(5.0)
    assert block.fraction_lost == (10 << 8) // 100  # 25
    assert block.packets_lost == 10
    assert block.highest_seq == 200


def test_lsr_and_dlsr_after_a_sender_report() -> None:
    state = RtpReceiveState()
    feed(state, [1, 2, 3])
    ntp = ntp_from_unix(1_700_000_000.25)
    state.on_sender_report(SenderReport(0x1234, ntp, 0, 0, 0), now=10.0)
    state.on_sender_report(SenderReport(0x9999, ntp, 0, 0, 0), now=10.0)  # unknown: ignored
    (block,) = state.report_blocks(11.5)
    assert block.lsr == (ntp >> 16) & 0xFFFFFFFF
    assert block.dlsr == int(1.5 * 65536)


# --- RTCP scheduling -------------------------------------------------------


def test_first_report_after_half_an_interval_then_randomised_intervals() -> None:
    scheduler = RtcpScheduler(random.Random(11))
    assert scheduler.next_deadline() is None
    assert scheduler.due(100.0) is False
    first = scheduler.next_deadline()
    assert first is not None and 100.0 + 1.25 <= first < 100.0 + 3.75
    assert scheduler.due(first - 0.001) is False
    assert scheduler.due(first) is True
    gaps = []
    send, recv = RtpSendState(random.Random(1)), RtpReceiveState()
    now = first
    for _ in range(2000):
        scheduler.build(send, recv, now, cname="a@b")
        deadline = scheduler.next_deadline()
        assert deadline is not None
        gaps.append(deadline - now)
        now = deadline
    assert 2.5 <= min(gaps) < 2.6
    assert 7.4 < max(gaps) < 7.5
    assert 4.9 < sum(gaps) / len(gaps) < 5.1


def test_build_sends_rr_before_any_rtp_then_sr_with_counts_and_cname() -> None:
    send, recv = RtpSendState(random.Random(5)), RtpReceiveState()
    feed(recv, [1, 2, 3])
    scheduler = RtcpScheduler(random.Random(6))
    rr, sdes = parse_compound(scheduler.build(send, recv, 1.0, cname="ivr@host"))
    assert isinstance(rr, ReceiverReport) and rr.ssrc == send.ssrc
    assert [b.ssrc for b in rr.reports] == [0x1234]
    assert isinstance(sdes, SourceDescription)
    assert sdes.chunks[0].ssrc == send.ssrc and sdes.chunks[0].cname == "ivr@host"

    for i in range(50):
        send.next_header(0, 160, now=1.0 + 0.02 * i)
    compound = scheduler.build(send, recv, 2.0, cname="ivr@host", wall=1_700_000_000.5, bye=True)
    sr, sdes, bye = parse_compound(compound)
    assert isinstance(sr, SenderReport)
    assert (sr.packet_count, sr.octet_count) == (50, 8000)
    assert sr.ntp_timestamp == ntp_from_unix(1_700_000_000.5)
    assert sr.rtp_timestamp == send.rtp_time(2.0)
    assert sr.reports == []  # nothing heard since the last report
    assert isinstance(bye, Bye) and bye.ssrcs == [send.ssrc]
    without_wall = parse_compound(scheduler.build(send, recv, 3.0, cname="x"))[0]
    assert isinstance(without_wall, SenderReport) and without_wall.ntp_timestamp == 0


def test_real_telephone_event_stream_with_its_own_ssrc() -> None:
    # SIPp's uac_pcap plays g711a.pcap then dtmf_2833_1.pcap: two SSRCs on one stream
    state = RtpReceiveState()
    delivered = []
    for name in ("g711a", "dtmf_2833_1"):
        for when, _src, _, data in read_udp_datagrams(SIPP / f"{name}.pcap"):
            packet = RtpPacket.parse(data)
            if state.accept(packet, ("127.0.0.1", 6000), when):
                delivered.append((packet.ssrc, packet.sequence_number))
    assert set(state.sources) == {0xDEE0EE8F, 0x0E05384E}
    dtmf = [seq for ssrc, seq in delivered if ssrc == 0x0E05384E]
    assert dtmf == [7985, 7986, 7987, 7988, 7989, 7990, 7991, 7991, 7991]  # 7984 on probation


def test_audio_header_is_next_header_for_a_g711_frame() -> None:
    """The send path's lean header equals the general one, state and marker included."""
    general, lean = RtpSendState(random.Random(5)), RtpSendState(random.Random(5))
    for i in range(5):
        if i == 3:
            general.start_talkspurt()
            lean.start_talkspurt()
        assert lean.audio_header(8, 160, i * 0.02) == general.next_header(8, 160, now=i * 0.02)
    assert (lean.seq, lean.timestamp, lean.packets, lean.octets) == (
        general.seq,
        general.timestamp,
        general.packets,
        general.octets,
    )
    assert lean.rtp_time(1.0) == general.rtp_time(1.0)
