"""Resampling: frequency and level kept, exact lengths, anti-aliasing, clipping, real speech."""

from __future__ import annotations

import itertools
import wave
from pathlib import Path

import numpy as np
import pytest

from media.resample import resample

RATES = (8000, 16000, 22050, 48000)
PROMPT = Path("/usr/share/asterisk/sounds/en/vm-goodbye.wav")


def sine(freq: float, rate: int, seconds: float = 1.0, amplitude: float = 10000.0) -> np.ndarray:
    t = np.arange(round(rate * seconds)) / rate
    return amplitude * np.sin(2 * np.pi * freq * t)


def peak_frequency(x: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / rate)[np.argmax(spectrum)])


def rms_db(x: np.ndarray) -> float:
    return float(20 * np.log10(np.sqrt(np.mean(np.asarray(x, dtype=np.float64) ** 2)) + 1e-12))


@pytest.mark.parametrize(("src", "dst"), list(itertools.permutations(RATES, 2)))
def test_sine_keeps_frequency_level_and_exact_length(src: int, dst: int) -> None:
    x = np.rint(sine(1000.0, src)).astype(np.int16)  # one second: a whole number of periods
    y = resample(x, src, dst)
    assert y.dtype == np.int16
    assert len(y) == dst  # exactly len(x) * dst / src
    assert abs(peak_frequency(y.astype(np.float64), dst) - 1000.0) <= 1.0  # 1 Hz bins
    edge = dst // 50  # leave the filter's start-up and tail out
    assert abs(rms_db(y[edge:-edge]) - rms_db(x)) < 0.1


def test_length_is_the_ceiling_when_the_ratio_does_not_divide() -> None:
    x = np.zeros(1000, dtype=np.int16)
    assert len(resample(x, 22050, 8000)) == -(-1000 * 8000 // 22050)  # 363
    assert len(resample(x, 8000, 22050)) == -(-1000 * 22050 // 8000)  # 2757


def test_float_in_float_out_unclipped() -> None:
    x32 = (sine(440.0, 8000) / 10000.0).astype(np.float32)
    y32 = resample(x32, 8000, 16000)
    assert y32.dtype == np.float32 and len(y32) == 16000
    y64 = resample(x32.astype(np.float64), 8000, 16000)
    assert y64.dtype == np.float64
    np.testing.assert_allclose(y32, y64, atol=1e-6)


def test_downsampling_removes_what_the_new_rate_cannot_carry() -> None:
    x = np.rint(sine(6000.0, 16000)).astype(np.int16)  # would alias to 2 kHz at 8 kHz
    y = resample(x, 16000, 8000)
    assert rms_db(y[100:-100]) - rms_db(x) < -40
    x = np.rint(sine(5000.0, 22050)).astype(np.int16)  # would alias to 3 kHz
    y = resample(x, 22050, 8000)
    assert rms_db(y[100:-100]) - rms_db(x) < -40


def test_int16_output_is_clipped_not_wrapped() -> None:
    square = np.where(np.sin(2 * np.pi * 500 * np.arange(8000) / 8000) >= 0, 32767, -32767)
    as_float = resample(square.astype(np.float64), 8000, 48000)
    assert as_float.max() > 32767 and as_float.min() < -32768  # the filter overshoots
    y = resample(square.astype(np.int16), 8000, 48000)
    np.testing.assert_array_equal(y, np.clip(np.rint(as_float), -32768, 32767).astype(np.int16))
    assert y.max() == 32767 and y.min() == -32768


def test_equal_rates_return_a_copy() -> None:
    x = np.arange(10, dtype=np.int16)
    y = resample(x, 8000, 8000)
    assert np.array_equal(x, y) and y is not x
    y[0] = 99
    assert x[0] == 0


def test_real_prompt_survives_8k_16k_8k() -> None:
    with wave.open(str(PROMPT), "rb") as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
        x = np.frombuffer(w.readframes(w.getnframes()), "<i2")
    back = resample(resample(x, 8000, 16000), 16000, 8000)
    assert len(back) == len(x)
    error = back.astype(np.float64) - x
    # what is lost is only the band edge near 4 kHz: the error is far below the speech
    assert rms_db(x) - rms_db(error[100:-100]) > 25


def test_bad_input_is_refused_with_what_is_wrong() -> None:
    x = np.zeros(8, dtype=np.int16)
    with pytest.raises(ValueError, match=r"^sample rates must be positive, got 0 -> 8000$"):
        resample(x, 0, 8000)
    with pytest.raises(
        ValueError, match=r"^resample takes mono \(1-D\) audio, got shape \(4, 2\)$"
    ):
        resample(np.zeros((4, 2), dtype=np.int16), 8000, 16000)
    with pytest.raises(
        TypeError, match=r"^resample takes int16, float32 or float64 samples, got int32$"
    ):
        resample(np.zeros(8, dtype=np.int32), 8000, 16000)
