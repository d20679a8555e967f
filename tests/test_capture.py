"""Call capture: aligned stereo blocks, and a WAV that is valid after every write."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from media.capture import CallCapture, StreamingWavWriter


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
