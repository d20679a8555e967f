"""RTCP (RFC 3550 §6): SR, RR, SDES CNAME and BYE; compound packets; no I/O.

Wall-clock time for the NTP field is passed in by the caller.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

NTP_EPOCH_OFFSET = 2208988800  # seconds from 1900-01-01 to 1970-01-01

SR, RR, SDES, BYE = 200, 201, 202, 203
_HEADER = struct.Struct("!BBH")
_BLOCK = struct.Struct("!IB3sIIII")


class RtcpParseError(ValueError):
    """An RTCP datagram that does not parse; the message says why."""


def ntp_timestamp(unix_time: float) -> tuple[int, int]:
    """Unix time -> (NTP seconds, NTP fraction)."""
    seconds = int(unix_time) + NTP_EPOCH_OFFSET
    fraction = int((unix_time % 1.0) * (1 << 32)) & 0xFFFFFFFF
    return seconds & 0xFFFFFFFF, fraction


@dataclass
class ReportBlock:
    """One reception report (RFC 3550 §6.4.1)."""

    ssrc: int
    fraction_lost: int
    packets_lost: int
    highest_seq: int
    jitter: int
    lsr: int = 0
    dlsr: int = 0

    def pack(self) -> bytes:
        lost = self.packets_lost & 0xFFFFFF
        return _BLOCK.pack(
            self.ssrc,
            self.fraction_lost,
            lost.to_bytes(3, "big"),
            self.highest_seq,
            self.jitter,
            self.lsr,
            self.dlsr,
        )

    @classmethod
    def unpack(cls, data: bytes, pos: int) -> ReportBlock:
        ssrc, frac, lost, high, jitter, lsr, dlsr = _BLOCK.unpack_from(data, pos)
        lost_i = int.from_bytes(lost, "big")
        if lost_i & 0x800000:
            lost_i -= 1 << 24
        return cls(ssrc, frac, lost_i, high, jitter, lsr, dlsr)


@dataclass
class RtcpPacket:
    """One RTCP packet of a compound; fields used depend on ``packet_type``."""

    packet_type: int
    ssrc: int = 0
    ntp: tuple[int, int] = (0, 0)
    rtp_timestamp: int = 0
    packet_count: int = 0
    octet_count: int = 0
    reports: list[ReportBlock] = field(default_factory=list)
    cname: str = ""
    ssrcs: list[int] = field(default_factory=list)

    def __bytes__(self) -> bytes:
        if self.packet_type == SR:
            body = struct.pack(
                "!IIIIII",
                self.ssrc,
                self.ntp[0],
                self.ntp[1],
                self.rtp_timestamp,
                self.packet_count,
                self.octet_count,
            ) + b"".join(r.pack() for r in self.reports)
            count = len(self.reports)
        elif self.packet_type == RR:
            body = struct.pack("!I", self.ssrc) + b"".join(r.pack() for r in self.reports)
            count = len(self.reports)
        elif self.packet_type == SDES:
            cname = self.cname.encode()[:255]
            item = struct.pack("!IBB", self.ssrc, 1, len(cname)) + cname + b"\x00"
            item += b"\x00" * (-len(item) % 4)
            body, count = item, 1
        elif self.packet_type == BYE:
            body = b"".join(struct.pack("!I", s) for s in self.ssrcs)
            count = len(self.ssrcs)
        else:
            raise ValueError(f"cannot serialize RTCP packet type {self.packet_type}")
        return _HEADER.pack(0x80 | count, self.packet_type, len(body) // 4) + body


def parse_compound(data: bytes) -> list[RtcpPacket]:
    """Parse a compound RTCP datagram; unknown packet types are skipped."""
    out: list[RtcpPacket] = []
    pos = 0
    if len(data) < 4:
        raise RtcpParseError(f"RTCP packet too short: {len(data)} bytes")
    while pos < len(data):
        if pos + 4 > len(data):
            raise RtcpParseError(f"RTCP header truncated at byte {pos}")
        first, pt, words = _HEADER.unpack_from(data, pos)
        if first >> 6 != 2:
            raise RtcpParseError(f"RTCP version {first >> 6} at byte {pos}, expected 2")
        end = pos + 4 + 4 * words
        if end > len(data):
            raise RtcpParseError(f"RTCP length {words} at byte {pos} exceeds datagram")
        count = first & 0x1F
        body = data[pos + 4 : end]
        try:
            if pt == SR:
                v = struct.unpack_from("!IIIIII", body)
                reports = [ReportBlock.unpack(body, 24 + 24 * i) for i in range(count)]
                out.append(RtcpPacket(SR, v[0], (v[1], v[2]), v[3], v[4], v[5], reports))
            elif pt == RR:
                (ssrc,) = struct.unpack_from("!I", body)
                reports = [ReportBlock.unpack(body, 4 + 24 * i) for i in range(count)]
                out.append(RtcpPacket(RR, ssrc, reports=reports))
            elif pt == SDES and count:
                ssrc, kind, length = struct.unpack_from("!IBB", body)
                cname = body[6 : 6 + length].decode("utf-8", "replace") if kind == 1 else ""
                out.append(RtcpPacket(SDES, ssrc, cname=cname))
            elif pt == BYE:
                ssrcs = list(struct.unpack_from(f"!{count}I", body))
                out.append(RtcpPacket(BYE, ssrcs=ssrcs))
        except struct.error:
            raise RtcpParseError(f"RTCP packet type {pt} at byte {pos} is truncated") from None
        pos = end
    return out
