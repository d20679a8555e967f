"""RFC 4733 telephone-events (DTMF in RTP): receive and send, sans I/O.

Receiving: every packet of one key press carries the same RTP timestamp (the
event start), so an event is identified by ``(SSRC, timestamp)``. A digit is
reported once, on the first packet seen for a new timestamp, whether or not
that packet has the marker bit (the marker packet may be lost) and whether
or not its end packets ever arrive. Updates, retransmitted end packets,
duplicates and late reordered packets of a known timestamp are ignored. A
key held longer than the 16-bit duration field (~8 s at 8 kHz) continues in
a new segment with a new timestamp and no marker (RFC 4733 §2.5.1.3); that
is recognised and not reported again.

Events 0-9 are the digits, 10 ``*``, 11 ``#``, 12-15 ``A``-``D``. Event 16
(hook flash) and the other events of RFC 4734 are not digits: they are
ignored and counted in ``ignored``.

Sending: :class:`TelephoneEventSender` lists the payloads of one key press,
one per packet interval, which the caller sends with a header carrying the
event's start timestamp (plus ``timestamp_offset``) and a fresh sequence
number each (see ``RtpSendState.event_header``).
"""

from __future__ import annotations

import struct
from collections import OrderedDict
from dataclasses import dataclass
from typing import NamedTuple

from media.rtp.packet import RtpPacket

__all__ = [
    "EVENTS",
    "DtmfEvent",
    "EventPacket",
    "TelephoneEventReceiver",
    "TelephoneEventSender",
    "event_code",
    "event_payload",
]

EVENTS = "0123456789*#ABCD"
"""Event code -> digit, for codes 0-15."""
_PAYLOAD = struct.Struct("!BBH")
_MAX_DURATION = 0xFFFF


@dataclass(frozen=True, slots=True)
class DtmfEvent:
    """One key press. ``duration_ms`` is what the first packet seen said (often 0)."""

    digit: str
    duration_ms: int
    volume: int
    """Power level in -dBm0 (0-63) as sent; 0 for sources that have none."""
    source: str = "rfc4733"


def event_code(digit: str) -> int:
    """``"5"`` -> 5, ``"*"`` -> 10, ``"#"`` -> 11, ``"A"``-``"D"`` -> 12-15 (any case)."""
    code = EVENTS.find(digit.upper()) if len(digit) == 1 else -1
    if code < 0:
        raise ValueError(f"not a DTMF digit: {digit!r} (expected one of 0-9, *, #, A-D)")
    return code


def event_payload(code: int, end: bool, volume: int, duration: int) -> bytes:
    """One 4-byte telephone-event payload (RFC 4733 §2.3)."""
    return _PAYLOAD.pack(code, (0x80 if end else 0) | (volume & 0x3F), min(duration, _MAX_DURATION))


class _Last(NamedTuple):
    """The newest event seen from a source, with the longest duration seen for it."""

    code: int
    timestamp: int
    duration: int


class TelephoneEventReceiver:
    """Turns telephone-event packets into digits, once each (see module docstring).

    Counters: ``ignored`` (non-DTMF events such as flash), ``malformed``
    (payload shorter than 4 bytes). ``memory`` is how many recent events are
    remembered to recognise late duplicates.
    """

    def __init__(self, clock_rate: int = 8000, memory: int = 64) -> None:
        self.clock_rate = clock_rate
        self._memory = memory
        self._seen: OrderedDict[tuple[int, int], None] = OrderedDict()
        self._last: dict[int, _Last] = {}
        self.ignored = 0
        self.malformed = 0

    def feed(self, packet: RtpPacket, now: float) -> list[DtmfEvent]:
        """Account for one telephone-event packet; the digit it starts, if any.

        ``now`` is accepted for the common sans-I/O shape; the decision uses
        only the packet.
        """
        payload = packet.payload
        if len(payload) < 4:
            self.malformed += 1
            return []
        code, flags, duration = _PAYLOAD.unpack_from(payload)
        ssrc = packet.ssrc
        key = (ssrc, packet.timestamp)
        if key in self._seen:
            self._note(ssrc, code, packet.timestamp, duration)
            return []
        self._seen[key] = None
        if len(self._seen) > self._memory:
            self._seen.popitem(last=False)
        continued = self._continues(ssrc, code, packet.timestamp, packet.marker)
        self._note(ssrc, code, packet.timestamp, duration)
        if continued:
            return []
        if code >= len(EVENTS):
            self.ignored += 1
            return []
        return [DtmfEvent(EVENTS[code], duration * 1000 // self.clock_rate, flags & 0x3F)]

    def _continues(self, ssrc: int, code: int, timestamp: int, marker: bool) -> bool:
        """A new segment of a long event (§2.5.1.3), not a new key press.

        True when, without marker, the same event resumes where the previous
        segment of this source ended (within 200 ms) and that segment had
        filled the 16-bit duration field (within 200 ms).
        """
        previous = self._last.get(ssrc)
        slack = self.clock_rate // 5
        if marker or previous is None or previous.code != code:
            return False
        if previous.duration < _MAX_DURATION - slack:
            return False
        gap = (timestamp - previous.timestamp - previous.duration + slack) & 0xFFFFFFFF
        return gap <= 2 * slack

    def _note(self, ssrc: int, code: int, timestamp: int, duration: int) -> None:
        previous = self._last.get(ssrc)
        if previous is None:
            self._last[ssrc] = _Last(code, timestamp, duration)
        elif previous.timestamp == timestamp:
            if duration > previous.duration:
                self._last[ssrc] = previous._replace(duration=duration)
        elif not (timestamp - previous.timestamp) & 0x80000000:  # newer, not a late packet
            self._last[ssrc] = _Last(code, timestamp, duration)


class EventPacket(NamedTuple):
    """One telephone-event packet to send."""

    marker: bool
    timestamp_offset: int
    """Add to the event's start timestamp (non-zero only for segments of long events)."""
    payload: bytes


class TelephoneEventSender:
    """The packets that send one key press, one per ``ptime_ms`` (RFC 4733 §2.5.1).

    The first has the marker bit; each carries the duration so far; the
    final payload (end bit set, full duration) is sent three times
    (§2.5.1.4), each in its own packet interval with the same timestamp.
    Events longer than the 16-bit duration field are split into segments.
    """

    def __init__(self, ptime_ms: int = 20, clock_rate: int = 8000, volume: int = 10) -> None:
        if ptime_ms <= 0:
            raise ValueError(f"ptime must be positive, got {ptime_ms} ms")
        if not 0 <= volume <= 63:
            raise ValueError(f"volume is 0-63 (-dBm0), got {volume}")
        self.ptime_ms = ptime_ms
        self.clock_rate = clock_rate
        self.volume = volume

    def packets(self, digit: str, duration_ms: int = 100) -> list[EventPacket]:
        """All packets for ``digit`` held ``duration_ms`` (at least one packet interval)."""
        code = event_code(digit)
        step = self.clock_rate * self.ptime_ms // 1000
        total = max(step, self.clock_rate * duration_ms // 1000)
        volume = self.volume
        out: list[EventPacket] = []
        start = 0  # timestamp offset of the current segment
        elapsed = step
        while elapsed < total:
            while elapsed - start > _MAX_DURATION:
                start += _MAX_DURATION
            payload = event_payload(code, False, volume, elapsed - start)
            out.append(EventPacket(not out, start, payload))
            elapsed += step
        while total - start > _MAX_DURATION:
            start += _MAX_DURATION
        end = event_payload(code, True, volume, total - start)
        out.extend(EventPacket(not out and i == 0, start, end) for i in range(3))
        return out
