"""Framing SIP messages on a byte stream (TCP) by Content-Length (RFC 3261 §18.3).

``StreamParser.feed`` takes bytes as they arrive and returns the messages
completed by them, parsed. Between messages it accepts CRLF keep-alives: a
double CRLF is an RFC 5626 §3.5.1 ping, counted in ``pings`` so that the
transport answers each with a single CRLF (the pong); a lone CRLF (a pong, or
the CRLFs RFC 3261 §7.5 lets precede a start line) is skipped.

Errors come in two kinds:

* a message that is framed (its Content-Length is readable) but malformed is
  not returned; its :class:`~media.sip.errors.SipParseError` (with
  ``partial`` for a 400) is put in ``rejected`` and the stream goes on;
* a framing error (no or an unreadable Content-Length, a header block or a
  message over ``max_size``) raises :class:`StreamFramingError`: nothing
  after it can be trusted and the transport must close the connection. The
  exception carries the messages completed before it in the same chunk; the
  parser then stays broken and raises it again on every call.

``feed_raw`` is the same framing returning raw frames (``b""`` for a ping)
for a transport that hands bytes to the UA, which parses them.
"""

from __future__ import annotations

from media.sip.errors import SipParseError
from media.sip.message import MAX_MESSAGE, Request, Response, parse_message


class StreamFramingError(SipParseError):
    """The byte stream lost its framing; the connection must be closed.

    ``frames``/``messages`` hold what was completed before the error in the
    chunk that caused it (raw, and parsed when raised by ``feed``).
    """

    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(reason, status)
        self.frames: list[bytes] = []
        self.messages: list[Request | Response] = []


def content_length(head: bytes) -> int:
    """The Content-Length of a header block (start line included) for framing.

    Raises :class:`StreamFramingError` if it is missing, repeated with
    different values, or not a number.
    """
    lines = head.decode("latin-1").replace("\r\n", "\n").split("\n")
    values: list[str] = []
    for i in range(1, len(lines)):
        name, colon, value = lines[i].partition(":")
        if not colon or name[:1] in (" ", "\t"):
            continue
        if name.rstrip(" \t").lower() not in ("content-length", "l"):
            continue
        j = i + 1
        while j < len(lines) and lines[j][:1] in (" ", "\t"):  # folded value
            value += " " + lines[j]
            j += 1
        values.append(value.strip())
    if not values:
        raise StreamFramingError(
            "Content-Length is mandatory on a stream transport (RFC 3261 §18.3)"
        )
    if len(set(values)) > 1:
        shown = ", ".join(sorted({v[:12] for v in values}))
        raise StreamFramingError(f"Content-Length: conflicting values {shown}")
    raw = values[0]
    if not raw.isascii() or not raw.isdigit() or len(raw.lstrip("0")) > 10:
        raise StreamFramingError(f"Content-Length: invalid value {raw[:20]!r}")
    return int(raw)


class StreamParser:
    """Cuts one connection's bytes into SIP messages (sans I/O).

    ``max_size`` bounds a whole message (header block plus body).
    After each call, ``pings`` is the number of double-CRLF pings it saw and
    ``rejected`` the parse errors of framed but malformed messages.
    """

    def __init__(self, max_size: int = MAX_MESSAGE) -> None:
        self.max_size = max_size
        self.pings = 0
        self.rejected: list[SipParseError] = []
        self._buffer = bytearray()
        self._scan = 0  # where to resume looking for the blank line
        self._frame: tuple[int, int] | None = None  # (body start, total) once the head is read
        self._error: StreamFramingError | None = None

    @property
    def buffered(self) -> int:
        """Bytes received but not yet part of a complete message."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Request | Response]:
        """Append ``data``; return the messages it completes, in order."""
        try:
            frames = self.feed_raw(data)
        except StreamFramingError as exc:
            exc.messages = self._parse(exc.frames)
            raise
        return self._parse(frames)

    def feed_raw(self, data: bytes) -> list[bytes]:
        """Append ``data``; return every complete frame (``b""`` for each ping)."""
        self.pings = 0
        self.rejected = []
        if self._error is not None:
            raise self._error
        self._buffer += data
        frames: list[bytes] = []
        try:
            while (frame := self._next()) is not None:
                if not frame:
                    self.pings += 1
                frames.append(frame)
        except StreamFramingError as exc:
            exc.frames = frames
            self._error = exc
            self._buffer.clear()
            raise
        return frames

    def _parse(self, frames: list[bytes]) -> list[Request | Response]:
        out: list[Request | Response] = []
        for frame in frames:
            if frame:
                try:
                    out.append(parse_message(frame, stream=True, max_size=self.max_size))
                except SipParseError as exc:
                    self.rejected.append(exc)
        return out

    def _next(self) -> bytes | None:
        buf = self._buffer
        if self._frame is None:
            while buf[:1] in (b"\r", b"\n"):
                if buf.startswith(b"\r\n\r\n"):
                    del buf[:4]
                    return b""
                if buf in (b"\r", b"\r\n", b"\r\n\r"):
                    return None  # perhaps the start of a ping
                del buf[: 2 if buf.startswith(b"\r\n") else 1]
                self._scan = 0
            if not buf:
                return None
            crlf = buf.find(b"\r\n\r\n", self._scan)
            lf = buf.find(b"\n\n", self._scan)
            if crlf < 0 and lf < 0:
                if len(buf) > self.max_size:
                    raise StreamFramingError(
                        f"header block longer than {self.max_size} bytes", status=413
                    )
                self._scan = max(0, len(buf) - 3)
                return None
            end, body = (lf, lf + 2) if lf >= 0 and (crlf < 0 or lf < crlf) else (crlf, crlf + 4)
            total = body + content_length(bytes(buf[:end]))
            if total > self.max_size:
                raise StreamFramingError(
                    f"message of {total} bytes exceeds {self.max_size}", status=413
                )
            self._frame = (body, total)
        total = self._frame[1]
        if len(buf) < total:
            return None
        frame = bytes(buf[:total])
        del buf[:total]
        self._frame = None
        self._scan = 0
        return frame
