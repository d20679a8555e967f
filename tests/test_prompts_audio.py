"""load_audio on real WAV files: every rate/width/encoding sox writes, the
Asterisk core sounds, streamed WAVs from espeak-ng and sox, and broken files
(real files cut or patched) whose errors must name the file and the fault."""

from __future__ import annotations

import math
import struct
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest

from media.g711 import alaw_decode, ulaw_decode
from media.prompts.audio import AudioError, decode_wav, load_audio

SOUNDS = Path("/usr/share/asterisk/sounds/en")


def sox(path: Path, *args: str) -> Path:
    """Run ``sox -n <args before the file> path <effects>``: args up to "--" are
    output options, the rest effects."""
    split = args.index("--")
    subprocess.run(["sox", "-n", *args[:split], str(path), *args[split + 1 :]], check=True)
    return path


def peak_hz(audio: np.ndarray, rate: int = 8000) -> float:
    spectrum = np.abs(np.fft.rfft(audio.astype(np.float64) * np.hanning(len(audio))))
    return float(np.fft.rfftfreq(len(audio), 1 / rate)[int(np.argmax(spectrum))])


def fmt_tag(path: Path) -> int:
    return struct.unpack_from("<H", path.read_bytes(), 20)[0]


FORMATS = [
    # (output options, format tag sox writes)
    (["-r", "8000", "-b", "16"], 1),
    (["-r", "16000", "-b", "16"], 1),
    (["-r", "22050", "-b", "16"], 1),
    (["-r", "44100", "-b", "16"], 1),
    (["-r", "48000", "-b", "16"], 1),
    (["-r", "8000", "-b", "8", "-e", "unsigned-integer"], 1),
    (["-r", "44100", "-b", "24"], 0xFFFE),
    (["-r", "48000", "-b", "24"], 0xFFFE),
    (["-r", "48000", "-b", "32"], 0xFFFE),
    (["-r", "48000", "-b", "32", "-e", "floating-point"], 3),
    (["-r", "22050", "-b", "64", "-e", "floating-point"], 3),
    (["-r", "8000", "-e", "a-law"], 6),
    (["-r", "16000", "-e", "a-law"], 6),
    (["-r", "8000", "-e", "mu-law"], 7),
    (["-r", "16000", "-b", "16", "-c", "2"], 1),
    (["-r", "48000", "-b", "24", "-c", "2"], 0xFFFE),
    (["-r", "8000", "-e", "mu-law", "-c", "2"], 7),
]


@pytest.mark.parametrize(
    ("options", "tag"), FORMATS, ids=["".join(o).replace("-", "") for o, _ in FORMATS]
)
def test_every_format_loads_as_8k_with_pitch_length_and_level(
    tmp_path: Path, options: list[str], tag: int
) -> None:
    path = sox(tmp_path / "tone.wav", *options, "--", "synth", "1", "sine", "1000", "vol", "0.5")
    assert fmt_tag(path) == tag  # the file exercises the reader path we think it does
    audio = load_audio(path)
    assert audio.dtype == np.int16 and audio.ndim == 1
    assert len(audio) == 8000
    assert peak_hz(audio) == pytest.approx(1000, abs=2)
    # 0.5 of full scale; G.711 quantisation and resampling ripple stay within 3 %
    middle = audio[400:-400].astype(np.float64)
    assert np.sqrt(np.mean(middle**2)) * np.sqrt(2) == pytest.approx(16384, rel=0.03)


@pytest.mark.parametrize("rate", [16000, 22050, 44100, 48000])
def test_resampling_removes_what_8k_cannot_hold(tmp_path: Path, rate: int) -> None:
    # 5 kHz does not exist at 8 kHz: without the anti-alias filter it would fold to 3 kHz.
    path = sox(tmp_path / "high.wav", "-r", str(rate), "-b", "16", "--", "synth", "1", "sine",
               "5000", "vol", "0.5")  # fmt: skip
    audio = load_audio(path).astype(np.float64)
    assert np.sqrt(np.mean(audio[400:-400] ** 2)) < 0.01 * 16384 / np.sqrt(2)


def test_stereo_is_averaged(tmp_path: Path) -> None:
    path = sox(tmp_path / "lr.wav", "-r", "8000", "-b", "16", "-c", "2", "--", "synth", "1",
               "sine", "440", "sine", "1300", "vol", "0.5")  # fmt: skip
    with wave.open(str(path)) as w:
        frames = np.frombuffer(w.readframes(w.getnframes()), "<i2").reshape(-1, 2)
    audio = load_audio(path)
    expected = np.rint(frames.astype(np.float64).mean(axis=1)).astype(np.int16)
    assert np.array_equal(audio, expected)
    spectrum = np.abs(np.fft.rfft(audio.astype(np.float64)))
    top = sorted(np.fft.rfftfreq(len(audio), 1 / 8000)[np.argsort(spectrum)[-2:]])
    assert top == pytest.approx([440, 1300], abs=2)


def test_g711_files_decode_exactly_like_the_codec(tmp_path: Path) -> None:
    for encoding, decode in (("mu-law", ulaw_decode), ("a-law", alaw_decode)):
        path = sox(tmp_path / f"{encoding}.wav", "-r", "8000", "-e", encoding, "--", "synth",
                   "0.5", "sine", "700")  # fmt: skip
        data = path.read_bytes()
        start = data.index(b"data") + 8
        size = struct.unpack_from("<I", data, start - 4)[0]
        assert np.array_equal(load_audio(path), decode(data[start : start + size]))


def test_asterisk_core_sounds_are_read_sample_exact() -> None:
    files = sorted(SOUNDS.rglob("*.wav"))
    assert len(files) > 300
    for path in files:
        with wave.open(str(path)) as w:
            assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
            expected = np.frombuffer(w.readframes(w.getnframes()), "<i2")
        audio = load_audio(path)
        assert np.array_equal(audio, expected), path


def test_streamed_wavs_with_unknown_length_load(tmp_path: Path) -> None:
    # Written to a pipe, espeak-ng and sox cannot go back to fix the sizes and
    # leave a placeholder: 0x7ffff000, or for sox 24-bit 0x7fffefff (whole frames).
    spoken = subprocess.run(
        ["espeak-ng", "--stdout", "one two three"], capture_output=True, check=True
    ).stdout
    assert struct.unpack_from("<I", spoken, 40)[0] == 0x7FFFF000
    (tmp_path / "spoken.wav").write_bytes(spoken)
    speech = load_audio(tmp_path / "spoken.wav")
    assert len(speech) == math.ceil((len(spoken) - 44) // 2 * 8000 / 22050)
    piped = subprocess.run(
        "sox -n -r 16000 -b 24 -t wav - synth 0.5 sine 600 | cat",
        shell=True,
        capture_output=True,
        check=True,
    ).stdout
    assert struct.unpack_from("<I", piped, piped.index(b"data") + 4)[0] == 0x7FFFEFFF
    (tmp_path / "piped.wav").write_bytes(piped)
    audio = load_audio(tmp_path / "piped.wav")
    assert len(audio) == 4000 and peak_hz(audio) == pytest.approx(600, abs=2)


def test_decode_wav_keeps_the_rate_and_float_scale(tmp_path: Path) -> None:
    path = sox(tmp_path / "f.wav", "-r", "16000", "-e", "floating-point", "-b", "32", "--",
               "synth", "0.1", "sine", "1000", "vol", "0.5")  # fmt: skip
    samples, rate = decode_wav(path.read_bytes(), str(path))
    assert rate == 16000 and samples.dtype == np.float64 and len(samples) == 1600
    assert np.abs(samples).max() == pytest.approx(16384, rel=0.01)  # float 1.0 = 32768


# --- broken files ----------------------------------------------------------------


@pytest.fixture
def good(tmp_path: Path) -> bytes:
    """A real 0.5 s, 8 kHz, 16-bit mono WAV by sox: 44-byte header + 8000 bytes."""
    data = sox(tmp_path / "good.wav", "-r", "8000", "-b", "16", "--", "synth", "0.5", "sine",
               "440").read_bytes()  # fmt: skip
    assert len(data) == 8044 and data[36:40] == b"data"
    return data


@pytest.fixture
def floating(tmp_path: Path) -> bytes:
    """A real 0.1 s, 8 kHz float WAV by sox: fmt (18 bytes), fact, data 3200 bytes."""
    data = sox(tmp_path / "float.wav", "-r", "8000", "-e", "floating-point", "-b", "32", "--",
               "synth", "0.1", "sine", "440").read_bytes()  # fmt: skip
    assert data[20:22] == b"\x03\x00" and data.endswith(data[-3200:])
    return data


def patched(data: bytes, offset: int, value: bytes) -> bytes:
    return data[:offset] + value + data[offset + len(value) :]


def check_error(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "broken.wav"
    path.write_bytes(content)
    with pytest.raises(AudioError) as info:
        load_audio(path)
    assert str(info.value) == f"{path}: {message}"


def test_not_riff(tmp_path: Path) -> None:
    check_error(tmp_path, b"hello, not audio at all",
                "not a RIFF/WAVE file (starts with b'hello, not a')")  # fmt: skip
    check_error(tmp_path, b"", "not a RIFF/WAVE file (starts with b'')")


def test_big_endian_rifx(tmp_path: Path, good: bytes) -> None:
    rifx = b"RIFX" + good[4:]
    check_error(tmp_path, rifx, f"big-endian RIFX is not supported (starts with {rifx[:12]!r})")


def test_truncated_data_pcm(tmp_path: Path, good: bytes) -> None:
    check_error(tmp_path, good[:4044],
                "truncated: the data chunk declares 8000 bytes, the file holds 4000")  # fmt: skip


def test_truncated_data_float(tmp_path: Path, floating: bytes) -> None:
    start = floating.index(b"data")
    check_error(tmp_path, floating[:-1000],
                f"truncated: chunk 'data' at offset {start} declares 3200 bytes, "
                "the file holds 2200")  # fmt: skip


def test_header_only_is_truncated_with_no_samples(tmp_path: Path, good: bytes) -> None:
    check_error(tmp_path, good[:44], "truncated, no audio samples: the data chunk declares "
                "8000 bytes, the file holds 0")  # fmt: skip


def test_truncated_fmt(tmp_path: Path, good: bytes) -> None:
    message = "truncated: chunk 'fmt ' at offset 12 declares 16 bytes, the file holds 10"
    check_error(tmp_path, good[:30], message)


def test_empty_data_chunk(tmp_path: Path) -> None:
    path = sox(tmp_path / "empty.wav", "-r", "8000", "-b", "16", "--", "trim", "0", "0")
    assert len(path.read_bytes()) == 44
    check_error(tmp_path, path.read_bytes(), "empty: no audio samples in the data chunk")


def test_no_fmt_and_no_data(tmp_path: Path, good: bytes) -> None:
    check_error(tmp_path, good[:12] + good[36:], "no valid 'fmt ' chunk: there is none")
    check_error(tmp_path, good[:36], "no 'data' chunk")


def test_short_fmt(tmp_path: Path, good: bytes) -> None:
    short = good[:12] + b"fmt \x0c\x00\x00\x00" + good[20:32] + good[36:]
    check_error(tmp_path, short, "no valid 'fmt ' chunk: it has 12 bytes, at least 16 needed")


def test_zero_channels(tmp_path: Path, good: bytes, floating: bytes) -> None:
    check_error(tmp_path, patched(good, 22, b"\x00\x00"), "zero channels")
    check_error(tmp_path, patched(floating, 22, b"\x00\x00"), "zero channels")


def test_zero_rate(tmp_path: Path, good: bytes, floating: bytes) -> None:
    check_error(tmp_path, patched(good, 24, b"\x00\x00\x00\x00"), "sample rate 0")
    check_error(tmp_path, patched(floating, 24, b"\x00\x00\x00\x00"), "sample rate 0")


@pytest.mark.parametrize(
    ("encoding", "message"),
    [
        ("gsm", "unsupported WAV format tag 49 (0x0031, GSM 6.10)"),
        ("ima-adpcm", "unsupported WAV format tag 17 (0x0011, IMA ADPCM)"),
        ("ms-adpcm", "unsupported WAV format tag 2 (0x0002, MS ADPCM)"),
    ],
)
def test_compressed_formats_are_named(tmp_path: Path, encoding: str, message: str) -> None:
    path = sox(tmp_path / "c.wav", "-r", "8000", "-e", encoding, "--", "synth", "0.5", "sine",
               "440")  # fmt: skip
    check_error(
        tmp_path, path.read_bytes(), message + "; supported: PCM, IEEE float, A-law, mu-law"
    )


def test_unknown_tag_and_extensible_subformat(tmp_path: Path, good: bytes) -> None:
    check_error(tmp_path, patched(good, 20, b"\x34\x12"), "unsupported WAV format tag 4660 "
                "(0x1234, unknown); supported: PCM, IEEE float, A-law, mu-law")  # fmt: skip
    ext = sox(tmp_path / "ext.wav", "-r", "8000", "-b", "24", "--", "synth", "0.1", "sine", "440")
    data = ext.read_bytes()
    assert fmt_tag(ext) == 0xFFFE
    check_error(tmp_path, patched(data, 46, b"\xff"), "unknown WAVE_FORMAT_EXTENSIBLE sub-format")


def test_block_align_that_does_not_fit(tmp_path: Path, floating: bytes) -> None:
    check_error(tmp_path, patched(patched(floating, 22, b"\x03\x00"), 32, b"\x04\x00"),
                "block align 4 does not fit 3 channels of 32-bit samples")  # fmt: skip


def test_unreadable_paths(tmp_path: Path) -> None:
    with pytest.raises(AudioError) as missing:
        load_audio(tmp_path / "missing.wav")
    assert (
        str(missing.value) == f"{tmp_path / 'missing.wav'}: cannot read: No such file or directory"
    )
    with pytest.raises(AudioError) as folder:
        load_audio(tmp_path)
    assert str(folder.value) == f"{tmp_path}: cannot read: Is a directory"
