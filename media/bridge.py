"""Two calls' media joined: what one leg receives, the other sends.

A :class:`Bridge` connects two :class:`~media.session.MediaSession` objects
(a caller and an agent) through two :class:`AudioPipe` objects, one per
direction. Nothing here has a timer or a socket: the shared media clock
already ticks both sessions, so

* in the second phase of a tick (``after_tick``) each session pushes the
  frame it played out of its jitter buffer (silence when nothing came) into
  its outgoing pipe, in its own codec;
* in the first phase of the next tick the other session, when its player
  has nothing to say, pulls one frame of its own size from that pipe, re-coded
  to its own codec, and sends it.

G.711 is one byte per sample in both laws, so a pipe is a byte FIFO and
re-coding is one ``bytes.translate`` with a 256-entry table (the G.711
decode of each byte re-encoded in the other law: PCMU<->PCMA as a linear
round trip would do it, at no numpy cost). Different packet times on the two
legs (20 ms against 30 ms) are absorbed by the FIFO, which never holds more
than ``max_ms`` of audio (the oldest is dropped first), so latency stays
bounded at about one frame plus the jitter buffer.

The caller's session capture keeps recording as before: left what the caller
sent, right what we sent the caller, which while bridged is the agent's voice.
Digits are relayed by :meth:`Bridge.relay_digit` as RFC 4733 telephone-events
on the other leg (when that leg negotiated them), except while the caller's
session is in a secure pause (``capture_paused``: a card number being keyed):
then nothing is relayed, and the caller's audio reaches the agent as silence.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

from media.g711 import Codec, codec_by_name

if TYPE_CHECKING:
    from media.session import MediaSession

__all__ = ["AudioPipe", "Bridge", "transcode_table"]

SAMPLES_PER_MS = 8


@cache
def transcode_table(source: str, target: str) -> bytes:
    """The ``bytes.translate`` table that re-codes ``source``-law bytes as ``target``-law."""
    src: Codec = codec_by_name(source)
    dst: Codec = codec_by_name(target)
    return dst.encode(src.decode(bytes(range(256))))


class AudioPipe:
    """One direction of a bridge: G.711 bytes in the codec they arrived in,
    handed out re-coded in the codec asked for (see the module docstring)."""

    def __init__(self, max_ms: int = 80) -> None:
        self.max_samples = max_ms * SAMPLES_PER_MS
        self._buf = bytearray()
        self._codec: str | None = None
        self.pushed = 0
        """Samples pushed in."""
        self.pulled = 0
        """Samples handed out."""
        self.dropped = 0
        """Samples dropped to keep the latency bounded (or on a codec change)."""

    def __len__(self) -> int:
        return len(self._buf)

    def push(self, payload: bytes, codec: Codec) -> None:
        """Append one received frame coded with ``codec``."""
        buf = self._buf
        if codec.name != self._codec:
            self.dropped += len(buf)
            buf.clear()
            self._codec = codec.name
        buf += payload
        self.pushed += len(payload)
        excess = len(buf) - self.max_samples
        if excess > 0:
            del buf[:excess]
            self.dropped += excess

    def pull(self, samples: int, codec: Codec) -> bytes | None:
        """The next ``samples`` samples coded with ``codec``, None when fewer are buffered."""
        buf = self._buf
        if len(buf) < samples:
            return None
        data = bytes(buf[:samples])
        del buf[:samples]
        self.pulled += samples
        if self._codec is not None and self._codec != codec.name:
            data = data.translate(transcode_table(self._codec, codec.name))
        return data

    def clear(self) -> None:
        """Forget what is buffered."""
        self._buf.clear()


class Bridge:
    """Joins the media of ``a`` (the caller) and ``b`` (the agent) until :meth:`close`."""

    def __init__(self, a: MediaSession, b: MediaSession, *, max_ms: int = 80) -> None:
        self.a = a
        self.b = b
        self.a_to_b = AudioPipe(max_ms)
        self.b_to_a = AudioPipe(max_ms)
        a.relay_out = self.a_to_b
        b.relay_in = self.a_to_b
        b.relay_out = self.b_to_a
        a.relay_in = self.b_to_a
        self.digits_relayed = 0
        self.closed = False

    def relay_digit(self, digit: str, *, to_b: bool = True, duration_ms: int = 120) -> bool:
        """Send ``digit`` as RFC 4733 on ``b`` (the agent; ``to_b=False``: on ``a``).
        False when that leg negotiated no telephone-event, the bridge is closed, or
        the caller's session is in a secure pause (PCI: keys are never relayed)."""
        if self.closed or self.a.capture_paused:
            return False
        target = self.b if to_b else self.a
        sent = target.send_digit(digit, duration_ms)
        if sent:
            self.digits_relayed += 1
        return sent

    def close(self) -> None:
        """Undo the joins (idempotent); each session goes back to its own player."""
        if self.closed:
            return
        self.closed = True
        for session, pipe_in, pipe_out in (
            (self.a, self.b_to_a, self.a_to_b),
            (self.b, self.a_to_b, self.b_to_a),
        ):
            if session.relay_in is pipe_in:
                session.relay_in = None
            if session.relay_out is pipe_out:
                session.relay_out = None
