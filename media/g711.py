"""G.711 mu-law (PCMU) and A-law (PCMA), bit-exact with the ITU-T reference.

The encoders are the standard truncating ones (Sun ``g711.c``, ITU-T G.191
``g711.c``): mu-law clips the magnitude at 32635 and adds the 0x84 bias,
A-law drops the three low bits and inverts the even bits with 0x55. Both are
computed once into 65,536-entry tables indexed by the int16 sample's bit
pattern (``pcm.view(uint16)``), and decoding uses 256-entry tables, so a
20 ms frame costs one numpy ``take`` each way and no arithmetic. The tables
are read-only module constants.

Contract: encoders take a 1-D ``int16`` array and return one byte per sample;
decoders take bytes (or any buffer) and return a new ``int16`` array.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = [
    "ALAW_DECODE",
    "ALAW_ENCODE",
    "PCMA",
    "PCMU",
    "ULAW_DECODE",
    "ULAW_ENCODE",
    "Codec",
    "UnknownCodec",
    "alaw_decode",
    "alaw_encode",
    "codec_by_name",
    "codec_by_payload_type",
    "ulaw_decode",
    "ulaw_encode",
]

# Upper ends of the eight segments of the 16-bit magnitude (g711.c seg_end).
_SEG_END = np.array([0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF, 0x3FFF, 0x7FFF])
_ULAW_BIAS = 0x84
_ULAW_CLIP = 32635


def _all_samples() -> np.ndarray:
    """Every int16 value, ordered by its uint16 bit pattern (the table index)."""
    return np.arange(65536, dtype=np.uint32).astype(np.uint16).view(np.int16).astype(np.int32)


def _build_ulaw_encode() -> np.ndarray:
    pcm = _all_samples()
    mask = np.where(pcm < 0, 0x7F, 0xFF)
    mag = np.minimum(np.abs(pcm), _ULAW_CLIP) + _ULAW_BIAS
    seg = np.searchsorted(_SEG_END, mag, side="left")  # first segment whose end >= mag
    code = (seg << 4) | ((mag >> (seg + 3)) & 0xF)
    return (code ^ mask).astype(np.uint8)


def _build_alaw_encode() -> np.ndarray:
    pcm = _all_samples() >> 3  # A-law quantises 13 bits
    mask = np.where(pcm >= 0, 0xD5, 0x55)
    mag = np.where(pcm >= 0, pcm, -pcm - 1)
    seg = np.searchsorted(_SEG_END >> 3, mag, side="left")  # ends 0x1F, 0x3F ... 0xFFF
    shift = np.where(seg < 2, 1, seg)
    code = np.where(seg >= 8, 0x7F, (seg << 4) | ((mag >> shift) & 0xF))
    return (code ^ mask).astype(np.uint8)


def _build_ulaw_decode() -> np.ndarray:
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    t = (((u & 0x0F) << 3) + _ULAW_BIAS) << ((u & 0x70) >> 4)
    return np.where(u & 0x80, _ULAW_BIAS - t, t - _ULAW_BIAS).astype(np.int16)


def _build_alaw_decode() -> np.ndarray:
    a = np.arange(256, dtype=np.int32) ^ 0x55
    t = (a & 0x0F) << 4
    seg = (a & 0x70) >> 4
    t = np.where(seg == 0, t + 8, np.where(seg == 1, t + 0x108, (t + 0x108) << (seg - 1)))
    return np.where(a & 0x80, t, -t).astype(np.int16)


def _frozen(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


#: uint16 bit pattern of an int16 sample -> mu-law byte.
ULAW_ENCODE = _frozen(_build_ulaw_encode())
#: uint16 bit pattern of an int16 sample -> A-law byte.
ALAW_ENCODE = _frozen(_build_alaw_encode())
#: mu-law byte -> int16 sample.
ULAW_DECODE = _frozen(_build_ulaw_decode())
#: A-law byte -> int16 sample.
ALAW_DECODE = _frozen(_build_alaw_decode())


def _index(pcm: np.ndarray) -> np.ndarray:
    if pcm.dtype != np.int16:
        raise TypeError(f"G.711 encoding needs int16 samples, got {pcm.dtype}")
    return pcm.view(np.uint16)


def ulaw_encode(pcm: np.ndarray) -> bytes:
    """int16 samples -> mu-law bytes (one per sample). TypeError for other dtypes."""
    return ULAW_ENCODE.take(_index(pcm)).tobytes()


def alaw_encode(pcm: np.ndarray) -> bytes:
    """int16 samples -> A-law bytes (one per sample). TypeError for other dtypes."""
    return ALAW_ENCODE.take(_index(pcm)).tobytes()


def ulaw_decode(data: bytes) -> np.ndarray:
    """mu-law bytes -> a new int16 array (every byte value is valid)."""
    return ULAW_DECODE.take(np.frombuffer(data, dtype=np.uint8))


def alaw_decode(data: bytes) -> np.ndarray:
    """A-law bytes -> a new int16 array (every byte value is valid)."""
    return ALAW_DECODE.take(np.frombuffer(data, dtype=np.uint8))


class UnknownCodec(LookupError):
    """A codec name or payload type this module does not implement."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class Codec:
    """A G.711 codec as SDP and RTP see it: static payload type, 8 kHz, 1 byte/sample."""

    name: str
    """Encoding name in ``a=rtpmap``: ``"PCMU"`` or ``"PCMA"``."""
    payload_type: int
    """Static RTP payload type (RFC 3551): 0 or 8."""
    encode: Callable[[np.ndarray], bytes]
    """int16 samples -> payload bytes."""
    decode: Callable[[bytes], np.ndarray]
    """Payload bytes -> int16 samples."""
    clock_rate: int = 8000
    """RTP timestamp units per second."""

    @property
    def silence_byte(self) -> int:
        """The byte that encodes a zero sample (0xFF for PCMU, 0xD5 for PCMA)."""
        return self.encode(np.zeros(1, dtype=np.int16))[0]


PCMU = Codec("PCMU", 0, ulaw_encode, ulaw_decode)
PCMA = Codec("PCMA", 8, alaw_encode, alaw_decode)
_BY_NAME = {"PCMU": PCMU, "PCMA": PCMA}
_BY_PT = {0: PCMU, 8: PCMA}


def codec_by_name(name: str) -> Codec:
    """``"PCMU"``/``"PCMA"`` (any case) -> :class:`Codec`; else :class:`UnknownCodec`."""
    codec = _BY_NAME.get(name.upper())
    if codec is None:
        raise UnknownCodec(f"unknown codec {name!r}: supported are PCMU, PCMA")
    return codec


def codec_by_payload_type(pt: int) -> Codec:
    """0 -> PCMU, 8 -> PCMA; any other payload type -> :class:`UnknownCodec`."""
    codec = _BY_PT.get(pt)
    if codec is None:
        raise UnknownCodec(
            f"no G.711 codec for payload type {pt}: supported are 0 (PCMU), 8 (PCMA)"
        )
    return codec
