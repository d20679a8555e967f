"""RFC 4733 telephone-events (DTMF in RTP): receive and send, sans I/O.

Receiving: every packet of one key press carries the same RTP timestamp, so an
event is identified by it. A digit is reported once, on the first packet seen
for a new timestamp, whether or not that packet has the marker bit (the
marker packet may be lost) and whether or not its end packets ever arrive.
Retransmitted end packets and duplicates of a known timestamp are ignored.
"""

from __future__ import annotations

import struct
from collections import deque
from dataclasses import dataclass

from media.rtp.packet import RtpPacket

EVENTS = "0123456789*#ABCD"
_PAYLOAD = struct.Struct("!BBH")


@dataclass(frozen=True)
class DtmfEvent:
    """One detected key press."""

    digit: str
    duration_ms: int
    volume: int
    source: str = "rfc4733"


def event_code(digit: str) -> int:
    """``"5"`` -> 5, ``"*"`` -> 10, ``"#"`` -> 11, ``"A"``-``"D"`` -> 12-15."""
    code = EVENTS.find(digit.upper())
    if code < 0 or len(digit) != 1:
        raise ValueError(f"not a DTMF digit: {digit!r} (expected one of {EVENTS})")
    return code


class TelephoneEventReceiver:
    """Turns telephone-event packets into digits (see module docstring).

    Event 16 (hook flash) and other non-DTMF events are ignored.
    """

    def __init__(self, clock_rate: int = 8000, memory: int = 32) -> None:
        self.clock_rate = clock_rate
        self._seen: deque[tuple[int, int]] = deque(maxlen=memory)
        self.ignored = 0
        self.malformed = 0

    def feed(self, packet: RtpPacket, now: float) -> list[DtmfEvent]:
        """Account for one packet; returns the digit it starts, if any."""
        payload = packet.payload
        if len(payload) < 4:
            self.malformed += 1
            return []
        event, flags, duration = _PAYLOAD.unpack_from(payload)
        key = (packet.ssrc, packet.timestamp)
        if key in self._seen:
            return []
        self._seen.append(key)
        if event >= len(EVENTS):
            self.ignored += 1
            return []
        return [
            DtmfEvent(
                digit=EVENTS[event],
                duration_ms=duration * 1000 // self.clock_rate,
                volume=flags & 0x3F,
            )
        ]


def event_payload(code: int, end: bool, volume: int, duration: int) -> bytes:
    """One telephone-event payload (RFC 4733 §2.3)."""
    return _PAYLOAD.pack(code, (0x80 if end else 0) | (volume & 0x3F), min(duration, 0xFFFF))


class TelephoneEventSender:
    """The packets that send one digit: ``(marker, payload)`` per ptime.

    All share the timestamp of the event start (the caller supplies it); the
    first has the marker bit; the last payload (end bit set) is sent three
    times, as RFC 4733 §2.5.1.4 recommends.
    """

    def __init__(self, ptime_ms: int = 20, clock_rate: int = 8000, volume: int = 10) -> None:
        self.ptime_ms = ptime_ms
        self.clock_rate = clock_rate
        self.volume = volume

    def packets(self, digit: str, duration_ms: int = 100) -> list[tuple[bool, bytes]]:
        code = event_code(digit)
        step = self.clock_rate * self.ptime_ms // 1000
        total = self.clock_rate * duration_ms // 1000
        out: list[tuple[bool, bytes]] = []
        elapsed = step
        while elapsed < total:
            out.append((not out, event_payload(code, False, self.volume, elapsed)))
            elapsed += step
        end = event_payload(code, True, self.volume, total)
        out.extend([(not out, end), (False, end), (False, end)])
        return out
