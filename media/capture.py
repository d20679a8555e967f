"""Capture of a call's received and sent audio, for the recorder.

The media session hands over batches of frames (what the caller sent us,
what we sent the caller), time-aligned because both come from the same
ticks, either decoded (:meth:`CallCapture.add`) or still G.711-coded
(:meth:`CallCapture.add_coded`). :class:`CallCapture` passes stereo PCM
blocks (left: caller, right: engine/agent) to every attached sink; when
every sink takes coded audio (``write_coded``, :class:`CodedSink`) the
batches go to them as they are, so the recorder decodes in its storage
process and the event loop never does (a 300-call engine decoded and
interleaved 15,000 frames a second only for the recordings).

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

from media.g711 import codec_by_name

RATE = 8000


class CaptureSink(Protocol):
    """Receives stereo int16 blocks, shape ``(n, 2)``: caller left, engine right."""

    def write(self, block: np.ndarray) -> None: ...

    def close(self) -> None: ...


Spans = tuple[tuple[int, int], ...]
"""Sample ranges ``[start, end)`` of a coded batch that must be digital silence
once decoded, on both channels (a secure pause)."""


class CodedSink(CaptureSink, Protocol):
    """A sink that also takes G.711 as it was on the wire: ``rx`` and ``tx``
    equally long byte strings of ``codec`` ("PCMU"/"PCMA"), one byte a
    sample; ``silent`` the ranges to zero after decoding (:func:`decode_coded`)."""

    def write_coded(self, codec: str, rx: bytes, tx: bytes, silent: Spans) -> None: ...


def decode_coded(codec: str, rx: bytes, tx: bytes, silent: Spans = ()) -> np.ndarray:
    """A coded batch as the stereo int16 block a PCM sink gets, shape ``(n, 2)``."""
    decoder = codec_by_name(codec)
    block = np.stack((decoder.decode(rx), decoder.decode(tx)), axis=1)
    for start, end in silent:
        block[start:end] = 0
    return block


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
    """Collects aligned rx/tx audio and flushes it to its sinks.

    ``add(rx, tx)`` takes int16 mono chunks of the same length (silence where
    nothing was received or sent); ``add_coded(codec, rx, tx, silent)`` takes
    G.711 bytes. What is pending is flushed once ``flush_samples`` are
    pending (default one second) and on ``close()``. :attr:`wants_pcm` tells
    the media session whether it must decode: not when every sink takes
    coded audio.
    """

    def __init__(self, sinks: list[CaptureSink] | None = None, flush_samples: int = RATE) -> None:
        self.sinks: list[CaptureSink] = list(sinks or [])
        self.flush_samples = flush_samples
        self._rx: list[np.ndarray] = []
        self._tx: list[np.ndarray] = []
        self._coded: list[tuple[str, bytes, bytes, Spans]] = []
        self._pending = 0
        self.samples = 0
        self.closed = False

    @property
    def wants_pcm(self) -> bool:
        """True when some sink only takes PCM blocks (no ``write_coded``)."""
        return any(not hasattr(sink, "write_coded") for sink in self.sinks)

    def add(self, rx: np.ndarray, tx: np.ndarray) -> None:
        """Append decoded audio (int16, ``rx`` and ``tx`` equally long)."""
        if self.closed:
            return
        self._flush_coded()  # in order, should a caller mix the two
        self._rx.append(rx)
        self._tx.append(tx)
        self._pending += len(rx)
        if self._pending >= self.flush_samples:
            self.flush()

    def add_coded(self, codec: str, rx: bytes, tx: bytes, silent: Spans = ()) -> None:
        """Append G.711 audio (``codec`` "PCMU"/"PCMA", ``rx`` and ``tx`` equally
        long; ``silent``: sample ranges to zero once decoded)."""
        if self.closed:
            return
        if self.wants_pcm:  # some sink needs PCM: decode here after all
            block = decode_coded(codec, rx, tx, silent)
            self.add(block[:, 0], block[:, 1])
            return
        self._flush_pcm()
        self._coded.append((codec, rx, tx, silent))
        self._pending += len(rx)
        if self._pending >= self.flush_samples:
            self.flush()

    def flush(self) -> None:
        """Write what is pending to every sink."""
        self._flush_pcm()
        self._flush_coded()

    def _flush_pcm(self) -> None:
        if not self._rx:
            return
        block = np.stack((np.concatenate(self._rx), np.concatenate(self._tx)), axis=1)
        self._rx.clear()
        self._tx.clear()
        self._pending = 0
        self.samples += block.shape[0]
        for sink in self.sinks:
            sink.write(block)

    def _flush_coded(self) -> None:
        if not self._coded:
            return
        batches, self._coded = self._coded, []
        self._pending = 0
        # Consecutive batches of one codec go out as one (a re-INVITE may switch codec).
        runs: list[tuple[str, list[bytes], list[bytes], list[tuple[int, int]]]] = []
        length = 0
        for codec, rx, tx, silent in batches:
            if not runs or runs[-1][0] != codec:
                runs.append((codec, [], [], []))
                length = 0
            _, rxs, txs, spans = runs[-1]
            rxs.append(rx)
            txs.append(tx)
            spans.extend((length + start, length + end) for start, end in silent)
            length += len(rx)
        for codec, rxs, txs, spans in runs:
            rx_all, tx_all = b"".join(rxs), b"".join(txs)
            self.samples += len(rx_all)
            for sink in self.sinks:
                coded: CodedSink = sink  # type: ignore[assignment]  # wants_pcm was False
                coded.write_coded(codec, rx_all, tx_all, tuple(spans))

    def close(self) -> None:
        """Flush and close every sink (idempotent)."""
        if self.closed:
            return
        self.flush()
        self.closed = True
        for sink in self.sinks:
            sink.close()
