"""DTMF carried in SIP INFO bodies: ``application/dtmf-relay`` and ``application/dtmf``."""

from __future__ import annotations

from media.dtmf.rfc4733 import EVENTS


class DtmfBodyError(ValueError):
    """An INFO body that does not carry a DTMF digit; the message says why."""


DEFAULT_DURATION_MS = 250


def _digit(value: str, where: str) -> str:
    value = value.strip()
    if value.isdigit() and len(value) == 2 and int(value) < len(EVENTS):
        return EVENTS[int(value)]  # Signal=10 / 11 mean * and #
    if len(value) == 1 and value.upper() in EVENTS:
        return value.upper()
    raise DtmfBodyError(f"{where}: {value!r} is not a DTMF digit (0-9, *, #, A-D)")


def parse_dtmf_relay(body: bytes) -> tuple[str, int]:
    """``b"Signal=5\\r\\nDuration=160"`` -> ``("5", 160)`` (duration defaults to 250 ms)."""
    signal: str | None = None
    duration = DEFAULT_DURATION_MS
    text = body.decode("utf-8", "replace")
    for line in text.splitlines():
        if not line.strip():
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise DtmfBodyError(f"application/dtmf-relay: line {line!r} has no '='")
        key = key.strip().lower()
        if key == "signal":
            signal = _digit(value, "application/dtmf-relay Signal")
        elif key == "duration":
            try:
                duration = int(value.strip())
            except ValueError:
                raise DtmfBodyError(
                    f"application/dtmf-relay: Duration {value.strip()!r} is not a number"
                ) from None
    if signal is None:
        raise DtmfBodyError("application/dtmf-relay: no Signal= line")
    return signal, duration


def parse_dtmf(body: bytes) -> str:
    """``b"5"`` -> ``"5"`` (application/dtmf, one digit)."""
    return _digit(body.decode("utf-8", "replace"), "application/dtmf")


def build_dtmf_relay(digit: str, duration_ms: int = DEFAULT_DURATION_MS) -> bytes:
    """The body of an INFO carrying ``digit``."""
    return f"Signal={_digit(digit, 'digit')}\r\nDuration={duration_ms}\r\n".encode()
