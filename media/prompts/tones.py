"""Tones and silence at 8 kHz: call progress, beeps, DTMF.

Levels are in dBm0 (G.711): a 0 dBm0 sine has an RMS 3.14 dB below digital
full scale, i.e. a peak of 22,775 in int16.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

RATE = 8000
DBM0_PEAK = 22775.0
DTMF_LOW = {
    "1": 697,
    "2": 697,
    "3": 697,
    "A": 697,
    "4": 770,
    "5": 770,
    "6": 770,
    "B": 770,
    "7": 852,
    "8": 852,
    "9": 852,
    "C": 852,
    "*": 941,
    "0": 941,
    "#": 941,
    "D": 941,
}
DTMF_HIGH = {"1": 1209, "4": 1209, "7": 1209, "*": 1209, "2": 1336, "5": 1336, "8": 1336,
             "0": 1336, "3": 1477, "6": 1477, "9": 1477, "#": 1477, "A": 1633, "B": 1633,
             "C": 1633, "D": 1633}  # fmt: skip


def silence(ms: int, rate: int = RATE) -> np.ndarray:
    """``ms`` milliseconds of digital silence."""
    return np.zeros(rate * ms // 1000, dtype=np.int16)


def _sines(freqs: Sequence[float], levels: Sequence[float], ms: int, rate: int) -> np.ndarray:
    t = np.arange(rate * ms // 1000) / rate
    x = np.zeros_like(t)
    for f, level in zip(freqs, levels, strict=True):
        x += DBM0_PEAK * 10 ** (level / 20) * np.sin(2 * np.pi * f * t)
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


def tone(
    freqs: Sequence[float], duration_ms: int, level_dbm0: float = -10.0, rate: int = RATE
) -> np.ndarray:
    """A sum of sines, each at ``level_dbm0``."""
    return _sines(freqs, [level_dbm0] * len(freqs), duration_ms, rate)


def dtmf_tone(
    digit: str, duration_ms: int = 100, level_dbm0: float = -10.0, twist_db: float = 0.0
) -> np.ndarray:
    """A DTMF key tone; ``twist_db`` > 0 makes the high tone that much weaker."""
    key = digit.upper()
    if key not in DTMF_LOW:
        raise ValueError(f"not a DTMF digit: {digit!r}")
    return _sines(
        (DTMF_LOW[key], DTMF_HIGH[key]), (level_dbm0, level_dbm0 - twist_db), duration_ms, RATE
    )


def cadence(on: np.ndarray, off_ms: int, repeats: int) -> np.ndarray:
    """``on`` followed by ``off_ms`` of silence, ``repeats`` times."""
    return np.concatenate([np.concatenate((on, silence(off_ms)))] * repeats)


def ringback(seconds: int = 6) -> np.ndarray:
    """North American ringback: 440+480 Hz, 2 s on, 4 s off."""
    return cadence(tone((440, 480), 2000, -19), 4000, max(1, seconds // 6))


def busy(seconds: int = 3) -> np.ndarray:
    """Busy tone: 480+620 Hz, 0.5 s on, 0.5 s off."""
    return cadence(tone((480, 620), 500, -24), 500, max(1, seconds))


def beep(ms: int = 250) -> np.ndarray:
    """The 1 kHz beep before a voicemail recording."""
    return tone((1000,), ms, -10)
