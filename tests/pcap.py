"""Read UDP payloads out of classic libpcap files (test helper, no dependencies).

Only what the captures in /usr/share/sip-tester and tshark's output need:

* classic pcap (not pcapng), either byte order, micro- or nanosecond stamps;
* link types Ethernet (1, with 802.1Q/802.1ad VLAN tags), raw IPv4 (101, 228),
  Linux cooked capture v1 (113) and v2 (276);
* IPv4 with options; UDP. Everything else (IPv6, TCP, ARP, non-first IP
  fragments) is skipped, not an error.

A file that is not a classic pcap, or a record that is cut short, raises
:class:`PcapError` naming the file and the byte offset.
"""

from __future__ import annotations

import struct
from pathlib import Path

__all__ = ["PcapError", "read_udp_datagrams", "read_udp_payloads"]

_MAGIC = {
    b"\xd4\xc3\xb2\xa1": ("<", 1e-6),
    b"\xa1\xb2\xc3\xd4": (">", 1e-6),
    b"\x4d\x3c\xb2\xa1": ("<", 1e-9),
    b"\xa1\xb2\x3c\x4d": (">", 1e-9),
}
_LINK_ETHERNET = 1
_LINK_RAW = (101, 228)
_LINK_SLL = 113
_LINK_SLL2 = 276
_ETHERTYPE_IPV4 = 0x0800
_ETHERTYPE_VLAN = (0x8100, 0x88A8)
_IPPROTO_UDP = 17

Datagram = tuple[float, tuple[str, int], tuple[str, int], bytes]


class PcapError(ValueError):
    """The file is not a readable classic pcap; the message says where."""


def _ip_payload(frame: bytes, link: int) -> bytes | None:
    """The IPv4 packet inside one link-layer frame, or None for anything else."""
    if link == _LINK_ETHERNET:
        pos = 12
        ethertype = int.from_bytes(frame[pos : pos + 2], "big")
        while ethertype in _ETHERTYPE_VLAN:
            pos += 4
            ethertype = int.from_bytes(frame[pos : pos + 2], "big")
        pos += 2
    elif link == _LINK_SLL:
        ethertype = int.from_bytes(frame[14:16], "big")
        pos = 16
    elif link == _LINK_SLL2:
        ethertype = int.from_bytes(frame[0:2], "big")
        pos = 20
    elif link in _LINK_RAW:
        ethertype, pos = _ETHERTYPE_IPV4, 0
    else:
        return None
    if ethertype != _ETHERTYPE_IPV4:
        return None
    return frame[pos:]


def _udp(ip: bytes) -> Datagram | None:
    """(0.0, src, dst, payload) for an unfragmented-or-first-fragment IPv4/UDP packet."""
    if len(ip) < 20 or ip[0] >> 4 != 4:
        return None
    ihl = (ip[0] & 0x0F) * 4
    total = int.from_bytes(ip[2:4], "big")
    fragment_offset = int.from_bytes(ip[6:8], "big") & 0x1FFF
    if ip[9] != _IPPROTO_UDP or fragment_offset or len(ip) < ihl + 8:
        return None
    ip = ip[: max(total, ihl + 8)]
    sport, dport, length = struct.unpack_from("!HHH", ip, ihl)
    payload = ip[ihl + 8 : ihl + max(length, 8)]
    src = (".".join(str(b) for b in ip[12:16]), sport)
    dst = (".".join(str(b) for b in ip[16:20]), dport)
    return 0.0, src, dst, payload


def read_udp_datagrams(path: str | Path) -> list[Datagram]:
    """Every IPv4/UDP datagram in ``path``: ``(time, (src ip, port), (dst ip, port), payload)``.

    ``time`` is the capture timestamp in seconds (float), in file order.
    """
    data = Path(path).read_bytes()
    if len(data) < 24 or data[:4] not in _MAGIC:
        raise PcapError(f"{path}: not a classic pcap file (magic {data[:4].hex() or 'missing'})")
    endian, tick = _MAGIC[data[:4]]
    link = struct.unpack_from(endian + "I", data, 20)[0] & 0x0FFFFFFF
    record = struct.Struct(endian + "IIII")
    out: list[Datagram] = []
    pos = 24
    while pos < len(data):
        if pos + record.size > len(data):
            raise PcapError(f"{path}: record header at byte {pos} is truncated")
        sec, frac, caplen, _ = record.unpack_from(data, pos)
        start = pos + record.size
        if start + caplen > len(data):
            raise PcapError(f"{path}: record at byte {pos} needs {caplen} bytes, file ends")
        ip = _ip_payload(data[start : start + caplen], link)
        udp = _udp(ip) if ip is not None else None
        if udp is not None:
            out.append((sec + frac * tick, udp[1], udp[2], udp[3]))
        pos = start + caplen
    return out


def read_udp_payloads(path: str | Path) -> list[tuple[float, bytes]]:
    """Every IPv4/UDP payload in ``path`` as ``(capture time in seconds, payload)``."""
    return [(when, payload) for when, _, _, payload in read_udp_datagrams(path)]
