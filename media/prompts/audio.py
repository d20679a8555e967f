"""Load prompt audio from WAV files of any common format as 8 kHz int16 mono.

The stdlib ``wave`` module reads only integer PCM, so this reads the RIFF
chunks itself: PCM 8/16/24/32-bit, IEEE float 32/64-bit, G.711 A-law and
mu-law (format tags 6 and 7, as Asterisk and SIPp write them) and
WAVE_FORMAT_EXTENSIBLE wrapping any of those. Channels are averaged, and the
rate converted to 8 kHz.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from media.g711 import alaw_decode, ulaw_decode
from media.resample import resample

PCM, FLOAT, ALAW, ULAW, EXTENSIBLE = 1, 3, 6, 7, 0xFFFE
RATE = 8000


class AudioError(ValueError):
    """A file that is not usable audio; the message names the file and the fault."""


def _chunks(data: bytes, path: Path) -> dict[bytes, bytes]:
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise AudioError(f"{path}: not a RIFF/WAVE file")
    chunks: dict[bytes, bytes] = {}
    pos = 12
    while pos + 8 <= len(data):
        cid, size = struct.unpack_from("<4sI", data, pos)
        body = data[pos + 8 : pos + 8 + size]
        if cid == b"data" and len(body) < size:
            body = body[: len(body) - len(body) % 2]  # truncated recording: keep what is there
        chunks.setdefault(cid, body)
        pos += 8 + size + (size & 1)
    return chunks


def decode_wav(data: bytes, path: Path) -> tuple[np.ndarray, int]:
    """WAV bytes -> (float64 mono samples scaled to int16 range, sample rate)."""
    chunks = _chunks(data, path)
    fmt = chunks.get(b"fmt ")
    if fmt is None or len(fmt) < 16:
        raise AudioError(f"{path}: no valid 'fmt ' chunk")
    if b"data" not in chunks:
        raise AudioError(f"{path}: no 'data' chunk")
    tag, channels, rate, _, _block, bits = struct.unpack_from("<HHIIHH", fmt)
    if tag == EXTENSIBLE and len(fmt) >= 26:
        tag = struct.unpack_from("<H", fmt, 24)[0]
    if channels == 0:
        raise AudioError(f"{path}: zero channels")
    if rate == 0:
        raise AudioError(f"{path}: sample rate 0")
    raw = chunks[b"data"]
    width = max(1, bits // 8)
    usable = len(raw) - len(raw) % (width * channels)
    raw = raw[:usable]
    if tag == PCM and bits == 8:
        x = (np.frombuffer(raw, np.uint8).astype(np.float64) - 128.0) * 256.0
    elif tag == PCM and bits == 16:
        x = np.frombuffer(raw, "<i2").astype(np.float64)
    elif tag == PCM and bits == 24:
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        x = (np.where(v & 0x800000, v - (1 << 24), v) / 256.0).astype(np.float64)
    elif tag == PCM and bits == 32:
        x = np.frombuffer(raw, "<i4").astype(np.float64) / 65536.0
    elif tag == FLOAT and bits in (32, 64):
        x = np.frombuffer(raw, "<f4" if bits == 32 else "<f8").astype(np.float64) * 32767.0
    elif tag == ALAW and bits == 8:
        x = alaw_decode(raw).astype(np.float64)
    elif tag == ULAW and bits == 8:
        x = ulaw_decode(raw).astype(np.float64)
    else:
        raise AudioError(f"{path}: unsupported WAV format tag {tag} with {bits} bits per sample")
    if channels > 1:
        x = x.reshape(-1, channels).mean(axis=1)
    return x, rate


def load_audio(path: Path | str) -> np.ndarray:
    """Read a WAV file as 8 kHz int16 mono; raises :class:`AudioError`."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise AudioError(f"{p}: cannot read: {exc.strerror}") from None
    samples, rate = decode_wav(data, p)
    if samples.size == 0:
        raise AudioError(f"{p}: no audio samples")
    if rate != RATE:
        samples = resample(samples, rate, RATE)
    return np.clip(np.round(samples), -32768, 32767).astype(np.int16)
