"""Checking and repairing the WAV files the recorder writes.

:class:`media.capture.StreamingWavWriter` rewrites the RIFF sizes after every
block, so a reader finds a valid file at any time. A process killed between
writing a block and rewriting the header (or killed while a block was half
written) leaves a header whose sizes disagree with the file: a *placeholder*
(0, or 0xFFFFFFFF as streaming writers use) or simply stale sizes.
:func:`repair_wav` rewrites the sizes from the file length, dropping a
trailing partial frame, so everything that reached the disk plays.

:func:`inspect_wav` is the pure part: it reads a header (bytes) and says what
the sizes should be for a given file length.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

__all__ = ["WavError", "WavLayout", "WavRepair", "empty_header", "inspect_wav", "repair_wav"]

_CANONICAL = struct.Struct("<4sI4s4sIHHIIHH4sI")


class WavError(ValueError):
    """A file that is not a repairable PCM WAV; the message names the file and the fault."""


@dataclass(frozen=True)
class WavLayout:
    """Where the audio of a WAV file lies, and what its header says about it."""

    channels: int
    rate: int
    bits: int
    data_offset: int
    """Byte offset of the first sample (just past the ``data`` chunk header)."""
    data_size_field: int
    """The ``data`` chunk size the header holds."""
    riff_size_field: int
    """The RIFF size the header holds."""
    file_size: int

    @property
    def block_align(self) -> int:
        return self.channels * self.bits // 8

    @property
    def frames_on_disk(self) -> int:
        """Whole frames actually present after the header."""
        return max(0, self.file_size - self.data_offset) // self.block_align

    @property
    def data_size(self) -> int:
        """The ``data`` size the file length supports (whole frames)."""
        return self.frames_on_disk * self.block_align

    @property
    def consistent(self) -> bool:
        """Whether the header sizes match the file exactly (nothing to repair)."""
        return (
            self.data_size_field == self.data_size
            and self.riff_size_field == self.data_offset - 8 + self.data_size
            and self.file_size == self.data_offset + self.data_size
        )


@dataclass(frozen=True)
class WavRepair:
    """What :func:`repair_wav` found and did."""

    path: Path
    frames: int
    """Frames in the file after the repair."""
    seconds: float
    header_frames: int
    """Frames the header claimed before the repair (placeholders give 0 or huge)."""
    dropped_bytes: int
    """Bytes of a partial trailing frame cut off."""
    repaired: bool
    """False when the header was already right."""


def inspect_wav(head: bytes, file_size: int, name: str = "<wav>") -> WavLayout:
    """The layout of a PCM WAV whose first bytes are ``head`` and whose length is
    ``file_size``. Walks the chunks up to ``data``; raises :class:`WavError`."""
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        raise WavError(f"{name}: not a RIFF/WAVE file (starts {head[:12]!r})")
    riff_size = struct.unpack_from("<I", head, 4)[0]
    pos = 12
    fmt: tuple[int, int, int, int] | None = None
    while pos + 8 <= len(head):
        chunk, size = struct.unpack_from("<4sI", head, pos)
        body = pos + 8
        if chunk == b"fmt ":
            if size < 16 or body + 16 > len(head):
                raise WavError(f"{name}: fmt chunk at byte {pos} is too short ({size} bytes)")
            fmt_tag, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", head, body)
            fmt = (fmt_tag, channels, rate, bits)
        elif chunk == b"data":
            if fmt is None:
                raise WavError(f"{name}: data chunk at byte {pos} comes before any fmt chunk")
            fmt_tag, channels, rate, bits = fmt
            if fmt_tag not in (1, 0xFFFE) or bits not in (8, 16, 24, 32) or channels < 1:
                raise WavError(
                    f"{name}: not integer PCM (format {fmt_tag}, {bits} bits, {channels} ch)"
                )
            return WavLayout(channels, rate, bits, body, size, riff_size, file_size)
        pos = body + size + (size & 1)
    raise WavError(f"{name}: no data chunk in the first {len(head)} bytes")


def repair_wav(path: Path) -> WavRepair:
    """Make the header of ``path`` match its length (in place; see module docstring).

    A file shorter than a header, or with no fmt/data chunk, raises
    :class:`WavError` (nothing is changed then).
    """
    size = path.stat().st_size
    with path.open("r+b") as fh:
        head = fh.read(4096)
        layout = inspect_wav(head, size, str(path))
        align = layout.block_align
        claimed = layout.data_size_field // align
        if layout.consistent:
            frames = layout.frames_on_disk
            return WavRepair(path, frames, frames / layout.rate, claimed, 0, False)
        dropped = size - layout.data_offset - layout.data_size
        if dropped > 0:
            fh.truncate(layout.data_offset + layout.data_size)
        data_size = layout.data_size
        fh.seek(4)
        fh.write(struct.pack("<I", layout.data_offset - 8 + data_size))
        fh.seek(layout.data_offset - 4)
        fh.write(struct.pack("<I", data_size))
        fh.flush()
        os.fsync(fh.fileno())
    frames = layout.frames_on_disk
    return WavRepair(path, frames, frames / layout.rate, claimed, max(0, dropped), True)


def empty_header(channels: int = 2, rate: int = 8000) -> bytes:
    """The 44-byte header of an empty 16-bit PCM WAV (for a file killed before its header)."""
    align = channels * 2
    return _CANONICAL.pack(
        b"RIFF", 36, b"WAVE", b"fmt ", 16, 1, channels, rate, rate * align, align, 16, b"data", 0
    )
