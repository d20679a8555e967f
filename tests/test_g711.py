"""G.711: decode tables from the standard's segment structure, encoders against
a per-sample transcription of the classic g711.c, and real PCMA speech."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from media.g711 import (
    ALAW_DECODE,
    ALAW_ENCODE,
    PCMA,
    PCMU,
    ULAW_DECODE,
    ULAW_ENCODE,
    UnknownCodec,
    alaw_decode,
    alaw_encode,
    codec_by_name,
    codec_by_payload_type,
    ulaw_decode,
    ulaw_encode,
)
from media.rtp.packet import RtpPacket
from tests.pcap import read_udp_payloads

G711A_PCAP = Path("/usr/share/sip-tester/g711a.pcap")
ALL_INT16 = np.arange(-32768, 32768, dtype=np.int32).astype(np.int16)


# --- decode values derived from the G.711 segment tables (not from the code) ---


def ulaw_reference_value(code: int) -> int:
    """G.711 Table 2 (mu-law), 14-bit magnitudes scaled to 16 bits.

    Segment s (0-7) of the 14-bit magnitude ends at 32 * 2**(s+1) - 33, i.e.
    31, 95, 223, ..., 8159; its 16 intervals are 2**(s+1) wide, except that the
    first interval of segment 0 is [0, 1) and decodes to 0. Decoded values are
    interval midpoints. The transmitted byte is the inverted character; a set
    sign bit (after inversion: clear) means positive.
    """
    char = ~code & 0xFF
    negative = bool(char & 0x80)
    seg = (char >> 4) & 7
    q = char & 0x0F
    if seg == 0:
        mag14 = 2 * q  # 0, 2, 4 ... 30: midpoints of [2q-1, 2q+1)
    else:
        seg_start = 32 * 2**seg - 33  # end of the previous segment
        step = 2 ** (seg + 1)
        mag14 = seg_start + q * step + step // 2
    value = 4 * mag14
    return -value if negative else value


def alaw_reference_value(code: int) -> int:
    """G.711 Table 1 (A-law), 12-bit magnitudes scaled to 16 bits.

    Segments 0 and 1 are 16 intervals of 1 (12-bit) each, segment s >= 2
    covers [2**(s+3), 2**(s+4)) in intervals of 2**(s-1); decoded values are
    interval midpoints. Even bits are inverted on the line (XOR 0x55); a set
    sign bit means positive.
    """
    char = code ^ 0x55
    positive = bool(char & 0x80)
    seg = (char >> 4) & 7
    q = char & 0x0F
    if seg <= 1:
        start, step = 16 * seg, 1.0
    else:
        start, step = 2 ** (seg + 3), 2.0 ** (seg - 1)
    mag12 = start + q * step + step / 2
    value = int(mag12 * 16)
    return value if positive else -value


def test_ulaw_decode_all_256_codes_match_the_segment_table() -> None:
    expected = np.array([ulaw_reference_value(c) for c in range(256)], dtype=np.int16)
    assert np.array_equal(ulaw_decode(bytes(range(256))), expected)
    # spot values everyone knows: 0xFF/0x7F are +-0, 0x80/0x00 the extremes
    assert [int(v) for v in ulaw_decode(b"\xff\x7f\x80\x00")] == [0, 0, 32124, -32124]


def test_alaw_decode_all_256_codes_match_the_segment_table() -> None:
    expected = np.array([alaw_reference_value(c) for c in range(256)], dtype=np.int16)
    assert np.array_equal(alaw_decode(bytes(range(256))), expected)
    assert [int(v) for v in alaw_decode(b"\xd5\x55\xaa\x2a")] == [8, -8, 32256, -32256]


# --- encoders against the classic Sun/ITU g711.c, one sample at a time -------

SEG_END = (0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF, 0x3FFF, 0x7FFF)


def search(value: int, table: tuple[int, ...]) -> int:
    for i, end in enumerate(table):
        if value <= end:
            return i
    return len(table)


def linear2ulaw(pcm_val: int) -> int:
    """g711.c linear2ulaw (BIAS 0x84, CLIP 32635), transcribed line by line."""
    bias, clip = 0x84, 32635
    if pcm_val < 0:
        pcm_val = -pcm_val
        mask = 0x7F
    else:
        mask = 0xFF
    if pcm_val > clip:
        pcm_val = clip
    pcm_val += bias
    seg = search(pcm_val, SEG_END)
    if seg >= 8:
        return 0x7F ^ mask
    uval = (seg << 4) | ((pcm_val >> (seg + 3)) & 0xF)
    return uval ^ mask


def linear2alaw(pcm_val: int) -> int:
    """g711.c linear2alaw, transcribed line by line."""
    seg_aend = (0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF)
    pcm_val = pcm_val >> 3
    if pcm_val >= 0:
        mask = 0xD5
    else:
        mask = 0x55
        pcm_val = -pcm_val - 1
    seg = search(pcm_val, seg_aend)
    if seg >= 8:
        return 0x7F ^ mask
    aval = seg << 4
    if seg < 2:
        aval |= (pcm_val >> 1) & 0xF
    else:
        aval |= (pcm_val >> seg) & 0xF
    return aval ^ mask


def test_ulaw_encode_all_65536_inputs_bit_exact_with_g711c() -> None:
    expected = bytes(linear2ulaw(int(s)) for s in ALL_INT16)
    assert ulaw_encode(ALL_INT16) == expected


def test_alaw_encode_all_65536_inputs_bit_exact_with_g711c() -> None:
    expected = bytes(linear2alaw(int(s)) for s in ALL_INT16)
    assert alaw_encode(ALL_INT16) == expected


def test_encode_known_values() -> None:
    pcm = np.array([0, -1, 32767, -32768, 1000, -1000], dtype=np.int16)
    # by hand: 1000 + 0x84 = 0x46C -> segment 3, step bits (0x46C >> 6) & 0xF = 1 -> 0x31;
    # inverted 0xCE (positive) / 0x4E (negative). A-law: 1000 >> 3 = 125 -> segment 2,
    # (125 >> 2) & 0xF = 15 -> 0x2F; XOR 0xD5 = 0xFA / (124 >> 2) & 0xF = 15, XOR 0x55 = 0x7A.
    assert ulaw_encode(pcm).hex() == "ff7f8000ce4e"
    assert alaw_encode(pcm).hex() == "d555aa2afa7a"


# --- properties ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("encode", "decode"), [(ulaw_encode, ulaw_decode), (alaw_encode, alaw_decode)]
)
def test_every_code_survives_decode_then_encode(
    encode: Callable[[np.ndarray], bytes], decode: Callable[[bytes], np.ndarray]
) -> None:
    codes = bytes(range(256))
    again = encode(decode(codes))
    if encode is ulaw_encode:  # 0x7F (-0) is the one code with a twin: it re-encodes as 0xFF (+0)
        assert again == codes.replace(b"\x7f", b"\xff")
    else:
        assert again == codes


@pytest.mark.parametrize(
    ("encode", "decode"), [(ulaw_encode, ulaw_decode), (alaw_encode, alaw_decode)]
)
def test_round_trip_error_bounded_and_monotonic(
    encode: Callable[[np.ndarray], bytes], decode: Callable[[bytes], np.ndarray]
) -> None:
    back = decode(encode(ALL_INT16)).astype(np.int32)
    x = ALL_INT16.astype(np.int32)
    assert np.all(np.diff(back) >= 0)  # quantiser is monotonic over the whole range
    inside = np.abs(x) < 32000  # beyond the last decision value the error is clipping
    # relative error of a logarithmic quantiser: at most 1/32 of the value + the smallest step
    assert np.all(np.abs(back - x)[inside] <= np.abs(x)[inside] / 32 + 16)


def test_tables_are_read_only_and_decoders_return_new_arrays() -> None:
    for table in (ULAW_ENCODE, ALAW_ENCODE, ULAW_DECODE, ALAW_DECODE):
        assert not table.flags.writeable
    out = ulaw_decode(b"\x00\x01")
    out[0] = 5  # the caller owns the result
    assert ULAW_DECODE[0] == -32124


def test_encode_refuses_non_int16_with_the_dtype() -> None:
    with pytest.raises(TypeError, match=r"^G\.711 encoding needs int16 samples, got float64$"):
        ulaw_encode(np.zeros(4))
    with pytest.raises(TypeError, match=r"^G\.711 encoding needs int16 samples, got int32$"):
        alaw_encode(np.zeros(4, dtype=np.int32))


def test_codec_lookup() -> None:
    assert codec_by_name("pcmu") is PCMU
    assert codec_by_name("PCMA") is PCMA
    assert codec_by_payload_type(0) is PCMU
    assert codec_by_payload_type(8) is PCMA
    assert (PCMU.name, PCMU.payload_type, PCMU.clock_rate) == ("PCMU", 0, 8000)
    assert (PCMA.name, PCMA.payload_type, PCMA.clock_rate) == ("PCMA", 8, 8000)
    assert (PCMU.silence_byte, PCMA.silence_byte) == (0xFF, 0xD5)
    with pytest.raises(UnknownCodec) as err:
        codec_by_name("G729")
    assert str(err.value) == "unknown codec 'G729': supported are PCMU, PCMA"
    with pytest.raises(UnknownCodec) as err:
        codec_by_payload_type(18)
    assert str(err.value) == "no G.711 codec for payload type 18: supported are 0 (PCMU), 8 (PCMA)"


# --- real audio ---------------------------------------------------------------


def test_real_pcma_capture_decodes_to_speech() -> None:
    packets = [RtpPacket.parse(d) for _, d in read_udp_payloads(G711A_PCAP)]
    assert {p.payload_type for p in packets} == {8}
    pcm = PCMA.decode(b"".join(p.payload for p in packets))
    assert pcm.dtype == np.int16
    assert len(pcm) == 236 * 240  # 236 packets of 30 ms
    x = pcm.astype(np.float64)
    rms_dbfs = 20 * np.log10(np.sqrt(np.mean(x**2)) / 32768)
    assert -35 < rms_dbfs < -15  # a normal speech level
    assert np.max(np.abs(x)) < 30000  # not clipped
    frames = np.sqrt(np.mean(x[: len(x) // 160 * 160].reshape(-1, 160) ** 2, axis=1)) + 1
    p5, p95 = np.percentile(frames, [5, 95])
    assert 20 * np.log10(p95 / p5) > 30  # syllables and pauses, not a steady signal
    spectrum = np.abs(np.fft.rfft(x))
    freqs = np.fft.rfftfreq(len(x), 1 / 8000)
    centroid = float((spectrum * freqs).sum() / spectrum.sum())
    assert 300 < centroid < 2000  # voice band
    # decoding the same bytes as mu-law (a mislabelled stream) would not look like this
    wrong = PCMU.decode(b"".join(p.payload for p in packets)).astype(np.float64)
    assert np.max(np.abs(wrong)) > 30000
