"""DTMF carried in SIP INFO bodies: ``application/dtmf-relay`` and ``application/dtmf``.

``application/dtmf-relay`` (Cisco style, what Asterisk and most PBXs send)::

    Signal=5
    Duration=160

Keys are case-insensitive and may have spaces around ``=``; lines end in CRLF
or LF; other keys are ignored. ``Signal`` is one of ``0-9 * # A-D`` (any
case), or the event codes 10 and 11 for ``*`` and ``#`` (12-15 for A-D), as
some gateways send. ``Duration`` is in milliseconds and defaults to 250.

``application/dtmf`` is the bare digit (or event code) as the whole body.

Anything else raises :class:`DtmfBodyError` (a ``ValueError``) saying what
and where; the caller answers the INFO with 400 or 415.
"""

from __future__ import annotations

from media.dtmf.rfc4733 import EVENTS

__all__ = [
    "DEFAULT_DURATION_MS",
    "DtmfBodyError",
    "build_dtmf_relay",
    "parse_dtmf",
    "parse_dtmf_relay",
]

DEFAULT_DURATION_MS = 250
MAX_DURATION_MS = 60_000


class DtmfBodyError(ValueError):
    """An INFO body that does not carry a DTMF digit; the message says why."""


def _digit(value: str, where: str) -> str:
    text = value.strip()
    if len(text) == 1 and text.upper() in EVENTS:
        return text.upper()
    if text.isascii() and text.isdigit() and len(text) == 2 and 10 <= int(text) < len(EVENTS):
        return EVENTS[int(text)]  # event codes: 10 '*', 11 '#', 12-15 'A'-'D'
    raise DtmfBodyError(f"{where}: {text!r} is not a DTMF digit (0-9, *, #, A-D, 10, 11)")


def _text(body: bytes, where: str) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as err:
        raise DtmfBodyError(f"{where}: body is not UTF-8 (byte {err.start})") from None


def parse_dtmf_relay(body: bytes) -> tuple[str, int]:
    """``b"Signal=5\\r\\nDuration=160"`` -> ``("5", 160)``; duration defaults to 250 ms."""
    where = "application/dtmf-relay"
    signal: str | None = None
    duration: int | None = None
    for number, line in enumerate(_text(body, where).splitlines(), start=1):
        if not line.strip():
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise DtmfBodyError(f"{where} line {number}: {line.strip()!r} has no '='")
        key = key.strip().lower()
        if key == "signal":
            if signal is not None:
                raise DtmfBodyError(f"{where} line {number}: second Signal line")
            signal = _digit(value, f"{where} line {number}: Signal")
        elif key == "duration":
            if duration is not None:
                raise DtmfBodyError(f"{where} line {number}: second Duration line")
            duration = _duration(value.strip(), f"{where} line {number}: Duration")
    if signal is None:
        raise DtmfBodyError(f"{where}: no Signal= line")
    return signal, DEFAULT_DURATION_MS if duration is None else duration


def _duration(text: str, where: str) -> int:
    if not (text.isascii() and text.isdigit()) or int(text) > MAX_DURATION_MS:
        raise DtmfBodyError(f"{where} {text!r} is not a number of milliseconds (0-60000)")
    return int(text)


def parse_dtmf(body: bytes) -> str:
    """``b"5"`` -> ``"5"`` (``application/dtmf``: the digit is the whole body)."""
    return _digit(_text(body, "application/dtmf"), "application/dtmf")


def build_dtmf_relay(digit: str, duration_ms: int = DEFAULT_DURATION_MS) -> bytes:
    """The ``application/dtmf-relay`` body that sends ``digit`` for ``duration_ms``."""
    signal = _digit(digit, "digit")
    if not 0 <= duration_ms <= MAX_DURATION_MS:
        raise DtmfBodyError(f"duration {duration_ms} ms is outside 0-60000")
    return f"Signal={signal}\r\nDuration={duration_ms}\r\n".encode()
