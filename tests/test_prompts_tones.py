"""Tones: the dBm0 reference (also through real G.711), frequencies, lengths,
DTMF pairs and twist (and our in-band detector hears every key), call-progress
cadences, and the errors for impossible tones."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from media.dtmf.inband import InbandDtmfDetector
from media.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from media.prompts.tones import (
    DBM0_PEAK,
    DTMF_FREQUENCIES,
    beep,
    busy,
    cadence,
    dtmf_tone,
    ringback,
    silence,
    tone,
)

KEYS = "123A456B789C*0#D"


def amplitudes(x: np.ndarray, freqs: tuple[float, ...], rate: int = 8000) -> list[float]:
    """Least-squares amplitude of each sine in ``x`` (exact for a sum of those sines)."""
    t = np.arange(len(x)) / rate
    basis = np.column_stack([f(2 * np.pi * hz * t) for hz in freqs for f in (np.sin, np.cos)])
    coef = np.linalg.lstsq(basis, x.astype(np.float64), rcond=None)[0]
    return [float(np.hypot(coef[2 * i], coef[2 * i + 1])) for i in range(len(freqs))]


def dbm0(amplitude: float) -> float:
    return 20 * np.log10(amplitude / DBM0_PEAK)


def test_dbm0_reference() -> None:
    # G.711: +3.14 dBm0 is the overload point, so 0 dBm0 peaks at 10**(-3.14/20) of full scale.
    assert pytest.approx(32768 * 0.6966, abs=1) == DBM0_PEAK
    zero = tone([1000], 1000, 0.0)  # 1 kHz at 8 kHz: every 8th sample is a crest
    assert np.abs(zero).max() == round(DBM0_PEAK) == 22827
    assert np.sqrt(np.mean(zero.astype(np.float64) ** 2)) == pytest.approx(
        22827 / np.sqrt(2), abs=1
    )
    assert np.abs(tone([1000], 100, -10.0)).max() == round(DBM0_PEAK * 10**-0.5) == 7219
    assert np.abs(tone([1000], 100, 3.0)).max() == round(DBM0_PEAK * 10 ** (3 / 20))


@pytest.mark.parametrize("level", [-30.0, -10.0, 0.0, 3.0])
def test_level_survives_g711(level: float) -> None:
    x = tone([1004], 1000, level)  # 1004 Hz: not a sub-multiple of 8 kHz (ITU test tone)
    rms_in = np.sqrt(np.mean(x.astype(np.float64) ** 2))
    for encode, decode in ((ulaw_encode, ulaw_decode), (alaw_encode, alaw_decode)):
        y = decode(encode(x)).astype(np.float64)
        assert 20 * np.log10(np.sqrt(np.mean(y**2)) / rms_in) == pytest.approx(0, abs=0.1)


def test_multi_frequency_levels_and_lengths() -> None:
    x = tone([350, 440], 500, -13.0)
    assert len(x) == 4000 and x.dtype == np.int16
    assert [dbm0(a) for a in amplitudes(x, (350, 440))] == pytest.approx([-13, -13], abs=0.01)
    assert len(tone([1000], 20)) == 160 and len(tone([1000], 30)) == 240
    assert len(tone([1000], 20, rate=16000)) == 320
    assert len(tone([1000], 0)) == 0


def test_silence() -> None:
    s = silence(20)
    assert s.dtype == np.int16 and len(s) == 160 and not s.any()
    assert len(silence(0)) == 0 and len(silence(7.5)) == 60 and len(silence(10, 16000)) == 160


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: tone([], 100), "tone: no frequency given"),
        (lambda: tone([0], 100), "tone: 0 Hz is not between 0 and 4000 Hz (rate 8000)"),
        (lambda: tone([4000], 100), "tone: 4000 Hz is not between 0 and 4000 Hz (rate 8000)"),
        (lambda: tone([1000], -1), "tone: duration -1 ms is negative"),
        (lambda: tone([1000], 10, rate=0), "tone: sample rate 0 is not positive"),
        (lambda: tone([1000], 10, 3.2), "tone: 1 component(s) at 3.2 dBm0 would clip "
         "(peak 32995 > 32767)"),
        (lambda: tone([440, 480], 10, 0.0), "tone: 2 component(s) at 0 dBm0 would clip "
         "(peak 45654 > 32767)"),
        (lambda: silence(-5), "silence: duration -5 ms is negative"),
        (lambda: dtmf_tone("E", 50), "dtmf_tone: 'E' is not a DTMF digit (0-9, *, #, A-D)"),
        (lambda: dtmf_tone("12", 50), "dtmf_tone: '12' is not a DTMF digit (0-9, *, #, A-D)"),
        (lambda: dtmf_tone("", 50), "dtmf_tone: '' is not a DTMF digit (0-9, *, #, A-D)"),
        (lambda: cadence(beep(), 100, 0), "cadence: repeats must be at least 1, got 0"),
    ],
)  # fmt: skip
def test_errors(call: Callable[[], np.ndarray], message: str) -> None:
    with pytest.raises(ValueError) as info:
        call()
    assert str(info.value) == message


def test_nyquist_limit_follows_the_rate() -> None:
    x = tone([5000], 100, rate=16000)
    assert len(x) == 1600 and amplitudes(x, (5000,), 16000)[0] == pytest.approx(7219, abs=1)


@pytest.mark.parametrize("digit", [*list(KEYS), "a", "d"])
def test_dtmf_pairs(digit: str) -> None:
    x = dtmf_tone(digit, 100)
    low, high = DTMF_FREQUENCIES[digit.upper()]
    spectrum = np.abs(np.fft.rfft(x.astype(np.float64), 8000))  # 1 Hz bins
    top = sorted(np.argsort(spectrum)[-2:])
    assert top == [low, high]
    assert [dbm0(a) for a in amplitudes(x, (low, high))] == pytest.approx([-10, -10], abs=0.01)


def test_dtmf_table_is_q23() -> None:
    rows = {k: v[0] for k, v in DTMF_FREQUENCIES.items()}
    cols = {k: v[1] for k, v in DTMF_FREQUENCIES.items()}
    assert [rows[k] for k in "147*"] == [697, 770, 852, 941]
    assert [cols[k] for k in "123A"] == [1209, 1336, 1477, 1633]
    assert sorted(DTMF_FREQUENCIES) == sorted(KEYS)


@pytest.mark.parametrize("twist", [-4.0, 0.0, 4.0, 8.0])
def test_dtmf_twist_and_level(twist: float) -> None:
    x = dtmf_tone("8", 200, level_dbm0=-20.0, twist_db=twist)
    low, high = amplitudes(x, DTMF_FREQUENCIES["8"])
    assert dbm0(low) == pytest.approx(-20, abs=0.02)
    assert dbm0(high) == pytest.approx(-20 - twist, abs=0.02)


def test_our_inband_detector_hears_every_key() -> None:
    gap = silence(60)
    stream = np.concatenate([np.concatenate((dtmf_tone(k, 60), gap)) for k in KEYS])
    detector = InbandDtmfDetector()
    heard = [d for i in range(0, len(stream), 160) for d in detector.feed(stream[i : i + 160])]
    assert "".join(heard) == KEYS
    quiet = np.concatenate((dtmf_tone("5", 80, level_dbm0=-25.0, twist_db=4.0), gap))
    assert InbandDtmfDetector().feed(quiet) == ["5"]


def test_ringback_cadence() -> None:
    two = ringback(2)
    assert len(two) == 2 * 6 * 8000
    on, off = two[:16000], two[16000:48000]
    assert not off.any()
    assert [dbm0(a) for a in amplitudes(on, (440, 480))] == pytest.approx([-19, -19], abs=0.01)
    assert np.array_equal(two[:48000], two[48000:])


def test_busy_cadence() -> None:
    x = busy(3)
    assert len(x) == 3 * 8000
    assert not x[4000:8000].any() and np.abs(x[:4000]).max() > 0
    assert [dbm0(a) for a in amplitudes(x[:4000], (480, 620))] == pytest.approx(
        [-24, -24], abs=0.01
    )


def test_beep() -> None:
    x = beep()
    assert len(x) == 2000
    assert dbm0(amplitudes(x, (1000,))[0]) == pytest.approx(-10, abs=0.01)
    assert len(beep(500)) == 4000
