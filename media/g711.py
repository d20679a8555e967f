"""G.711 mu-law (PCMU) and A-law (PCMA), bit-exact with the ITU-T reference.

The encoders are the standard truncating ones (Sun ``g711.c``, ITU-T G.191):
mu-law adds the 0x84 bias after clipping at 32635, A-law inverts even bits with
0x55. Both are computed once into 65,536-entry tables indexed by the int16
sample, and decoding uses 256-entry tables, so a 20 ms frame is one numpy
``take`` each way. Tables are read-only module constants.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

_SEG_END = np.array([0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF, 0x3FFF, 0x7FFF])


def _build_ulaw_encode() -> np.ndarray:
    pcm = np.arange(-32768, 32768, dtype=np.int32)
    mask = np.where(pcm < 0, 0x7F, 0xFF)
    mag = np.minimum(np.abs(pcm), 32635) + 0x84
    seg = np.searchsorted(_SEG_END, mag, side="left")  # first segment whose end >= mag
    code = (seg << 4) | ((mag >> (seg + 3)) & 0xF)
    return (code ^ mask).astype(np.uint8)


def _build_alaw_encode() -> np.ndarray:
    pcm = np.arange(-32768, 32768, dtype=np.int32) >> 3  # A-law works on 13 bits
    mask = np.where(pcm >= 0, 0xD5, 0x55)
    mag = np.where(pcm >= 0, pcm, -pcm - 1)
    seg = np.searchsorted(_SEG_END >> 3, mag, side="left")  # 0x1F, 0x3F ... 0xFFF
    shift = np.where(seg < 2, 1, seg)
    code = (seg << 4) | ((mag >> shift) & 0xF)
    code = np.where(seg >= 8, 0x7F, code)
    return (code ^ mask).astype(np.uint8)


def _build_ulaw_decode() -> np.ndarray:
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    t = (((u & 0x0F) << 3) + 0x84) << ((u & 0x70) >> 4)
    return np.where(u & 0x80, 0x84 - t, t - 0x84).astype(np.int16)


def _build_alaw_decode() -> np.ndarray:
    a = np.arange(256, dtype=np.int32) ^ 0x55
    t = (a & 0x0F) << 4
    seg = (a & 0x70) >> 4
    t = np.where(seg == 0, t + 8, np.where(seg == 1, t + 0x108, (t + 0x108) << (seg - 1)))
    return np.where(a & 0x80, t, -t).astype(np.int16)


def _frozen(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


ULAW_ENCODE = _frozen(_build_ulaw_encode())
ALAW_ENCODE = _frozen(_build_alaw_encode())
ULAW_DECODE = _frozen(_build_ulaw_decode())
ALAW_DECODE = _frozen(_build_alaw_decode())


def _index(pcm: np.ndarray) -> np.ndarray:
    return pcm.astype(np.int16, copy=False).astype(np.int32) + 32768


def ulaw_encode(pcm: np.ndarray) -> bytes:
    """int16 samples -> mu-law bytes."""
    return ULAW_ENCODE[_index(pcm)].tobytes()


def alaw_encode(pcm: np.ndarray) -> bytes:
    """int16 samples -> A-law bytes."""
    return ALAW_ENCODE[_index(pcm)].tobytes()


def ulaw_decode(data: bytes) -> np.ndarray:
    """mu-law bytes -> int16 samples."""
    return ULAW_DECODE[np.frombuffer(data, dtype=np.uint8)]


def alaw_decode(data: bytes) -> np.ndarray:
    """A-law bytes -> int16 samples."""
    return ALAW_DECODE[np.frombuffer(data, dtype=np.uint8)]


@dataclass(frozen=True)
class Codec:
    """A static-payload-type G.711 codec."""

    name: str
    payload_type: int
    encode: Callable[[np.ndarray], bytes]
    decode: Callable[[bytes], np.ndarray]
    clock_rate: int = 8000

    @property
    def silence_byte(self) -> int:
        return int((ULAW_ENCODE if self.name == "PCMU" else ALAW_ENCODE)[32768])


PCMU = Codec("PCMU", 0, ulaw_encode, ulaw_decode)
PCMA = Codec("PCMA", 8, alaw_encode, alaw_decode)
_BY_NAME = {"PCMU": PCMU, "PCMA": PCMA}
_BY_PT = {0: PCMU, 8: PCMA}


def codec_by_name(name: str) -> Codec:
    """``"PCMU"``/``"PCMA"`` (case-insensitive) -> :class:`Codec`; KeyError names the choices."""
    try:
        return _BY_NAME[name.upper()]
    except KeyError:
        raise KeyError(f"unknown codec {name!r}: supported are PCMU, PCMA") from None


def codec_by_payload_type(pt: int) -> Codec:
    """0 -> PCMU, 8 -> PCMA."""
    try:
        return _BY_PT[pt]
    except KeyError:
        raise KeyError(f"no static G.711 codec for payload type {pt}") from None
