"""Framing SIP messages on a byte stream (TCP) by Content-Length (RFC 3261 §18.3).

``StreamParser.feed_raw`` returns complete message frames as bytes (the UA
parses them) and ``b""`` for each RFC 5626 double-CRLF keep-alive ping, which
the transport answers with a single CRLF. A missing or invalid
Content-Length, or a header block larger than ``max_size``, raises
``ValueError``: the stream cannot be resynchronised and must be closed.
"""

from __future__ import annotations

import re

_CL = re.compile(rb"^(?:content-length|l)[ \t]*:[ \t]*(\S*)[ \t]*$", re.IGNORECASE | re.MULTILINE)


class StreamParser:
    """Accumulates TCP bytes and cuts them into SIP messages."""

    def __init__(self, max_size: int = 65535) -> None:
        self.max_size = max_size
        self._buffer = b""

    def feed_raw(self, data: bytes) -> list[bytes]:
        """Append ``data``; return every complete frame (``b""`` for a ping)."""
        self._buffer += data
        frames: list[bytes] = []
        while True:
            buf = self._buffer
            if buf.startswith(b"\r\n\r\n"):
                frames.append(b"")
                self._buffer = buf[4:]
                continue
            stripped = buf.lstrip(b"\r\n")
            if len(stripped) != len(buf):
                if not stripped and len(buf) < 4:
                    return frames  # maybe the start of a ping
                self._buffer = buf = stripped
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > self.max_size:
                    raise ValueError(f"SIP header block over {self.max_size} bytes without end")
                return frames
            head = buf[:end]
            values = _CL.findall(head)
            if not values:
                raise ValueError("SIP message on a stream without Content-Length")
            if len(set(values)) != 1 or not values[0].isdigit():
                raise ValueError(f"invalid Content-Length on a stream: {values!r}")
            total = end + 4 + int(values[0])
            if total > self.max_size:
                raise ValueError(f"SIP message of {total} bytes exceeds {self.max_size}")
            if len(buf) < total:
                return frames
            frames.append(buf[:total])
            self._buffer = buf[total:]
