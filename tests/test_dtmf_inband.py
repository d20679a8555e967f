"""In-band DTMF: Q.24 frequency/twist/duration edges, noise, G.711, and zero talk-off on
every Asterisk core prompt."""

from __future__ import annotations

import wave
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from media.dtmf.inband import InbandDtmfDetector
from media.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode

RATE = 8000
DBM0_PEAK = 22775.0  # peak of a 0 dBm0 sine (G.711)
LOW = {"1": 697, "2": 697, "3": 697, "A": 697, "4": 770, "5": 770, "6": 770, "B": 770,
       "7": 852, "8": 852, "9": 852, "C": 852, "*": 941, "0": 941, "#": 941, "D": 941}  # fmt: skip
HIGH = {"1": 1209, "4": 1209, "7": 1209, "*": 1209, "2": 1336, "5": 1336, "8": 1336,
        "0": 1336, "3": 1477, "6": 1477, "9": 1477, "#": 1477, "A": 1633, "B": 1633,
        "C": 1633, "D": 1633}  # fmt: skip
ALL = "123A456B789C*0#D"
SOUNDS = Path("/usr/share/asterisk/sounds/en")


def pair(
    f_low: float,
    f_high: float,
    ms: float,
    level_dbm0: float = -10.0,
    twist_db: float = 0.0,
) -> np.ndarray:
    """Two sines; ``twist_db`` > 0 makes the high tone weaker (normal twist)."""
    t = np.arange(round(RATE * ms / 1000)) / RATE
    a_low = DBM0_PEAK * 10 ** (level_dbm0 / 20)
    a_high = DBM0_PEAK * 10 ** ((level_dbm0 - twist_db) / 20)
    return a_low * np.sin(2 * np.pi * f_low * t) + a_high * np.sin(2 * np.pi * f_high * t + 1.0)


def key(digit: str, ms: float = 60, **kwargs: float) -> np.ndarray:
    return pair(LOW[digit], HIGH[digit], ms, **kwargs)


def silence(ms: float) -> np.ndarray:
    return np.zeros(round(RATE * ms / 1000))


def pcm16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), -32768, 32767).astype(np.int16)


def detect(x: np.ndarray, chunk: int = 160) -> str:
    detector = InbandDtmfDetector()
    samples = pcm16(x) if x.dtype != np.int16 else x
    return "".join(
        d for i in range(0, len(samples), chunk) for d in detector.feed(samples[i : i + chunk])
    )


def framed(x: np.ndarray) -> np.ndarray:
    """Surround a signal by silence, with an offset that does not line up with blocks."""
    return np.concatenate((silence(17), x, silence(80)))


# --- the 16 keys ---------------------------------------------------------------


def test_all_sixteen_digits_once_each() -> None:
    signal = np.concatenate([np.concatenate((key(d, 60), silence(60))) for d in ALL])
    assert detect(signal) == ALL


@pytest.mark.parametrize("chunk", [1, 7, 80, 105, 106, 107, 160, 800, 100_000])
def test_any_chunk_size_gives_the_same_digits(chunk: int) -> None:
    signal = np.concatenate([np.concatenate((key(d, 50), silence(50))) for d in "90#*"])
    assert detect(signal, chunk) == "90#*"


def test_one_digit_per_key_press_however_long() -> None:
    assert detect(framed(key("5", 3000))) == "5"


# --- Q.24 frequency tolerance ------------------------------------------------


def shifted(digit: str, group: str, relative: float, absolute: float) -> np.ndarray:
    low, high = float(LOW[digit]), float(HIGH[digit])
    if group == "low":
        low = low * (1 + relative) + absolute
    else:
        high = high * (1 + relative) + absolute
    return framed(pair(low, high, 80))


# one digit per row and per column: every DTMF frequency is moved
EDGE_DIGITS = [("1", "low"), ("5", "low"), ("9", "low"), ("#", "low"),
               ("7", "high"), ("0", "high"), ("3", "high"), ("D", "high")]  # fmt: skip


@pytest.mark.parametrize(("digit", "group"), EDGE_DIGITS)
@pytest.mark.parametrize("sign", [1, -1])
def test_accepted_at_one_and_a_half_percent_plus_two_hertz(
    digit: str, group: str, sign: int
) -> None:
    assert detect(shifted(digit, group, sign * 0.015, sign * 2.0)) == digit


@pytest.mark.parametrize(("digit", "group"), EDGE_DIGITS)
@pytest.mark.parametrize("sign", [1, -1])
def test_rejected_at_three_and_a_half_percent(digit: str, group: str, sign: int) -> None:
    assert detect(shifted(digit, group, sign * 0.035, 0.0)) == ""


def test_tone_between_two_rows_is_not_a_digit() -> None:
    assert detect(framed(pair((697 + 770) / 2, 1336, 80))) == ""


# --- twist and level ------------------------------------------------------------


# (low tone level, twist): with reverse twist the high tone is the stronger one, so the
# loudest case starts lower to keep both tones within -3..-36 dBm0 (and unclipped).
@pytest.mark.parametrize(
    ("level", "twist"),
    [(-3.0, 8.0), (-20.0, 8.0), (-36.0, 8.0), (-7.0, -4.0), (-20.0, -4.0), (-36.0, -4.0)],
)
def test_twist_within_limits_accepted(level: float, twist: float) -> None:
    assert detect(framed(key("8", 80, level_dbm0=level, twist_db=twist))) == "8"


@pytest.mark.parametrize(
    ("level", "twist"),
    [(-3.0, 11.0), (-20.0, 11.0), (-30.0, 11.0), (-8.0, -7.0), (-20.0, -7.0), (-30.0, -7.0)],
)
def test_twist_beyond_limits_rejected(level: float, twist: float) -> None:
    assert detect(framed(key("8", 80, level_dbm0=level, twist_db=twist))) == ""


@pytest.mark.parametrize("level", [-3.0, -10.0, -25.0, -36.0])
def test_level_range(level: float) -> None:
    assert detect(framed(key("6", 80, level_dbm0=level))) == "6"


def test_tones_below_the_range_are_ignored() -> None:
    assert detect(framed(key("6", 80, level_dbm0=-50.0))) == ""


# --- timing -----------------------------------------------------------------------


@pytest.mark.parametrize("offset", range(0, 106, 5))
def test_forty_ms_tone_accepted_at_any_alignment(offset: int) -> None:
    signal = np.concatenate((np.zeros(offset), key("4", 40), silence(60)))
    assert detect(signal) == "4"


@pytest.mark.parametrize("ms", [10, 15, 20, 22])
def test_tones_shorter_than_23_ms_rejected_at_any_alignment(ms: int) -> None:
    for offset in range(0, 106, 3):
        signal = np.concatenate((np.zeros(offset), key("4", ms), silence(60)))
        assert detect(signal) == "", f"{ms} ms tone at offset {offset}"


@pytest.mark.parametrize("offset", range(0, 106, 5))
def test_forty_ms_pause_separates_two_presses_of_the_same_key(offset: int) -> None:
    signal = np.concatenate(
        (np.zeros(offset), key("2", 60), silence(40), key("2", 60), silence(60))
    )
    assert detect(signal) == "22"


@pytest.mark.parametrize("offset", range(0, 106, 5))
def test_ten_ms_dropout_does_not_split_a_key_press(offset: int) -> None:
    signal = np.concatenate(
        (np.zeros(offset), key("2", 80), silence(10), key("2", 80), silence(60))
    )
    assert detect(signal) == "2"


# --- noise, telephone path, talk-off ---------------------------------------------------


@pytest.mark.parametrize("level", [-10.0, -25.0, -36.0])
def test_digit_sequence_in_white_noise_at_20_db_snr(level: float) -> None:
    rng = np.random.default_rng(2024)
    digits = "0123456789*#ABCD"
    signal = np.concatenate(
        [np.concatenate((key(d, 50, level_dbm0=level), silence(50))) for d in digits]
    )
    tone_power = (DBM0_PEAK * 10 ** (level / 20)) ** 2  # two sines of power A**2 / 2
    noise = rng.normal(0.0, np.sqrt(tone_power / 10 ** (20 / 10)), len(signal))
    assert detect(signal + noise) == digits


@pytest.mark.parametrize(
    ("encode", "decode"), [(ulaw_encode, ulaw_decode), (alaw_encode, alaw_decode)]
)
def test_through_g711(
    encode: Callable[[np.ndarray], bytes], decode: Callable[[bytes], np.ndarray]
) -> None:
    digits = "159#"
    signal = np.concatenate(
        [
            np.concatenate((key(d, 45, level_dbm0=lv), silence(45)))
            for d, lv in zip(digits, (-3, -15, -28, -36), strict=True)
        ]
    )
    line = decode(encode(pcm16(signal)))
    assert line.dtype == np.int16 and not np.array_equal(line, pcm16(signal))
    assert detect(line) == digits


def read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as w:
        assert (w.getframerate(), w.getsampwidth(), w.getnchannels()) == (8000, 2, 1), path
        return np.frombuffer(w.readframes(w.getnframes()), "<i2")


def test_digits_between_real_prompts() -> None:
    speech = [read_wav(SOUNDS / name) for name in ("vm-goodbye.wav", "tt-monkeys.wav", "beep.wav")]
    parts: list[np.ndarray] = []
    for prompt, digit in zip(speech, "7*3", strict=True):
        parts += [prompt.astype(np.float64), key(digit, 70, level_dbm0=-20.0), silence(30)]
    assert detect(np.concatenate(parts)) == "7*3"


def test_third_tone_or_strong_harmonics_are_not_digits() -> None:
    t = np.arange(800) / RATE
    third = framed(key("5", 100) + 7000 * np.sin(2 * np.pi * 2000 * t))
    assert detect(third) == ""
    harmonics = framed(key("5", 100) + 5000 * np.sin(2 * np.pi * 2 * 770 * t))
    assert detect(harmonics) == ""


def test_speech_yields_no_false_digits() -> None:
    """Talk-off: every Asterisk core prompt (human speech, 8 kHz), fed as 20 ms frames."""
    files = sorted(SOUNDS.glob("**/*.wav"))
    assert len(files) > 500  # the whole asterisk-core-sounds-en-wav package
    seconds = 0.0
    false_digits: list[tuple[str, str]] = []
    for path in files:
        pcm = read_wav(path)
        seconds += len(pcm) / RATE
        found = detect(pcm, chunk=160)
        if found:
            false_digits.append((path.name, found))
    assert seconds > 1000
    assert false_digits == []


def test_other_rates_are_refused() -> None:
    with pytest.raises(
        ValueError, match=r"^in-band DTMF detection runs at 8000 Hz, got 16000 \(resample first\)$"
    ):
        InbandDtmfDetector(16000)
