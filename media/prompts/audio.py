"""Load prompt audio from WAV files of any common format as 8 kHz int16 mono.

Integer PCM (8-bit unsigned, 16, 24, 32-bit), the format of the Asterisk
sounds and of most tools, is read with the stdlib ``wave`` module. ``wave``
rejects every other format tag, so for IEEE float (tag 3), G.711 A-law and
mu-law (tags 6 and 7, as Asterisk and SIPp write them) and
WAVE_FORMAT_EXTENSIBLE (0xFFFE, what sox writes for 24/32-bit and float) a
small RIFF chunk reader below takes over; it also gives the precise error
when ``wave`` refuses a broken file. No library at hand does both: scipy's
``wavfile`` has no G.711 and the ``wave`` module no float.

Channels are averaged and the rate converted to 8 kHz (media.resample).
A data chunk whose declared size is the "unknown length" placeholder that
sox and espeak-ng write to a pipe (0x7ffff000, rounded down to whole frames:
0x7fffefff for 24-bit) runs to the end of the file; any other chunk that
runs past the end is a truncated file.
"""

from __future__ import annotations

import io
import struct
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from media.g711 import alaw_decode, ulaw_decode
from media.resample import resample

__all__ = ["RATE", "AudioError", "WavFormat", "decode_wav", "load_audio", "wav_complete"]

RATE = 8000
PCM, FLOAT, ALAW, ULAW, EXTENSIBLE = 1, 3, 6, 7, 0xFFFE
FORMAT_NAMES = {
    PCM: "PCM",
    2: "MS ADPCM",
    FLOAT: "IEEE float",
    ALAW: "A-law",
    ULAW: "mu-law",
    0x11: "IMA ADPCM",
    0x31: "GSM 6.10",
    0x55: "MPEG layer 3",
    EXTENSIBLE: "extensible",
}
#: Declared data sizes from here up mean "until the end of the file" (2 GiB - 64 KiB).
STREAMING_SIZE = 0x7FFF0000
_NOTHING = ", no audio samples"
#: KSDATAFORMAT_SUBTYPE_* GUIDs are the format tag followed by these 14 bytes.
_GUID_TAIL = bytes.fromhex("000000001000800000aa00389b71")


class AudioError(ValueError):
    """A file that is not usable audio; the message names the file and the fault."""


@dataclass(frozen=True)
class WavFormat:
    """The fields of a ``fmt `` chunk that decoding needs."""

    tag: int
    channels: int
    rate: int
    width: int
    """Bytes per sample of one channel."""


def load_audio(path: Path | str) -> np.ndarray:
    """Read a WAV file as 8 kHz int16 mono samples.

    Accepts PCM 8/16/24/32-bit, float 32/64-bit, A-law and mu-law, plain or
    WAVE_FORMAT_EXTENSIBLE, any channel count and any rate. Raises
    :class:`AudioError` ("<path>: <what is wrong>") for an unreadable file,
    a file that is not RIFF/WAVE, a truncated chunk, a missing ``fmt ``/``data``
    chunk, zero channels or rate, an unsupported format tag, or no samples.
    """
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise AudioError(f"{p}: cannot read: {exc.strerror or exc}") from None
    samples, rate = decode_wav(data, str(p))
    if rate != RATE:
        samples = resample(samples, rate, RATE)
    return np.clip(np.rint(samples), -32768, 32767).astype(np.int16)


def decode_wav(data: bytes, source: str = "<bytes>") -> tuple[np.ndarray, int]:
    """WAV bytes -> (float64 mono samples on the int16 scale, sample rate).

    ``source`` names the file in :class:`AudioError` messages.
    """
    read = _read_with_wave(data, source)
    fmt, raw = read if read is not None else _read_riff(data, source)
    frame = fmt.channels * fmt.width
    raw = raw[: len(raw) - len(raw) % frame]
    if not raw:
        raise AudioError(f"{source}: empty: no audio samples in the data chunk")
    x = _to_float(fmt, raw, source)
    if fmt.channels > 1:
        x = x.reshape(-1, fmt.channels).mean(axis=1)
    return x, fmt.rate


def _read_with_wave(data: bytes, source: str) -> tuple[WavFormat, bytes] | None:
    """Integer PCM through the stdlib; None when ``wave`` refuses the file."""
    try:
        with wave.open(io.BytesIO(data), "rb") as w:
            channels, width, rate, frames = (
                w.getnchannels(),
                w.getsampwidth(),
                w.getframerate(),
                w.getnframes(),
            )
            raw = w.readframes(frames)
    except (wave.Error, EOFError, struct.error):
        return None
    if rate == 0:
        raise AudioError(f"{source}: sample rate 0")
    declared = frames * channels * width
    if len(raw) < declared and declared < STREAMING_SIZE:
        raise AudioError(
            f"{source}: truncated{_NOTHING if not raw else ''}: the data chunk declares "
            f"{declared} bytes, the file holds {len(raw)}"
        )
    return WavFormat(PCM, channels, rate, width), raw


def _read_riff(data: bytes, source: str) -> tuple[WavFormat, bytes]:
    """Walk the RIFF chunks: the ``fmt `` and ``data`` chunks, with checks."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        head = data[:4]
        what = "big-endian RIFX is not supported" if head == b"RIFX" else "not a RIFF/WAVE file"
        raise AudioError(f"{source}: {what} (starts with {data[:12]!r})")
    fmt_body: bytes | None = None
    raw: bytes | None = None
    pos = 12
    while pos + 8 <= len(data) and (fmt_body is None or raw is None):
        cid, size = struct.unpack_from("<4sI", data, pos)
        start = pos + 8
        left = len(data) - start
        if cid == b"data" and size >= STREAMING_SIZE:
            size = left
        if size > left:
            name = cid.decode("latin-1")
            raise AudioError(
                f"{source}: truncated{_NOTHING if cid == b'data' and not left else ''}: "
                f"chunk {name!r} at offset {pos} declares {size} bytes, the file holds {left}"
            )
        if cid == b"fmt ":
            fmt_body = data[start : start + size]
        elif cid == b"data":
            raw = data[start : start + size]
        pos = start + size + (size & 1)
    if fmt_body is None:
        raise AudioError(f"{source}: no valid 'fmt ' chunk: there is none")
    if raw is None:
        raise AudioError(f"{source}: no 'data' chunk")
    return _parse_fmt(fmt_body, source), raw


def _parse_fmt(body: bytes, source: str) -> WavFormat:
    if len(body) < 16:
        raise AudioError(
            f"{source}: no valid 'fmt ' chunk: it has {len(body)} bytes, at least 16 needed"
        )
    tag, channels, rate, _byte_rate, block_align, bits = struct.unpack_from("<HHIIHH", body)
    if tag == EXTENSIBLE:
        if len(body) < 40:
            raise AudioError(
                f"{source}: WAVE_FORMAT_EXTENSIBLE 'fmt ' chunk has {len(body)} bytes, 40 needed"
            )
        if body[26:40] != _GUID_TAIL:
            raise AudioError(f"{source}: unknown WAVE_FORMAT_EXTENSIBLE sub-format")
        tag = struct.unpack_from("<H", body, 24)[0]
    if channels == 0:
        raise AudioError(f"{source}: zero channels")
    if rate == 0:
        raise AudioError(f"{source}: sample rate 0")
    if tag not in (PCM, FLOAT, ALAW, ULAW):
        name = FORMAT_NAMES.get(tag, "unknown")
        raise AudioError(
            f"{source}: unsupported WAV format tag {tag} (0x{tag:04x}, {name}); "
            "supported: PCM, IEEE float, A-law, mu-law"
        )
    width = block_align // channels if block_align else -(-bits // 8)
    if width == 0 or block_align % channels:
        raise AudioError(
            f"{source}: block align {block_align} does not fit {channels} channels of "
            f"{bits}-bit samples"
        )
    return WavFormat(tag, channels, rate, width)


def _to_float(fmt: WavFormat, raw: bytes, source: str) -> np.ndarray:
    """Interleaved samples -> float64 on the int16 scale (full scale = 32768)."""
    tag, width = fmt.tag, fmt.width
    if tag == PCM and width == 1:
        return (np.frombuffer(raw, np.uint8).astype(np.float64) - 128.0) * 256.0
    if tag == PCM and width == 2:
        return np.frombuffer(raw, "<i2").astype(np.float64)
    if tag == PCM and width == 3:
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        return np.where(v & 0x800000, v - (1 << 24), v).astype(np.float64) / 256.0
    if tag == PCM and width == 4:
        return np.frombuffer(raw, "<i4").astype(np.float64) / 65536.0
    if tag == FLOAT and width in (4, 8):
        x = np.frombuffer(raw, "<f4" if width == 4 else "<f8").astype(np.float64)
        return np.nan_to_num(x, nan=0.0, posinf=1.0, neginf=-1.0) * 32768.0
    if tag in (ALAW, ULAW) and width == 1:
        decode = alaw_decode if tag == ALAW else ulaw_decode
        return decode(raw).astype(np.float64)
    name = FORMAT_NAMES[tag]
    raise AudioError(f"{source}: {name} with {width * 8}-bit samples is not supported")


def wav_complete(path: Path) -> bool:
    """Whether ``path`` is a fully written WAV: the RIFF size matches the file
    size and a data chunk with at least one sample lies inside the file."""
    try:
        data = path.read_bytes()
    except OSError:
        return False
    if len(data) < 44 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return False
    if struct.unpack_from("<I", data, 4)[0] + 8 != len(data):
        return False
    pos = 12
    while pos + 8 <= len(data):
        cid, size = struct.unpack_from("<4sI", data, pos)
        if cid == b"data":
            return 0 < size <= len(data) - pos - 8
        pos += 8 + size + (size & 1)
    return False
