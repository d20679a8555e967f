"""RTCP (RFC 3550 §6): SR, RR, SDES, BYE and compound packets; no I/O, no clock.

Each packet type is a dataclass with ``parse(data)`` (one packet, header
included) and ``__bytes__``; :func:`parse_compound` splits a datagram and
dispatches, :func:`serialize_compound` joins. Packet types this module does
not model (APP, feedback, XR) come back as :class:`RtcpUnknown` with their
body intact, so a compound always round-trips.

Wall-clock time for the NTP fields is passed in by the caller as Unix seconds
(:func:`ntp_from_unix`), never read here.

Errors: :class:`RtcpParseError` (a ``ValueError``) names the packet type and
byte offset; nothing else escapes :func:`parse_compound`, whatever the bytes.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

__all__ = [
    "BYE",
    "NTP_EPOCH_OFFSET",
    "RR",
    "SDES",
    "SDES_CNAME",
    "SR",
    "Bye",
    "ReceiverReport",
    "ReportBlock",
    "RtcpPacket",
    "RtcpParseError",
    "RtcpUnknown",
    "SdesChunk",
    "SenderReport",
    "SourceDescription",
    "ntp_from_unix",
    "ntp_middle32",
    "parse_compound",
    "serialize_compound",
    "unix_from_ntp",
]

NTP_EPOCH_OFFSET = 2208988800
"""Seconds from 1900-01-01 (NTP era 0) to 1970-01-01 (Unix epoch)."""

SR, RR, SDES, BYE = 200, 201, 202, 203
SDES_CNAME = 1

_HEADER = struct.Struct("!BBH")
_SENDER_INFO = struct.Struct("!IQIII")
_BLOCK = struct.Struct("!IIIIII")
_SSRC = struct.Struct("!I")


class RtcpParseError(ValueError):
    """An RTCP datagram that does not parse; the message says what and where."""


def ntp_from_unix(unix_time: float) -> int:
    """Unix seconds -> 64-bit NTP timestamp (32.32 fixed point, era 0 wraps in 2036)."""
    whole = int(unix_time // 1)
    fraction = int((unix_time - whole) * (1 << 32))
    return (((whole + NTP_EPOCH_OFFSET) & 0xFFFFFFFF) << 32) | (fraction & 0xFFFFFFFF)


def unix_from_ntp(ntp: int) -> float:
    """64-bit NTP timestamp -> Unix seconds (era 0)."""
    return (ntp >> 32) - NTP_EPOCH_OFFSET + (ntp & 0xFFFFFFFF) / (1 << 32)


def ntp_middle32(ntp: int) -> int:
    """The middle 32 bits of an NTP timestamp: the LSR field of a report block."""
    return (ntp >> 16) & 0xFFFFFFFF


def _header(first: int, packet_type: int, body_len: int) -> bytes:
    return _HEADER.pack(first, packet_type, body_len // 4)


@dataclass(slots=True)
class ReportBlock:
    """One reception report (RFC 3550 §6.4.1); 24 bytes on the wire."""

    ssrc: int
    fraction_lost: int
    """Lost fraction since the previous report, in 1/256 (0-255)."""
    packets_lost: int
    """Cumulative number lost, signed 24 bits (duplicates can make it negative)."""
    highest_seq: int
    """Extended highest sequence number received (cycles << 16 | seq)."""
    jitter: int
    """Interarrival jitter in timestamp units."""
    lsr: int = 0
    """Middle 32 bits of the NTP time of the last SR from ``ssrc`` (0: none yet)."""
    dlsr: int = 0
    """Delay since that SR in 1/65536 s."""

    SIZE: ClassVar[int] = 24

    def __bytes__(self) -> bytes:
        lost = max(-0x800000, min(self.packets_lost, 0x7FFFFF)) & 0xFFFFFF
        return _BLOCK.pack(
            self.ssrc,
            (self.fraction_lost & 0xFF) << 24 | lost,
            self.highest_seq,
            self.jitter,
            self.lsr,
            self.dlsr,
        )

    @classmethod
    def parse(cls, data: bytes, pos: int = 0) -> ReportBlock:
        """The block at ``data[pos:pos + 24]`` (the caller checks the length)."""
        ssrc, word, high, jitter, lsr, dlsr = _BLOCK.unpack_from(data, pos)
        lost = word & 0xFFFFFF
        if lost & 0x800000:
            lost -= 1 << 24
        return cls(ssrc, word >> 24, lost, high, jitter, lsr, dlsr)


def _blocks(data: bytes, pos: int, count: int, end: int, what: str) -> list[ReportBlock]:
    if pos + count * ReportBlock.SIZE > end:
        raise RtcpParseError(
            f"RTCP {what}: {count} report blocks need "
            f"{pos + count * ReportBlock.SIZE} bytes, packet has {end}"
        )
    return [ReportBlock.parse(data, pos + i * ReportBlock.SIZE) for i in range(count)]


def _check_header(data: bytes, expected_type: int, name: str) -> tuple[int, int]:
    """(report count, end of packet without padding) for a single packet."""
    if len(data) < 4:
        raise RtcpParseError(f"RTCP {name} too short: {len(data)} bytes, need at least 4")
    first, packet_type, words = _HEADER.unpack_from(data)
    if first >> 6 != 2:
        raise RtcpParseError(f"RTCP {name}: version {first >> 6}, expected 2")
    if packet_type != expected_type:
        raise RtcpParseError(f"RTCP packet type {packet_type} is not {name} ({expected_type})")
    if 4 + 4 * words != len(data):
        raise RtcpParseError(
            f"RTCP {name}: length field says {4 + 4 * words} bytes, packet has {len(data)}"
        )
    end = len(data)
    if first & 0x20:
        padding = data[-1]
        if padding == 0 or padding > end - 4:
            raise RtcpParseError(
                f"RTCP {name}: padding length {padding} is invalid for a {end - 4}-byte body"
            )
        end -= padding
    return first & 0x1F, end


@dataclass(slots=True)
class SenderReport:
    """SR (RFC 3550 §6.4.1): our sending statistics plus reception reports."""

    ssrc: int
    ntp_timestamp: int
    """64-bit NTP time of this report (see :func:`ntp_from_unix`)."""
    rtp_timestamp: int
    """The same instant in the stream's RTP timestamp units."""
    packet_count: int
    octet_count: int
    reports: list[ReportBlock] = field(default_factory=list)
    extension: bytes = b""
    """Profile-specific extension after the report blocks (kept for round trips)."""

    packet_type: ClassVar[int] = SR

    @classmethod
    def parse(cls, data: bytes) -> SenderReport:
        """One SR packet, header included."""
        count, end = _check_header(data, SR, "SR")
        if end < 28:
            raise RtcpParseError(f"RTCP SR: header and sender info need 28 bytes, packet has {end}")
        ssrc, ntp, rtp_ts, packets, octets = _SENDER_INFO.unpack_from(data, 4)
        reports = _blocks(data, 28, count, end, "SR")
        return cls(ssrc, ntp, rtp_ts, packets, octets, reports, data[28 + 24 * count : end])

    def __bytes__(self) -> bytes:
        body = (
            _SENDER_INFO.pack(
                self.ssrc,
                self.ntp_timestamp & 0xFFFFFFFFFFFFFFFF,
                self.rtp_timestamp & 0xFFFFFFFF,
                self.packet_count & 0xFFFFFFFF,
                self.octet_count & 0xFFFFFFFF,
            )
            + b"".join(bytes(r) for r in self.reports)
            + self.extension
        )
        return _header(0x80 | _count(self.reports, "SR"), SR, len(body)) + body


@dataclass(slots=True)
class ReceiverReport:
    """RR (RFC 3550 §6.4.2): reception reports from a receiver that sent nothing."""

    ssrc: int
    reports: list[ReportBlock] = field(default_factory=list)
    extension: bytes = b""

    packet_type: ClassVar[int] = RR

    @classmethod
    def parse(cls, data: bytes) -> ReceiverReport:
        """One RR packet, header included."""
        count, end = _check_header(data, RR, "RR")
        if end < 8:
            raise RtcpParseError(f"RTCP RR: header needs 8 bytes, packet has {end}")
        (ssrc,) = _SSRC.unpack_from(data, 4)
        reports = _blocks(data, 8, count, end, "RR")
        return cls(ssrc, reports, data[8 + 24 * count : end])

    def __bytes__(self) -> bytes:
        body = _SSRC.pack(self.ssrc) + b"".join(bytes(r) for r in self.reports) + self.extension
        return _header(0x80 | _count(self.reports, "RR"), RR, len(body)) + body


def _count(items: list[ReportBlock] | list[int] | list[SdesChunk], what: str) -> int:
    if len(items) > 31:
        raise ValueError(f"RTCP {what} can carry at most 31 entries, got {len(items)}")
    return len(items)


@dataclass(slots=True)
class SdesChunk:
    """One SDES chunk: a source and its items as ``(type, value)`` pairs."""

    ssrc: int
    items: list[tuple[int, bytes]] = field(default_factory=list)

    @property
    def cname(self) -> str | None:
        """The CNAME item decoded as UTF-8 (invalid bytes replaced), or None."""
        for kind, value in self.items:
            if kind == SDES_CNAME:
                return value.decode("utf-8", "replace")
        return None


@dataclass(slots=True)
class SourceDescription:
    """SDES (RFC 3550 §6.5). ``SourceDescription.with_cname(ssrc, name)`` builds ours."""

    chunks: list[SdesChunk] = field(default_factory=list)

    packet_type: ClassVar[int] = SDES

    @classmethod
    def with_cname(cls, ssrc: int, cname: str) -> SourceDescription:
        """One chunk with one CNAME item (truncated to 255 bytes of UTF-8)."""
        return cls([SdesChunk(ssrc, [(SDES_CNAME, cname.encode()[:255])])])

    @classmethod
    def parse(cls, data: bytes) -> SourceDescription:
        """One SDES packet, header included."""
        count, end = _check_header(data, SDES, "SDES")
        chunks: list[SdesChunk] = []
        pos = 4
        for index in range(count):
            if pos + 4 > end:
                raise RtcpParseError(f"RTCP SDES: chunk {index} at offset {pos} is truncated")
            (ssrc,) = _SSRC.unpack_from(data, pos)
            pos += 4
            items: list[tuple[int, bytes]] = []
            while True:
                if pos >= end:
                    raise RtcpParseError(
                        f"RTCP SDES: chunk {index} has no end of items before offset {end}"
                    )
                kind = data[pos]
                if kind == 0:  # end of list, then pad to the next 32-bit boundary
                    pos = (pos + 4) & ~3
                    break
                if pos + 2 > end or pos + 2 + data[pos + 1] > end:
                    raise RtcpParseError(
                        f"RTCP SDES: chunk {index}, item type {kind} at offset {pos} is truncated"
                    )
                length = data[pos + 1]
                items.append((kind, data[pos + 2 : pos + 2 + length]))
                pos += 2 + length
            chunks.append(SdesChunk(ssrc, items))
        return cls(chunks)

    def __bytes__(self) -> bytes:
        body = bytearray()
        for chunk in self.chunks:
            body += _SSRC.pack(chunk.ssrc)
            for kind, value in chunk.items:
                if not 0 < kind < 256 or len(value) > 255:
                    raise ValueError(
                        f"SDES item type {kind} with {len(value)} bytes cannot be sent"
                    )
                body += bytes((kind, len(value))) + value
            body += bytes(4 - len(body) % 4)  # null terminator + padding to 32 bits
        return _header(0x80 | _count(self.chunks, "SDES"), SDES, len(body)) + bytes(body)


@dataclass(slots=True)
class Bye:
    """BYE (RFC 3550 §6.6): the sources that leave, and an optional reason."""

    ssrcs: list[int] = field(default_factory=list)
    reason: bytes = b""

    packet_type: ClassVar[int] = BYE

    @classmethod
    def parse(cls, data: bytes) -> Bye:
        """One BYE packet, header included."""
        count, end = _check_header(data, BYE, "BYE")
        if 4 + 4 * count > end:
            raise RtcpParseError(
                f"RTCP BYE: {count} SSRCs need {4 + 4 * count} bytes, packet has {end}"
            )
        ssrcs = list(struct.unpack_from(f"!{count}I", data, 4))
        pos = 4 + 4 * count
        reason = b""
        if pos < end:
            length = data[pos]
            if pos + 1 + length > end:
                raise RtcpParseError(
                    f"RTCP BYE: reason of {length} bytes at offset {pos} exceeds the packet"
                )
            reason = data[pos + 1 : pos + 1 + length]
        return cls(ssrcs, reason)

    def __bytes__(self) -> bytes:
        body = b"".join(_SSRC.pack(s) for s in self.ssrcs)
        if self.reason:
            if len(self.reason) > 255:
                raise ValueError(f"BYE reason of {len(self.reason)} bytes: at most 255 fit")
            text = bytes((len(self.reason),)) + self.reason
            body += text + bytes(-len(text) % 4)
        return _header(0x80 | _count(self.ssrcs, "BYE"), BYE, len(body)) + body


@dataclass(slots=True)
class RtcpUnknown:
    """A packet type this module does not model (APP, RTPFB, PSFB, XR...), kept verbatim."""

    packet_type: int
    count: int
    body: bytes

    def __bytes__(self) -> bytes:
        return _header(0x80 | (self.count & 0x1F), self.packet_type, len(self.body)) + self.body


RtcpPacket = SenderReport | ReceiverReport | SourceDescription | Bye | RtcpUnknown
_PARSERS: dict[int, Callable[[bytes], RtcpPacket]] = {
    SR: SenderReport.parse,
    RR: ReceiverReport.parse,
    SDES: SourceDescription.parse,
    BYE: Bye.parse,
}


def parse_compound(data: bytes) -> list[RtcpPacket]:
    """Split a (compound) RTCP datagram into packets; :class:`RtcpParseError` if invalid.

    Checks per RFC 3550 A.2: version 2 everywhere, lengths that add up to the
    datagram, padding only on the last packet. Reduced-size RTCP (RFC 5506, a
    lone SDES or BYE) is accepted too.
    """
    size = len(data)
    if size < 4:
        raise RtcpParseError(f"RTCP datagram too short: {size} bytes, need at least 4")
    out: list[RtcpPacket] = []
    pos = 0
    while pos < size:
        if pos + 4 > size:
            raise RtcpParseError(f"RTCP header at byte {pos} is truncated: {size - pos} bytes left")
        first, packet_type, words = _HEADER.unpack_from(data, pos)
        if first >> 6 != 2:
            raise RtcpParseError(f"RTCP version {first >> 6} at byte {pos}, expected 2")
        end = pos + 4 + 4 * words
        if end > size:
            raise RtcpParseError(
                f"RTCP packet type {packet_type} at byte {pos}: length {words} words "
                f"needs {end - pos} bytes, {size - pos} left"
            )
        if first & 0x20:
            if end != size:
                raise RtcpParseError(
                    f"RTCP packet type {packet_type} at byte {pos}: padding bit set "
                    "on a packet that is not the last"
                )
            padding = data[end - 1]
            if padding == 0 or padding > end - pos - 4:
                raise RtcpParseError(
                    f"RTCP packet type {packet_type} at byte {pos}: padding length {padding} "
                    f"is invalid for a {4 * words}-byte body"
                )
        packet = data[pos:end]
        parser = _PARSERS.get(packet_type)
        if parser is None:
            pad = packet[-1] if first & 0x20 else 0
            out.append(RtcpUnknown(packet_type, first & 0x1F, packet[4 : len(packet) - pad]))
        else:
            try:
                out.append(parser(packet))
            except RtcpParseError as err:
                raise RtcpParseError(f"{err} (packet {len(out)} at byte {pos})") from None
        pos = end
    return out


def serialize_compound(packets: list[RtcpPacket]) -> bytes:
    """Concatenate packets into one datagram (RFC 3550 §6.1: SR/RR first, then SDES)."""
    return b"".join(bytes(p) for p in packets)
