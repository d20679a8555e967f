"""Call capture: aligned stereo blocks, and a WAV that is valid after every write."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from media.capture import CallCapture, StreamingWavWriter, decode_coded
from media.g711 import alaw_decode, alaw_encode


def _read(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getframerate(), w.getsampwidth()) == (2, 8000, 2)
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, 2)


def test_wav_is_readable_after_each_flush_without_close(tmp_path: Path) -> None:
    path = tmp_path / "call.wav"
    writer = StreamingWavWriter(path)
    capture = CallCapture([writer], flush_samples=320)
    rx = np.arange(160, dtype=np.int16)
    tx = -np.arange(160, dtype=np.int16)
    capture.add(rx, tx)
    assert _read(path).shape == (0, 2)  # nothing flushed yet, but a valid file
    capture.add(rx, tx)
    first = _read(path)  # as a crash would leave it: no close() yet
    assert first.shape == (320, 2)
    assert np.array_equal(first[:160, 0], rx) and np.array_equal(first[:160, 1], tx)
    capture.add(rx, tx)
    capture.close()
    assert _read(path).shape == (480, 2)
    capture.add(rx, tx)  # after close: ignored, not an error
    assert capture.samples == 480


class _CodedSink:
    def __init__(self) -> None:
        self.batches: list[tuple[str, bytes, bytes, tuple[tuple[int, int], ...]]] = []
        self.closed = False

    def write(self, block: np.ndarray) -> None:
        raise AssertionError("a coded sink must get coded audio")

    def write_coded(
        self, codec: str, rx: bytes, tx: bytes, silent: tuple[tuple[int, int], ...]
    ) -> None:
        self.batches.append((codec, rx, tx, silent))

    def close(self) -> None:
        self.closed = True


def test_coded_sinks_get_g711_batches_merged_per_codec_with_spans_offset() -> None:
    sink = _CodedSink()
    capture = CallCapture([sink], flush_samples=10_000)
    assert not capture.wants_pcm
    capture.add_coded("PCMA", b"\x01" * 160, b"\x02" * 160)
    capture.add_coded("PCMA", b"\x03" * 160, b"\x04" * 160, ((0, 80),))
    capture.add_coded("PCMU", b"\x05" * 160, b"\x06" * 160, ((80, 160),))  # re-INVITE: new codec
    capture.close()
    assert [(c, len(rx), len(tx), s) for c, rx, tx, s in sink.batches] == [
        ("PCMA", 320, 320, ((160, 240),)),
        ("PCMU", 160, 160, ((80, 160),)),
    ]
    assert sink.batches[0][1] == b"\x01" * 160 + b"\x03" * 160
    assert capture.samples == 480 and sink.closed


def test_coded_audio_decodes_to_what_the_pcm_path_writes(tmp_path: Path) -> None:
    """A PCM sink (the voicemail track, a WAV) gets coded audio decoded, silent spans zeroed."""
    pcm = (3000 * np.sin(np.arange(320) * 0.3)).astype(np.int16)
    rx, tx = alaw_encode(pcm), alaw_encode(-pcm)
    path = tmp_path / "coded.wav"
    capture = CallCapture([StreamingWavWriter(path)], flush_samples=10_000)
    assert capture.wants_pcm
    capture.add_coded("PCMA", rx, tx, ((100, 200),))
    capture.close()
    stereo = _read(path)
    expected = decode_coded("PCMA", rx, tx)
    assert np.array_equal(stereo[:100], expected[:100])
    assert not stereo[100:200].any()  # exact digital silence, both channels
    assert np.array_equal(stereo[200:], expected[200:])
    assert np.array_equal(expected[:, 0], alaw_decode(rx))
    assert np.abs(expected[:, 0].astype(int) - pcm).max() < 200  # G.711 round trip
