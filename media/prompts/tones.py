"""Tones and silence as 8 kHz int16 audio: call progress, beeps, DTMF.

Levels are in dBm0, the G.711 reference level (ITU-T G.711/G.100.1): the
codec overloads at +3.14 dBm0, so a 0 dBm0 sine has a peak of
10**(-3.14/20) = 0.697 of digital full scale (22,828 of 32,768), i.e. it
sits 3.14 dB below a full-scale sine (-3.14 dBov, with 0 dBov the full-scale
sine). In a tone of several frequencies each component has the given level,
as telephony specifications state them (DTMF, ringback).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "DBM0_PEAK",
    "DTMF_FREQUENCIES",
    "beep",
    "busy",
    "cadence",
    "dtmf_tone",
    "ringback",
    "silence",
    "tone",
]

RATE = 8000
FULL_SCALE = 32768.0
DBM0_PEAK = FULL_SCALE * 10 ** (-3.14 / 20)
"""Peak of a 0 dBm0 sine on the int16 scale (22,828)."""

_ROWS = (697.0, 770.0, 852.0, 941.0)
_COLUMNS = (1209.0, 1336.0, 1477.0, 1633.0)
_KEYPAD = ("123A", "456B", "789C", "*0#D")
DTMF_FREQUENCIES: dict[str, tuple[float, float]] = {
    key: (_ROWS[r], _COLUMNS[c]) for r, row in enumerate(_KEYPAD) for c, key in enumerate(row)
}
"""Digit -> (low/row, high/column) frequency in Hz (ITU-T Q.23)."""


def _samples(duration_ms: float, rate: int, what: str) -> int:
    if duration_ms < 0:
        raise ValueError(f"{what}: duration {duration_ms} ms is negative")
    if rate <= 0:
        raise ValueError(f"{what}: sample rate {rate} is not positive")
    return round(rate * duration_ms / 1000)


def silence(ms: float, rate: int = RATE) -> np.ndarray:
    """``ms`` milliseconds of digital silence (int16 zeros)."""
    return np.zeros(_samples(ms, rate, "silence"), dtype=np.int16)


def _sines(
    freqs: Sequence[float], levels: Sequence[float], duration_ms: float, rate: int, what: str
) -> np.ndarray:
    n = _samples(duration_ms, rate, what)
    if not freqs:
        raise ValueError(f"{what}: no frequency given")
    for f in freqs:
        if not 0 < f < rate / 2:
            raise ValueError(f"{what}: {f} Hz is not between 0 and {rate / 2:g} Hz (rate {rate})")
    amplitudes = [DBM0_PEAK * 10 ** (level / 20) for level in levels]
    if sum(amplitudes) > FULL_SCALE - 1:
        raise ValueError(
            f"{what}: {len(amplitudes)} component(s) at {max(levels):g} dBm0 would clip "
            f"(peak {sum(amplitudes):.0f} > 32767)"
        )
    t = np.arange(n) / rate
    x = np.zeros(n)
    for f, a in zip(freqs, amplitudes, strict=True):
        x += a * np.sin(2 * np.pi * f * t)
    return np.rint(x).astype(np.int16)


def tone(
    freqs: Sequence[float], duration_ms: float, level_dbm0: float = -10.0, rate: int = RATE
) -> np.ndarray:
    """A sum of sines, each component at ``level_dbm0``, starting at phase 0.

    Raises ValueError for no frequency, a frequency outside (0, rate/2), a
    negative duration, or levels whose sum would clip.
    """
    return _sines(freqs, [level_dbm0] * len(freqs), duration_ms, rate, "tone")


def dtmf_tone(
    digit: str, duration_ms: float, level_dbm0: float = -10.0, twist_db: float = 0.0
) -> np.ndarray:
    """The DTMF key tone for ``digit`` (0-9, *, #, A-D; any case) at 8 kHz.

    The low (row) tone is at ``level_dbm0``; the high (column) tone is
    ``twist_db`` dB weaker (negative: stronger), as after a line that
    attenuates the high group. Raises ValueError for another character.
    """
    freqs = DTMF_FREQUENCIES.get(digit.upper()) if len(digit) == 1 else None
    if freqs is None:
        raise ValueError(f"dtmf_tone: {digit!r} is not a DTMF digit (0-9, *, #, A-D)")
    levels = (level_dbm0, level_dbm0 - twist_db)
    return _sines(freqs, levels, duration_ms, RATE, f"dtmf_tone {digit!r}")


def cadence(on: np.ndarray, off_ms: float, repeats: int) -> np.ndarray:
    """``on`` followed by ``off_ms`` of silence, ``repeats`` times."""
    if repeats < 1:
        raise ValueError(f"cadence: repeats must be at least 1, got {repeats}")
    return np.tile(np.concatenate((on, silence(off_ms))), repeats)


def ringback(cycles: int = 1) -> np.ndarray:
    """North American ringback: 440+480 Hz at -19 dBm0, 2 s on, 4 s off, per cycle."""
    return cadence(tone((440, 480), 2000, -19.0), 4000, cycles)


def busy(cycles: int = 4) -> np.ndarray:
    """Busy tone: 480+620 Hz at -24 dBm0, 0.5 s on, 0.5 s off, per cycle."""
    return cadence(tone((480, 620), 500, -24.0), 500, cycles)


def beep(ms: float = 250) -> np.ndarray:
    """The 1 kHz beep at -10 dBm0 before a voicemail recording."""
    return tone((1000,), ms, -10.0)
