"""The real-peer harness itself, checked against stand-in peers (no engine needed).

Peers: ``sipp -sn uas [-rtp_echo]``, baresip (caller and auto-answer agent),
kamailio, dumpcap/tshark, pyVoIP behind kamailio. Plus the RTP analysis on
synthetic rows.
"""

from __future__ import annotations

import json
import signal
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bench.canary import CanarySchedule
from bench.rtp_jitter import (
    EVENT_PT,
    RtpRow,
    analyze_streams,
    parse_tshark_fields,
    percentile,
    summarize,
)
from tests.peers import start_process, stop_process, wait_until
from tests.peers.baresip import Baresip, dominant_frequency, read_wav
from tests.peers.capture import RtpCapture
from tests.peers.kamailio import Kamailio, render_config, sip_options
from tests.peers.ports import free_port, free_rtp_range, free_tcp_port, free_udp_port
from tests.peers.sipp import Sipp, SippStats, parse_sipp_duration

ROOT = Path(__file__).resolve().parent.parent

# -- synthetic RTP analysis ------------------------------------------------------------


def _stream(
    n: int,
    *,
    t0: float = 1000.0,
    ptime: float = 0.020,
    seq0: int = 100,
    ts0: int = 5000,
    ssrc: int = 0xABC,
    sport: int = 30000,
    dport: int = 40000,
    pt: int = 0,
    late: dict[int, float] | None = None,
) -> list[RtpRow]:
    samples = round(ptime * 8000)
    late = late or {}
    return [
        RtpRow(
            time=t0 + i * ptime + late.get(i, 0.0),
            src="127.0.0.1",
            sport=sport,
            dport=dport,
            ssrc=ssrc,
            seq=(seq0 + i) & 0xFFFF,
            timestamp=(ts0 + i * samples) & 0xFFFFFFFF,
            pt=pt,
        )
        for i in range(n)
    ]


def test_perfect_stream_has_zero_jitter_and_no_loss() -> None:
    [s] = analyze_streams(_stream(100))
    assert (s.packets, s.audio_packets, s.event_packets) == (100, 100, 0)
    assert (s.expected, s.lost, s.duplicates) == (100, 0, 0)
    assert s.ptime_ms == pytest.approx(20.0)
    assert max(s.deviations_ms) == pytest.approx(0.0, abs=1e-6)
    assert s.drift_ms_per_s == pytest.approx(0.0, abs=1e-6)


def test_ptime_is_inferred_from_timestamps() -> None:
    [s] = analyze_streams(_stream(50, ptime=0.030))
    assert s.ptime_ms == pytest.approx(30.0)


def test_one_late_packet_shows_its_delay() -> None:
    [s] = analyze_streams(_stream(100, late={50: 0.007}))
    assert sorted(s.deviations_ms)[-1] == pytest.approx(7.0, abs=1e-6)
    assert sorted(s.deviations_ms)[-2] == pytest.approx(0.0, abs=1e-6)
    summary = summarize([s])
    assert summary.max_ms == pytest.approx(7.0, abs=1e-6)
    assert summary.p50_ms == pytest.approx(0.0, abs=1e-6)


def test_pdv_counts_a_late_first_packet_once() -> None:
    # The first packet went out 7 ms late, every later one on its schedule.
    [s] = analyze_streams(_stream(100, late={0: 0.007}))
    assert sorted(s.pdv_ms)[-1] == pytest.approx(7.0, abs=1e-6)
    assert sorted(s.pdv_ms)[-2] == pytest.approx(0.0, abs=1e-6)
    assert min(s.pdv_ms) == pytest.approx(0.0, abs=1e-6)
    # Measured from the first packet, all 99 later ones look 7 ms early.
    assert sum(1 for d in s.deviations_ms if d > 6.9) == 99
    summary = summarize([s])
    assert summary.pdv_max_ms == pytest.approx(7.0, abs=1e-6)
    assert summary.pdv_p99_ms is not None and summary.pdv_p99_ms < 0.1
    assert summary.p99_ms == pytest.approx(7.0, abs=1e-6)


def test_pdv_is_lateness_behind_the_least_late_packet() -> None:
    late = {i: 0.002 for i in range(100)}  # a constant offset is no variation
    late[30] = 0.009
    late[31] = 0.005
    [s] = analyze_streams(_stream(100, late=late))
    assert sorted(s.pdv_ms)[-2:] == [pytest.approx(3.0, abs=1e-6), pytest.approx(7.0, abs=1e-6)]
    assert sum(1 for d in s.pdv_ms if d > 1e-6) == 2


def test_drifting_sender_accumulates_deviation() -> None:
    # Every packet 21 ms apart while timestamps say 20 ms: 1 ms more each packet.
    [s] = analyze_streams(_stream(101, ptime=0.020, late={i: 0.001 * i for i in range(101)}))
    assert max(s.deviations_ms) == pytest.approx(100.0, abs=1e-6)
    assert s.drift_ms_per_s == pytest.approx(50.0, rel=1e-6)  # 1 ms per 20 ms
    assert max(s.ipdv_ms) == pytest.approx(1.0, abs=1e-6)
    assert max(s.pdv_ms) == pytest.approx(100.0, abs=1e-6)  # drift is delay variation too


def test_loss_is_counted_from_sequence_gaps() -> None:
    rows = [r for r in _stream(100) if r.seq not in (110, 111, 150)]
    [s] = analyze_streams(rows)
    assert (s.expected, s.lost) == (100, 3)
    assert s.loss_fraction == pytest.approx(0.03)


def test_sequence_wrap_is_not_loss() -> None:
    [s] = analyze_streams(_stream(200, seq0=65500, ts0=0xFFFFFF00))
    assert (s.expected, s.lost) == (200, 0)
    assert max(s.deviations_ms) == pytest.approx(0.0, abs=1e-6)


def test_telephone_events_are_left_out_of_loss_and_jitter() -> None:
    audio = _stream(100)
    # Packets 40..49 are RFC 4733 events in the same sequence space; the end
    # packet is sent three times with one sequence number each.
    rows = [r for r in audio if not 140 <= r.seq < 150]
    for i in range(40, 50):
        rows.append(
            RtpRow(
                time=1000.0 + i * 0.02,
                src="127.0.0.1",
                sport=30000,
                dport=40000,
                ssrc=0xABC,
                seq=100 + i,
                timestamp=5000 + 40 * 160,
                pt=EVENT_PT,
            )
        )
    rows.append(rows[-1])  # a repeated end packet (same seq)
    [s] = analyze_streams(rows)
    assert s.event_packets == 11
    assert (s.expected, s.lost, s.duplicates) == (90, 0, 0)
    assert len(s.deviations_ms) == 90
    assert max(s.deviations_ms) == pytest.approx(0.0, abs=1e-6)


def test_streams_are_split_by_port_and_filtered_by_source_range() -> None:
    ours = _stream(50, sport=30000, ssrc=7, late={10: 0.004})
    ours2 = _stream(50, sport=30002, ssrc=7, late={20: 0.002})  # same SSRC, other call
    theirs = _stream(50, sport=40000, dport=30000, ssrc=9, late={5: 0.050})
    streams = analyze_streams(ours + ours2 + theirs)
    assert len(streams) == 3
    mine = summarize(streams, sport_range=(30000, 30999))
    assert (mine.streams, mine.packets, mine.lost) == (2, 100, 0)
    assert mine.max_ms == pytest.approx(4.0, abs=1e-6)
    assert summarize(streams).max_ms == pytest.approx(50.0, abs=1e-6)


def test_percentile_interpolates() -> None:
    assert percentile([1.0], 99) == 1.0
    assert percentile([0.0, 10.0], 50) == pytest.approx(5.0)
    assert percentile(list(map(float, range(101))), 99) == pytest.approx(99.0)
    with pytest.raises(ValueError):
        percentile([], 50)


def test_parse_tshark_fields_skips_incomplete_lines() -> None:
    text = (
        "1700000000.000100000\t127.0.0.1\t30000\t40000\t0x00000abc\t7\t160\t0\n"
        "1700000000.020100000\t127.0.0.1\t30000\t40000\t2748\t8\t320\t0\n"
        "1700000000.030000000\t127.0.0.1\t30001\t40001\t\t\t\t\n"  # RTCP / not RTP
        "garbage\n"
    )
    rows = parse_tshark_fields(text)
    assert [(r.ssrc, r.seq, r.timestamp) for r in rows] == [(0xABC, 7, 160), (0xABC, 8, 320)]
    assert rows[1].time == pytest.approx(1700000000.0201)


def test_sipp_duration_and_empty_stats(tmp_path: Path) -> None:
    assert parse_sipp_duration("00:00:09:012000") == pytest.approx(9.012)
    assert parse_sipp_duration("01:02:03") == 3723
    empty = SippStats.from_csv(tmp_path / "missing.csv")
    assert (empty.successful, empty.failed, empty.peak_current_calls) == (0, 0, 0)


# -- ports -------------------------------------------------------------------------------


def test_free_ports_are_bindable() -> None:
    for port, kind in ((free_udp_port(), socket.SOCK_DGRAM), (free_tcp_port(), socket.SOCK_STREAM)):
        s = socket.socket(socket.AF_INET, kind)
        s.bind(("127.0.0.1", port))
        s.close()
    both = free_port("both")
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        s = socket.socket(socket.AF_INET, kind)
        s.bind(("127.0.0.1", both))
        s.close()
    base = free_rtp_range(40)
    assert base % 2 == 0
    socks = []
    try:
        for p in range(base, base + 40):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            socks.append(s)
            s.bind(("127.0.0.1", p))
    finally:
        for s in socks:
            s.close()


def _bindable(port: int) -> bool:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def test_sipp_runner_holds_the_media_ports_sipp_sends_from_but_does_not_bind(
    tmp_path: Path,
) -> None:
    # Calls 2.. of a run send their RTP from -mp + 4k, which SIPp never binds:
    # the runner holds those ports until the run ends (nothing else may bind
    # one and receive the RTP the engine sends to that call).
    sipp = Sipp("uac_pcap", remote="127.0.0.1:5060", calls=3, run_dir=tmp_path)
    sipp.prepare()
    base = sipp.media_port
    try:
        held = [base + 4, base + 8]
        assert [_bindable(p) for p in held] == [False, False]
        assert _bindable(base) and _bindable(base + 2)  # SIPp binds these itself
        assert _bindable(base + 12)  # no fourth call
    finally:
        sipp.release_media_ports()
    assert all(_bindable(p) for p in held)
    assert Sipp("uas", calls=None, run_dir=tmp_path / "uas")._unbound_media_ports() == set()


# -- SIPp --------------------------------------------------------------------------------


@pytest.mark.peer
def test_sipp_uac_pcap_against_uas_rtp_echo(tmp_path: Path) -> None:
    uas = Sipp("uas", rtp_echo=True, calls=None, run_dir=tmp_path / "uas").start()
    try:
        uac = Sipp(
            "uac_pcap",
            remote=f"127.0.0.1:{uas.port}",
            calls=3,
            rate=3,
            timeout=45,
            trace_msg=True,
            run_dir=tmp_path / "uac",
        )
        res = uac.run()
    finally:
        server = uas.stop()
    print(res.summary())
    assert res.ok, res.summary()
    assert "-i" in res.argv and "127.0.0.1" in res.argv and "-nostdin" in res.argv
    s = res.stats
    assert (s.successful, s.failed, s.created, s.watchdog_major) == (3, 0, 3, 0)
    assert s.peak_current_calls >= 1
    assert s.call_length is not None and s.call_length > 0
    assert res.message_trace is not None
    trace = res.message_trace.read_text()
    assert "RTP/AVP 8 101" in trace  # uac_pcap's offer: PCMA + telephone-event
    assert server.stats.successful == 3, server.summary()


@pytest.mark.peer
async def test_sipp_async_runner(tmp_path: Path) -> None:
    uas = await Sipp("uas", calls=2, run_dir=tmp_path / "uas").start_async()
    res = await Sipp(
        "uac", remote=f"127.0.0.1:{uas.port}", calls=2, rate=10, run_dir=tmp_path / "uac"
    ).run_async()
    server = await uas.wait(20)
    assert res.ok and res.stats.successful == 2, res.summary()
    assert server.ok and server.stats.successful == 2, server.summary()


@pytest.mark.peer
def test_sipp_is_killed_on_wall_timeout(tmp_path: Path) -> None:
    # A uas that never gets a call would run forever: the runner must end it.
    res = Sipp("uas", calls=1, wall_timeout=2, run_dir=tmp_path).run()
    assert res.timed_out and not res.ok


# -- capture ---------------------------------------------------------------------------------


@pytest.mark.peer
def test_capture_of_sipp_stream_gives_sane_counts_and_jitter(tmp_path: Path) -> None:
    uas = Sipp("uas", rtp_echo=True, calls=None, run_dir=tmp_path / "uas", media_ports_needed=4)
    uac = Sipp("uac_pcap", calls=2, rate=2, timeout=45, run_dir=tmp_path / "uac")
    uas.prepare()
    uac.remote = f"127.0.0.1:{uas.port}"
    uac.prepare()
    caller_range = (uac.media_port, uac.media_port + 8)
    cap = RtpCapture(
        port_ranges=[caller_range, (uas.media_port, uas.media_port + 3)],
        path=tmp_path / "rtp.pcapng",
    )
    cap.start()
    try:
        server = uas.start()
        try:
            res = uac.run()
        finally:
            server.stop()
    finally:
        stats = cap.stop()
    assert res.ok, res.summary()
    assert stats.dropped == 0 and stats.captured > 0
    streams = analyze_streams(cap.rows())
    sent = [s for s in streams if caller_range[0] <= s.sport <= caller_range[1]]
    audio = [s for s in sent if s.audio_packets]
    events = [s for s in sent if s.event_packets]
    # g711a.pcap: 236 packets of 30 ms; dtmf_2833_1.pcap: 10 event packets.
    assert [s.audio_packets for s in audio] == [236, 236]
    assert [s.event_packets for s in events] == [10, 10]
    assert all(s.ptime_ms == pytest.approx(30.0) for s in audio)
    assert all(s.lost == 0 for s in audio)
    summary = summarize(streams, sport_range=caller_range)
    print("SIPp uac_pcap send jitter:", summary.line())
    assert summary.p50_ms is not None and summary.p99_ms is not None and summary.max_ms is not None
    assert 0.0 <= summary.p50_ms <= summary.p99_ms <= summary.max_ms
    echoed = summarize(streams, sport_range=(uas.media_port, uas.media_port + 3))
    assert echoed.audio_packets == 2 * 236


# -- kamailio --------------------------------------------------------------------------------


def test_kamailio_config_is_moved_to_the_chosen_port() -> None:
    cfg = render_config(Path("/work/shared/peers/kamailio.cfg").read_text(), 34567)
    assert "15060" not in cfg
    assert "listen=udp:127.0.0.1:34567" in cfg and "listen=tcp:127.0.0.1:34567" in cfg


@pytest.mark.peer
def test_kamailio_starts_answers_options_and_stops(tmp_path: Path) -> None:
    kam = Kamailio(run_dir=tmp_path)
    kam.start()
    try:
        assert kam.running()
        assert len(kam.child_pids()) > 1  # main + workers
        status = sip_options(kam.port)
        assert status is not None and status.startswith("SIP/2.0 200"), status
        # Nobody registered as "nobody": the registrar answers 404.
        status = sip_options(kam.port, user="nobody")
        assert status is not None and status.startswith("SIP/2.0 404"), status
    finally:
        rc = kam.stop()
    assert rc == 0, kam.log()[-500:]
    assert kam.child_pids() == []
    assert sip_options(kam.port, timeout=0.3) is None


# -- baresip ---------------------------------------------------------------------------------


@pytest.mark.peer
def test_baresip_calls_sipp_uas_established_and_closed(tmp_path: Path) -> None:
    uas = Sipp("uas", rtp_echo=True, calls=1, run_dir=tmp_path / "uas", media_ports_needed=4)
    server = uas.start()
    phone = Baresip(tone_hz=440, run_dir=tmp_path / "bs", duration=40)
    try:
        phone.start()
        assert phone.dial(f"sip:service@127.0.0.1:{uas.port}")["ok"]
        est = phone.wait_for_event("CALL_ESTABLISHED", 10)
        assert est["direction"] == "outgoing"
        phone.wait_for_event("CALL_RTPESTAB", 10)
        time.sleep(1.5)  # let some audio flow both ways
        assert phone.hangup()["ok"]
        closed = phone.wait_for_event("CALL_CLOSED", 10)
        assert closed["id"] == est["id"]
        res = server.wait(15)
    finally:
        phone.stop()
        server.stop()
    assert res.ok and res.stats.successful == 1, res.summary()
    assert phone.sent_wav is not None and phone.received_wav is not None
    sent, rate = read_wav(phone.sent_wav)
    got, _ = read_wav(phone.received_wav)
    assert dominant_frequency(sent[rate // 2 :]) == pytest.approx(440, abs=5)
    # SIPp echoes baresip's own RTP back: the received audio is the same tone.
    assert dominant_frequency(got[rate // 2 :]) == pytest.approx(440, abs=5)


def _dtmf_start(digit: str) -> Callable[[dict[str, Any]], bool]:
    def match(event: dict[str, Any]) -> bool:
        return event["type"] == "CALL_DTMF_START" and event.get("param") == digit

    return match


@pytest.mark.peer
def test_two_baresips_audio_both_ways_and_rfc4733_digits(tmp_path: Path) -> None:
    agent = Baresip(auto_answer=True, tone_hz=1000, run_dir=tmp_path / "agent", duration=40)
    caller = Baresip(tone_hz=440, run_dir=tmp_path / "caller", duration=40)
    cap = RtpCapture(
        port_ranges=[(caller.rtp_first, caller.rtp_last)], path=tmp_path / "dtmf.pcapng"
    )
    try:
        agent.start()
        caller.start()
        cap.start()
        caller.dial(agent.sip_uri)
        caller.wait_for_event("CALL_ESTABLISHED", 10)
        agent.wait_for_event("CALL_ESTABLISHED", 10)
        time.sleep(1.0)
        caller.send_dtmf("12#")
        for digit in "12#":
            agent.wait_for_event(_dtmf_start(digit), 10)
        time.sleep(0.5)
        caller.hangup()
        caller.wait_for_event("CALL_CLOSED", 10)
        agent.wait_for_event("CALL_CLOSED", 10)
    finally:
        caller.stop()
        agent.stop()
        if cap.proc is not None:
            cap.stop()
    started = [e["param"] for e in agent.events if e["type"] == "CALL_DTMF_START"]
    assert started == ["1", "2", "#"]
    # The digits went as RFC 4733 telephone-event (payload type 101) from the caller.
    rows = [r for r in cap.rows() if r.sport in range(caller.rtp_first, caller.rtp_last + 1)]
    assert sum(1 for r in rows if r.pt == EVENT_PT) >= 3
    # -enc is what each side sent, -dec what it received.
    for phone, mine, theirs in ((caller, 440, 1000), (agent, 1000, 440)):
        assert phone.sent_wav is not None and phone.received_wav is not None
        sent, rate = read_wav(phone.sent_wav)
        got, _ = read_wav(phone.received_wav)
        assert dominant_frequency(sent[rate // 2 :]) == pytest.approx(mine, abs=5)
        assert dominant_frequency(got[rate // 2 :]) == pytest.approx(theirs, abs=5)


@pytest.mark.peer
def test_baresip_agent_registered_at_kamailio_answers_sipp(tmp_path: Path) -> None:
    with Kamailio(run_dir=tmp_path / "kam") as kam:
        assert (sip_options(kam.port, user="agent") or "").startswith("SIP/2.0 404")
        agent = Baresip(
            auto_answer=True, registrar_port=kam.port, tone_hz=700, run_dir=tmp_path / "agent"
        )
        try:
            agent.start()
            agent.wait_registered(10)
            res = Sipp(
                "uac_pcap",
                remote=kam.uri,
                service="agent",
                calls=1,
                timeout=40,
                run_dir=tmp_path / "uac",
            ).run()
            agent.wait_for_event("CALL_CLOSED", 10)
        finally:
            agent.stop()
    assert res.ok, res.summary()
    types = [e["type"] for e in agent.events]
    assert "CALL_ESTABLISHED" in types
    # uac_pcap's RFC 4733 "1" reaches the agent through the proxy.
    assert [e["param"] for e in agent.events if e["type"] == "CALL_DTMF_START"] == ["1"]
    assert agent.received_wav is not None and agent.sent_wav is not None
    sent, rate = read_wav(agent.sent_wav)
    assert dominant_frequency(sent[rate // 2 :]) == pytest.approx(700, abs=5)


# -- pyVoIP behind kamailio -------------------------------------------------------------------


@pytest.mark.peer
def test_sipp_reaches_registered_pyvoip_through_kamailio(tmp_path: Path) -> None:
    stats_path = tmp_path / "pyvoip.json"
    rtp_low = free_rtp_range(40)
    with Kamailio(run_dir=tmp_path / "kam") as kam:
        phone = start_process(
            [
                sys.executable,
                "-m",
                "tests.peers.pyvoip_answer",
                "--registrar",
                kam.uri,
                "--user",
                "ivr",
                "--sip-port",
                str(free_udp_port()),
                "--rtp-low",
                str(rtp_low),
                "--rtp-high",
                str(rtp_low + 39),
                "--stats",
                str(stats_path),
                "--max-seconds",
                "120",
            ],
            cwd=ROOT,
            stdout=tmp_path / "pyvoip.out",
            stderr=tmp_path / "pyvoip.err",
        )
        try:
            assert wait_until(
                lambda: stats_path.exists() and json.loads(stats_path.read_text())["ready"], 20
            ), (tmp_path / "pyvoip.err").read_text()
            res = Sipp(
                "uac_pcap",
                remote=kam.uri,
                service="ivr",
                calls=2,
                rate=2,
                timeout=45,
                run_dir=tmp_path / "uac",
            ).run()
            wait_until(lambda: json.loads(stats_path.read_text())["calls_ended"] >= 2, 5)
        finally:
            stop_process(phone, signal.SIGTERM, grace=10)
    assert res.ok, res.summary()
    stats = json.loads(stats_path.read_text())
    assert stats["stopped"] is True
    assert (stats["calls_offered"], stats["calls_answered"], stats["calls_ended"]) == (2, 2, 2)
    assert stats["digits"] == {"1": 2}  # uac_pcap sends RFC 4733 "1" once per call


# -- the bench's control sender (bench/canary.py) ---------------------------------------------


def test_canary_schedule_spreads_streams_over_the_period_and_numbers_them() -> None:
    sched = CanarySchedule(start=100.0, streams=4, ptime=0.020)
    dues, packets = [], []
    for _ in range(8):
        dues.append(round(sched.due() - 100.0, 6))
        packets.append(sched.packet())
    assert dues == [0.0, 0.005, 0.010, 0.015, 0.020, 0.025, 0.030, 0.035]
    rows = []
    for stream, data in packets:
        assert len(data) == 12 + 160 and data[0] == 0x80
        marker_pt, seq = data[1], int.from_bytes(data[2:4], "big")
        ts, ssrc = int.from_bytes(data[4:8], "big"), int.from_bytes(data[8:12], "big")
        rows.append((stream, marker_pt, seq, ts, ssrc - 0x5EED0000))
    assert rows[:4] == [(k, 0x80 | 8, 0, 0, k) for k in range(4)]  # marker on each first packet
    assert rows[4:] == [(k, 8, 1, 160, k) for k in range(4)]


def test_canary_catches_up_short_lateness_and_skips_a_long_one() -> None:
    sched = CanarySchedule(start=0.0, streams=4, ptime=0.020)
    assert sched.catch_up(0.060) == 0  # three periods late: every packet still goes
    assert sched.slot == 0
    assert sched.catch_up(0.0651) == 3  # more: the schedule jumps three periods
    assert sched.slot == 12 and sched.due() == pytest.approx(0.060)
    _stream, data = sched.packet()
    assert int.from_bytes(data[4:8], "big") == 3 * 160  # the timestamp jumps with it


def test_canary_streams_are_captured_and_measured_like_rtp(tmp_path: Path) -> None:
    port = free_udp_port()
    cap = RtpCapture(ports=[port], path=tmp_path / "canary.pcapng")
    cap.start()
    try:
        proc = start_process(
            [sys.executable, "bench/canary.py", "--port", str(port), "--seconds", "0.6"],
            cwd=Path(__file__).resolve().parent.parent,
            stdout=tmp_path / "canary.out",
            stderr=tmp_path / "canary.err",
        )
        assert proc.wait(timeout=30) == 0, (tmp_path / "canary.err").read_text()
    finally:
        stats = cap.stop()
    assert stats.dropped == 0
    sent = int((tmp_path / "canary.out").read_text().split()[1])
    assert sent == 4 * 30  # 0.6 s of 20 ms slots, four streams
    streams = analyze_streams(cap.rows())
    assert len(streams) == 4
    assert all(s.audio_packets == 30 and s.lost == 0 for s in streams)
    assert all(s.ptime_ms == pytest.approx(20.0) for s in streams)
    summary = summarize(streams, dport_range=(port, port))
    assert summary.streams == 4 and summary.pdv_p99_ms is not None and summary.pdv_p99_ms >= 0


def test_a_free_port_can_avoid_the_ranges_another_peer_will_bind() -> None:
    from tests.peers.ports import HIGH, LOW

    # the bench's control sender once drew a port inside SIPp's media range
    # (thousands of ports at 300 calls), which SIPp then could not bind (rc 254)
    middle = (LOW + HIGH) // 2
    ranges = [(LOW, middle - 1), (middle + 50, HIGH)]
    for _ in range(20):
        assert middle <= free_port("udp", avoid=ranges) < middle + 50
    with pytest.raises(RuntimeError, match=r"no free udp port found .* outside"):
        free_port("udp", avoid=[(LOW, HIGH)])
