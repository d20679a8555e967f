"""Capture of a call's received and sent audio, for the recorder.

The media session hands over one decoded frame pair per tick (what the caller
sent us, what we sent the caller), time-aligned because both come from the
same tick. :class:`CallCapture` batches them and passes stereo PCM blocks
(left: caller, right: engine/agent) to every attached sink.

:class:`StreamingWavWriter` is the default sink: a WAV file whose RIFF sizes are
rewritten after every block, so a reader (or a crash) always finds a valid
file holding everything up to the last flush. Hand-written because the
stdlib ``wave`` module only fixes the header on ``close()``.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import BinaryIO, Protocol

import numpy as np

RATE = 8000


class CaptureSink(Protocol):
    """Receives stereo int16 blocks, shape ``(n, 2)``: caller left, engine right."""

    def write(self, block: np.ndarray) -> None: ...

    def close(self) -> None: ...


class StreamingWavWriter:
    """A 16-bit PCM WAV written incrementally with valid sizes after each write."""

    HEADER = struct.Struct("<4sI4s4sIHHIIHH4sI")

    def __init__(self, path: Path, channels: int = 2, rate: int = RATE) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.channels = channels
        self.rate = rate
        self.frames = 0
        self._fh: BinaryIO | None = path.open("wb")
        self._write_header()

    def _write_header(self) -> None:
        assert self._fh is not None
        data_bytes = self.frames * self.channels * 2
        block_align = self.channels * 2
        header = self.HEADER.pack(
            b"RIFF",
            36 + data_bytes,
            b"WAVE",
            b"fmt ",
            16,
            1,
            self.channels,
            self.rate,
            self.rate * block_align,
            block_align,
            16,
            b"data",
            data_bytes,
        )
        self._fh.seek(0)
        self._fh.write(header)
        self._fh.seek(0, 2)

    def write(self, block: np.ndarray) -> None:
        """Append ``block`` (``(n, channels)`` int16) and fix the header sizes."""
        if self._fh is None:
            raise ValueError(f"{self.path}: write after close")
        data = np.ascontiguousarray(block, dtype="<i2")
        self._fh.write(data.tobytes())
        self.frames += data.shape[0]
        self._write_header()
        self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


class CallCapture:
    """Collects aligned rx/tx frames and flushes stereo blocks to its sinks.

    ``add(rx, tx)`` takes int16 mono chunks of the same length (silence where
    nothing was received or sent). Blocks are flushed once ``flush_samples``
    are pending (default one second) and on ``close()``.
    """

    def __init__(self, sinks: list[CaptureSink] | None = None, flush_samples: int = RATE) -> None:
        self.sinks: list[CaptureSink] = list(sinks or [])
        self.flush_samples = flush_samples
        self._rx: list[np.ndarray] = []
        self._tx: list[np.ndarray] = []
        self._pending = 0
        self.samples = 0
        self.closed = False

    def add(self, rx: np.ndarray, tx: np.ndarray) -> None:
        if self.closed:
            return
        self._rx.append(rx)
        self._tx.append(tx)
        self._pending += len(rx)
        if self._pending >= self.flush_samples:
            self.flush()

    def flush(self) -> None:
        """Write what is pending to every sink."""
        if not self._rx:
            return
        block = np.stack((np.concatenate(self._rx), np.concatenate(self._tx)), axis=1)
        self._rx.clear()
        self._tx.clear()
        self._pending = 0
        self.samples += block.shape[0]
        for sink in self.sinks:
            sink.write(block)

    def close(self) -> None:
        """Flush and close every sink (idempotent)."""
        if self.closed:
            return
        self.flush()
        self.closed = True
        for sink in self.sinks:
            sink.close()
