"""Write RTP streams into classic pcap files that SIPp's ``play_pcap_audio`` plays.

Tests use it to send audio the built-in pcaps do not have (in-band DTMF
tones between Asterisk prompts, spoken sentences). Ethernet/IPv4/UDP framing
with correct lengths; SIPp rewrites the addresses and keeps the timing.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from media.g711 import codec_by_name

PCAP_HEADER = struct.Struct("<IHHiIII")
RECORD_HEADER = struct.Struct("<IIII")


def _ipv4_header(payload_len: int) -> bytes:
    total = 20 + payload_len
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        total,
        0,
        0,
        64,
        17,
        0,
        bytes([127, 0, 0, 1]),
        bytes([127, 0, 0, 1]),
    )
    words = struct.unpack("!10H", header)
    csum = sum(words)
    while csum > 0xFFFF:
        csum = (csum & 0xFFFF) + (csum >> 16)
    return header[:10] + struct.pack("!H", ~csum & 0xFFFF) + header[12:]


def write_pcap(
    path: Path, packets: Iterable[tuple[float, bytes]], sport: int = 6000, dport: int = 6002
) -> None:
    """Write UDP ``(time, payload)`` packets as an Ethernet pcap."""
    with path.open("wb") as fh:
        fh.write(PCAP_HEADER.pack(0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for when, payload in packets:
            udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
            frame = b"\x00" * 12 + b"\x08\x00" + _ipv4_header(len(udp)) + udp
            sec = int(when)
            usec = round((when - sec) * 1_000_000)
            fh.write(RECORD_HEADER.pack(sec, usec, len(frame), len(frame)))
            fh.write(frame)


def rtp_packets(
    pcm: np.ndarray,
    codec: str = "PCMU",
    ptime_ms: int = 20,
    ssrc: int = 0x1234ABCD,
    start: float = 1.0,
) -> list[tuple[float, bytes]]:
    """Cut 8 kHz int16 audio into RTP packets of ``codec`` every ``ptime_ms``."""
    c = codec_by_name(codec)
    samples = 8 * ptime_ms
    n = len(pcm) // samples
    out = []
    for i in range(n):
        payload = c.encode(pcm[i * samples : (i + 1) * samples])
        header = struct.pack(
            "!BBHII", 0x80, (0x80 if i == 0 else 0) | c.payload_type, i & 0xFFFF, i * samples, ssrc
        )
        out.append((start + i * ptime_ms / 1000.0, header + payload))
    return out
