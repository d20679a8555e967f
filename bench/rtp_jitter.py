"""RTP stream analysis of captured packets: count, loss, and SEND jitter.

Pure functions over rows extracted from a capture (see
``tests/peers/capture.py``, which runs::

    tshark -r FILE -Y rtp -T fields -e frame.time_epoch -e ip.src -e udp.srcport
        -e udp.dstport -e rtp.ssrc -e rtp.seq -e rtp.timestamp -e rtp.p_type
        -o rtp.heuristic_rtp:TRUE

and parses the output with :func:`parse_tshark_fields`).

Definitions, per stream (key: source address, source port, destination port, SSRC):

* packets: every RTP packet seen; ``event_packets`` those with payload type
  101 (RFC 4733 telephone-event), ``audio_packets`` the rest.
* loss (payload type 101 left out: RFC 4733 end packets are repeated on
  purpose and events share the sequence space): ``expected`` = sequence
  numbers spanned by the stream (16-bit wrap handled) minus those used by
  payload type 101; ``lost`` = expected - distinct audio sequence numbers.
* ptime: the median RTP timestamp step between consecutive audio packets
  (sequence step 1) divided by 8000 (G.711 clock).
* send deviation (from the first packet): for every audio packet,
  ``capture_time - ideal`` where
  ``ideal = first_time + (timestamp - first_timestamp) / 8000``, i.e. the
  first packet's time plus n * ptime for the n-th packet (the timestamp gives
  n even across silence gaps or sequence numbers used by events).
  Reported as absolute values in ms; a sender that drifts late
  accumulates it, which is what a receiver's jitter buffer has to absorb.
* PDV (RFC 5481 packet delay variation, the figure the media target is judged
  on): the same offset ``capture_time - ideal`` taken relative to the stream's
  *least late* packet instead of its first one, in ms (0 for the best packet,
  never negative). A clock-driven sender never sends ahead of its schedule, so
  the least late packet marks the schedule and every other packet's PDV is how
  late it went out; a jitter buffer must be this deep. The first-packet
  reference above counts one late *first* packet once per packet of the call
  (every later packet looks early by that much): in bench/media_load.py's
  300-call levels 2-4 of ~600 streams started inside a stall and made up to
  ~1,800 of the ~2,700 packets that decide the p99.
* drift: least-squares slope of (capture_time - ideal) over the ideal time,
  in ms per second (0 for a sender whose clock keeps pace with its timestamps).
* IPDV (short-term jitter, drift-free): ``|dt - dts / 8000|`` between
  consecutive audio packets (sequence step 1), in ms.

:func:`summarize` pools the deviations of all streams of one sender (selected
by source port range) into p50 / p99 / max.

Command line: ``tshark ... -T fields ... | python bench/rtp_jitter.py
[--sport LOW-HIGH]`` prints a per-stream table and the summary.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

EVENT_PT = 101
CLOCK_RATE = 8000

TSHARK_FIELDS: tuple[str, ...] = (
    "frame.time_epoch",
    "ip.src",
    "udp.srcport",
    "udp.dstport",
    "rtp.ssrc",
    "rtp.seq",
    "rtp.timestamp",
    "rtp.p_type",
)


@dataclass(frozen=True, slots=True)
class RtpRow:
    """One captured RTP packet."""

    time: float
    src: str
    sport: int
    dport: int
    ssrc: int
    seq: int
    timestamp: int
    pt: int


def _int(text: str) -> int:
    text = text.strip()
    return int(text, 16) if text.lower().startswith("0x") else int(text)


def parse_tshark_fields(text: str) -> list[RtpRow]:
    """Parse tab-separated ``tshark -T fields`` output in :data:`TSHARK_FIELDS` order.

    Lines with missing fields (non-RTP packets, RTCP) are skipped. When tshark
    decodes one UDP packet as several RTP packets (comma separated values),
    only the first is kept.
    """
    rows: list[RtpRow] = []
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) < len(TSHARK_FIELDS):
            continue
        parts = [p.split(",")[0] for p in parts]
        if any(not p.strip() for p in parts):
            continue
        try:
            rows.append(
                RtpRow(
                    time=float(parts[0]),
                    src=parts[1].strip(),
                    sport=_int(parts[2]),
                    dport=_int(parts[3]),
                    ssrc=_int(parts[4]),
                    seq=_int(parts[5]),
                    timestamp=_int(parts[6]),
                    pt=_int(parts[7]),
                )
            )
        except ValueError:
            continue
    return rows


def _unwrap(values: Iterable[int], bits: int) -> list[int]:
    """Extend wrapping counters (in arrival order) to monotonic-ish integers."""
    span = 1 << bits
    half = span >> 1
    out: list[int] = []
    prev: int | None = None
    for v in values:
        if prev is None:
            ext = v
        else:
            delta = (v - prev) % span
            if delta >= half:
                delta -= span
            ext = prev + delta
        out.append(ext)
        prev = ext
    return out


StreamKey = tuple[str, int, int, int]


@dataclass(frozen=True)
class StreamStats:
    """Figures of one RTP stream."""

    src: str
    sport: int
    dport: int
    ssrc: int
    packets: int
    audio_packets: int
    event_packets: int
    expected: int
    lost: int
    duplicates: int
    ptime_ms: float | None
    drift_ms_per_s: float | None
    deviations_ms: tuple[float, ...] = field(repr=False)
    ipdv_ms: tuple[float, ...] = field(default=(), repr=False)
    pdv_ms: tuple[float, ...] = field(default=(), repr=False)

    @property
    def loss_fraction(self) -> float:
        """lost / expected (0.0 for an empty stream)."""
        return self.lost / self.expected if self.expected > 0 else 0.0

    @property
    def max_deviation_ms(self) -> float | None:
        """Largest absolute send deviation (None without audio)."""
        return max(self.deviations_ms) if self.deviations_ms else None


def _stream_stats(key: StreamKey, rows: list[RtpRow], clock_rate: int) -> StreamStats:
    rows = sorted(rows, key=lambda r: r.time)
    seqs = _unwrap((r.seq for r in rows), 16)
    audio = [(r, s) for r, s in zip(rows, seqs, strict=True) if r.pt != EVENT_PT]
    event_seqs = {s for r, s in zip(rows, seqs, strict=True) if r.pt == EVENT_PT}
    audio_seqs = [s for _, s in audio]
    distinct_audio = set(audio_seqs)
    if audio_seqs:
        lo, hi = min(seqs), max(seqs)
        span_events = sum(1 for s in event_seqs if lo <= s <= hi and s not in distinct_audio)
        expected = (hi - lo + 1) - span_events
    else:
        expected = 0
    lost = max(0, expected - len(distinct_audio))
    duplicates = len(audio_seqs) - len(distinct_audio)

    deviations: list[float] = []
    ipdv: list[float] = []
    pdv: list[float] = []
    ptime_ms: float | None = None
    drift: float | None = None
    if audio:
        stamps = _unwrap((r.timestamp for r, _ in audio), 32)
        steps = [
            stamps[i + 1] - stamps[i]
            for i in range(len(audio) - 1)
            if audio[i + 1][1] - audio[i][1] == 1 and stamps[i + 1] > stamps[i]
        ]
        if steps:
            ptime_ms = statistics.median(steps) * 1000.0 / clock_rate
        t0 = audio[0][0].time
        ts0 = stamps[0]
        seen: set[int] = set()
        xs: list[float] = []
        ys: list[float] = []
        for (r, s), ts in zip(audio, stamps, strict=True):
            if s in seen:
                continue
            seen.add(s)
            ideal = (ts - ts0) / clock_rate
            xs.append(ideal)
            ys.append(r.time - t0 - ideal)
            deviations.append(abs(r.time - t0 - ideal) * 1000.0)
        best = min(ys)
        pdv = [(y - best) * 1000.0 for y in ys]
        drift = _slope(xs, ys)
        if drift is not None:
            drift *= 1000.0
        for i in range(len(audio) - 1):
            if audio[i + 1][1] - audio[i][1] == 1:
                dt = audio[i + 1][0].time - audio[i][0].time
                dts = (stamps[i + 1] - stamps[i]) / clock_rate
                ipdv.append(abs(dt - dts) * 1000.0)
    src, sport, dport, ssrc = key
    return StreamStats(
        src=src,
        sport=sport,
        dport=dport,
        ssrc=ssrc,
        packets=len(rows),
        audio_packets=len(audio),
        event_packets=len(rows) - len(audio),
        expected=expected,
        lost=lost,
        duplicates=duplicates,
        ptime_ms=ptime_ms,
        drift_ms_per_s=drift,
        deviations_ms=tuple(deviations),
        ipdv_ms=tuple(ipdv),
        pdv_ms=tuple(pdv),
    )


def _slope(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Least-squares slope of ys over xs (None if xs has no spread)."""
    n = len(xs)
    if n < 2:
        return None
    mx = sum(xs) / n
    my = sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx <= 0:
        return None
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx


def analyze_streams(rows: Iterable[RtpRow], clock_rate: int = CLOCK_RATE) -> list[StreamStats]:
    """Group rows into streams and compute count, loss, ptime and send deviations."""
    groups: dict[StreamKey, list[RtpRow]] = {}
    for r in rows:
        groups.setdefault((r.src, r.sport, r.dport, r.ssrc), []).append(r)
    return [_stream_stats(k, v, clock_rate) for k, v in sorted(groups.items())]


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) by linear interpolation; ``values`` non-empty."""
    if not values:
        raise ValueError("percentile of no values")
    data = sorted(values)
    if len(data) == 1:
        return data[0]
    pos = (len(data) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = math.ceil(pos)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


@dataclass(frozen=True)
class JitterSummary:
    """Pooled figures over the selected streams."""

    streams: int
    packets: int
    audio_packets: int
    expected: int
    lost: int
    p50_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    ptime_ms: float | None
    ipdv_p50_ms: float | None = None
    ipdv_p99_ms: float | None = None
    drift_ms_per_s: float | None = None
    pdv_p50_ms: float | None = None
    pdv_p99_ms: float | None = None
    pdv_max_ms: float | None = None

    @property
    def loss_fraction(self) -> float:
        """lost / expected over all selected streams."""
        return self.lost / self.expected if self.expected > 0 else 0.0

    def line(self) -> str:
        """A one-line human summary."""

        def f(x: float | None) -> str:
            return "-" if x is None else f"{x:.2f}"

        return (
            f"streams={self.streams} packets={self.packets} lost={self.lost}/{self.expected} "
            f"ptime={f(self.ptime_ms)}ms pdv p50={f(self.pdv_p50_ms)} p99={f(self.pdv_p99_ms)} "
            f"max={f(self.pdv_max_ms)} ms; from-first p50={f(self.p50_ms)} "
            f"p99={f(self.p99_ms)} max={f(self.max_ms)} ms; ipdv p50={f(self.ipdv_p50_ms)} "
            f"p99={f(self.ipdv_p99_ms)} ms; drift={f(self.drift_ms_per_s)} ms/s"
        )


def _in(port: int, rng: tuple[int, int] | None) -> bool:
    return rng is None or rng[0] <= port <= rng[1]


def summarize(
    streams: Iterable[StreamStats],
    sport_range: tuple[int, int] | None = None,
    dport_range: tuple[int, int] | None = None,
    min_packets: int = 1,
) -> JitterSummary:
    """Pool streams whose source (and destination) port is in range into one summary.

    Streams with fewer than ``min_packets`` packets are left out (stray packets
    a heuristic dissector took for RTP).
    """
    chosen = [
        s
        for s in streams
        if _in(s.sport, sport_range) and _in(s.dport, dport_range) and s.packets >= min_packets
    ]
    devs = [d for s in chosen for d in s.deviations_ms]
    ipdv = [d for s in chosen for d in s.ipdv_ms]
    pdv = [d for s in chosen for d in s.pdv_ms]
    ptimes = [s.ptime_ms for s in chosen if s.ptime_ms is not None]
    drifts = [s.drift_ms_per_s for s in chosen if s.drift_ms_per_s is not None]
    return JitterSummary(
        streams=len(chosen),
        packets=sum(s.packets for s in chosen),
        audio_packets=sum(s.audio_packets for s in chosen),
        expected=sum(s.expected for s in chosen),
        lost=sum(s.lost for s in chosen),
        p50_ms=percentile(devs, 50) if devs else None,
        p99_ms=percentile(devs, 99) if devs else None,
        max_ms=max(devs) if devs else None,
        ptime_ms=statistics.median(ptimes) if ptimes else None,
        ipdv_p50_ms=percentile(ipdv, 50) if ipdv else None,
        ipdv_p99_ms=percentile(ipdv, 99) if ipdv else None,
        drift_ms_per_s=statistics.median(drifts) if drifts else None,
        pdv_p50_ms=percentile(pdv, 50) if pdv else None,
        pdv_p99_ms=percentile(pdv, 99) if pdv else None,
        pdv_max_ms=max(pdv) if pdv else None,
    )


def _range(text: str) -> tuple[int, int]:
    lo, _, hi = text.partition("-")
    return int(lo), int(hi or lo)


def main(argv: Sequence[str] | None = None) -> int:
    """Read tshark fields on stdin, print per-stream figures and the pooled summary."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sport", type=_range, default=None, help="source port range LOW-HIGH")
    ap.add_argument("--dport", type=_range, default=None, help="destination port range")
    args = ap.parse_args(argv)
    streams = analyze_streams(parse_tshark_fields(sys.stdin.read()))
    print(
        f"{'src':>15} {'sport':>6} {'dport':>6} {'ssrc':>10} {'pkts':>6} {'lost':>5} "
        f"{'ptime':>6} {'maxpdv':>8} {'maxdev':>8} {'drift':>7}"
    )
    for s in streams:
        if not (_in(s.sport, args.sport) and _in(s.dport, args.dport)):
            continue
        ptime = "-" if s.ptime_ms is None else f"{s.ptime_ms:.0f}"
        mx = "-" if s.max_deviation_ms is None else f"{s.max_deviation_ms:.2f}"
        mp = f"{max(s.pdv_ms):.2f}" if s.pdv_ms else "-"
        dr = "-" if s.drift_ms_per_s is None else f"{s.drift_ms_per_s:.2f}"
        print(
            f"{s.src:>15} {s.sport:>6} {s.dport:>6} {s.ssrc:>10} {s.packets:>6} "
            f"{s.lost:>5} {ptime:>6} {mp:>8} {mx:>8} {dr:>7}"
        )
    print(summarize(streams, args.sport, args.dport).line())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
