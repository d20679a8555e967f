"""RTP packets (RFC 3550 §5.1): parse and serialize, no I/O.

``RtpPacket.parse`` validates everything a peer can get wrong and raises
:class:`RtpParseError` with the exact reason; ``bytes(packet)`` writes it
back byte for byte. ``rtp_header`` is the send path's fast header builder.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

_FIXED = struct.Struct("!BBHII")
_EXT = struct.Struct("!HH")


class RtpParseError(ValueError):
    """A datagram that is not a valid RTP packet; the message says why."""


def rtp_header(payload_type: int, marker: bool, seq: int, timestamp: int, ssrc: int) -> bytes:
    """A 12-byte RTP header (version 2, no CSRC, no extension)."""
    return _FIXED.pack(0x80, (0x80 if marker else 0) | payload_type, seq, timestamp, ssrc)


def is_rtcp(data: bytes) -> bool:
    """RFC 5761 §4: packet types 192-223 in the second byte mean RTCP."""
    return len(data) >= 2 and 192 <= data[1] <= 223


@dataclass
class RtpPacket:
    """One RTP packet."""

    payload_type: int
    sequence_number: int
    timestamp: int
    ssrc: int
    payload: bytes = b""
    marker: bool = False
    csrc: list[int] = field(default_factory=list)
    extension_profile: int | None = None
    extension: bytes = b""
    padding: int = 0
    """Number of padding bytes (0 = no padding bit)."""

    @classmethod
    def parse(cls, data: bytes) -> RtpPacket:
        """Parse one datagram; raises :class:`RtpParseError`."""
        if len(data) < 12:
            raise RtpParseError(f"RTP packet too short: {len(data)} bytes, need at least 12")
        first, second, seq, ts, ssrc = _FIXED.unpack_from(data)
        if first >> 6 != 2:
            raise RtpParseError(f"RTP version {first >> 6}, expected 2")
        cc = first & 0x0F
        pos = 12 + 4 * cc
        if pos > len(data):
            raise RtpParseError(f"RTP CSRC count {cc} exceeds packet length {len(data)}")
        csrc = list(struct.unpack_from(f"!{cc}I", data, 12)) if cc else []
        profile = None
        ext = b""
        if first & 0x10:
            if pos + 4 > len(data):
                raise RtpParseError("RTP extension header exceeds packet length")
            profile, words = _EXT.unpack_from(data, pos)
            end = pos + 4 + 4 * words
            if end > len(data):
                raise RtpParseError(f"RTP extension of {words} words exceeds packet length")
            ext = data[pos + 4 : end]
            pos = end
        end = len(data)
        padding = 0
        if first & 0x20:
            padding = data[-1]
            if padding == 0 or pos + padding > end:
                raise RtpParseError(f"RTP padding length {padding} is invalid")
            end -= padding
        return cls(
            payload_type=second & 0x7F,
            sequence_number=seq,
            timestamp=ts,
            ssrc=ssrc,
            payload=data[pos:end],
            marker=bool(second & 0x80),
            csrc=csrc,
            extension_profile=profile,
            extension=ext,
            padding=padding,
        )

    def __bytes__(self) -> bytes:
        first = 0x80 | len(self.csrc)
        if self.padding:
            first |= 0x20
        if self.extension_profile is not None:
            first |= 0x10
        out = [
            _FIXED.pack(
                first,
                (0x80 if self.marker else 0) | self.payload_type,
                self.sequence_number,
                self.timestamp,
                self.ssrc,
            )
        ]
        if self.csrc:
            out.append(struct.pack(f"!{len(self.csrc)}I", *self.csrc))
        if self.extension_profile is not None:
            out.append(_EXT.pack(self.extension_profile, len(self.extension) // 4))
            out.append(self.extension)
        out.append(self.payload)
        if self.padding:
            out.append(b"\x00" * (self.padding - 1) + bytes([self.padding]))
        return b"".join(out)
