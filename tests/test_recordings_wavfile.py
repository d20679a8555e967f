"""WAV repair: headers left by a killed writer are rewritten from the file length."""

from __future__ import annotations

import struct
import wave
from pathlib import Path

import numpy as np
import pytest
from scipy.io import wavfile

from media.capture import StreamingWavWriter
from recordings.wavfile import WavError, empty_header, inspect_wav, repair_wav


def _stereo(n: int) -> np.ndarray:
    left = (np.arange(n) % 200 - 100).astype(np.int16)
    return np.stack((left, -left), axis=1)


def _written(tmp_path: Path, frames: int) -> Path:
    path = tmp_path / "call.wav"
    writer = StreamingWavWriter(path)
    writer.write(_stereo(frames))
    writer.close()
    return path


def _read(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getframerate(), w.getsampwidth()) == (2, 8000, 2)
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, 2)


def _set_sizes(path: Path, riff: int, data: int) -> None:
    with path.open("r+b") as fh:
        fh.seek(4)
        fh.write(struct.pack("<I", riff))
        fh.seek(40)
        fh.write(struct.pack("<I", data))


@pytest.mark.parametrize("placeholder", [0, 0xFFFFFFFF, 4000])
def test_placeholder_or_stale_header_is_rewritten_from_the_length(
    tmp_path: Path, placeholder: int
) -> None:
    path = _written(tmp_path, 8000)
    _set_sizes(path, placeholder, placeholder)
    result = repair_wav(path)
    assert result.repaired and result.frames == 8000 and result.seconds == 1.0
    assert result.header_frames == placeholder // 4
    assert np.array_equal(_read(path), _stereo(8000))
    rate, data = wavfile.read(path)  # a second, independent reader
    assert rate == 8000 and data.shape == (8000, 2)


def test_a_half_written_frame_is_cut_off(tmp_path: Path) -> None:
    path = _written(tmp_path, 1000)
    with path.open("ab") as fh:
        fh.write(b"\x01\x02\x03")  # killed in the middle of a block
    _set_sizes(path, 0, 0)
    result = repair_wav(path)
    assert result.dropped_bytes == 3 and result.frames == 1000
    assert path.stat().st_size == 44 + 4000
    assert np.array_equal(_read(path), _stereo(1000))


def test_a_consistent_file_is_left_alone(tmp_path: Path) -> None:
    path = _written(tmp_path, 800)
    before = path.read_bytes()
    result = repair_wav(path)
    assert not result.repaired and result.frames == 800
    assert path.read_bytes() == before


def test_inspect_reports_the_layout() -> None:
    head = empty_header()
    layout = inspect_wav(head, 44 + 400)
    assert (layout.channels, layout.rate, layout.bits, layout.data_offset) == (2, 8000, 16, 44)
    assert layout.frames_on_disk == 100 and not layout.consistent
    assert inspect_wav(head, 44).consistent


def test_not_a_wav_is_refused_with_its_name(tmp_path: Path) -> None:
    path = tmp_path / "junk.wav"
    path.write_bytes(b"OggS" + b"\0" * 60)
    with pytest.raises(WavError, match=r"junk\.wav: not a RIFF/WAVE file"):
        repair_wav(path)
    assert path.read_bytes() == b"OggS" + b"\0" * 60  # untouched
    with pytest.raises(WavError, match="data chunk at byte 12 comes before any fmt chunk"):
        inspect_wav(b"RIFF\0\0\0\0WAVEdata\0\0\0\0", 20, "x.wav")
