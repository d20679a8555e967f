"""SIP INFO DTMF bodies: the forms PBXs send, and exact refusals."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from media.dtmf.info import (
    DEFAULT_DURATION_MS,
    DtmfBodyError,
    build_dtmf_relay,
    parse_dtmf,
    parse_dtmf_relay,
)

RELAY = "application/dtmf-relay"
NOT_A_DIGIT = "is not a DTMF digit (0-9, *, #, A-D, 10, 11)"
NOT_MS = "is not a number of milliseconds (0-60000)"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"Signal=5\r\nDuration=160", ("5", 160)),
        (b"Signal=5\r\nDuration=160\r\n", ("5", 160)),
        (b"Signal= *\r\nDuration= 250\r\n", ("*", 250)),  # Asterisk puts a space after '='
        (b"signal=#\nduration=100\n", ("#", 100)),
        (b"SIGNAL = 0\r\nDURATION = 90", ("0", 90)),
        (b"Signal=10\r\nDuration=120", ("*", 120)),
        (b"Signal=11\r\nDuration=120", ("#", 120)),
        (b"Signal=a\r\nDuration=80", ("A", 80)),
        (b"Signal=15", ("D", DEFAULT_DURATION_MS)),
        (b"Signal=9", ("9", 250)),
        (b"\r\nSignal=7\r\n\r\nDuration=0\r\nVolume=10\r\n", ("7", 0)),  # unknown keys ignored
    ],
)
def test_dtmf_relay_bodies(body: bytes, expected: tuple[str, int]) -> None:
    assert parse_dtmf_relay(body) == expected


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "application/dtmf-relay: no Signal= line"),
        (b"Duration=160", "application/dtmf-relay: no Signal= line"),
        (b"Signal=5\r\nhello", "application/dtmf-relay line 2: 'hello' has no '='"),
        (
            b"Signal=E",
            f"{RELAY} line 1: Signal: 'E' {NOT_A_DIGIT}",
        ),
        (
            b"Signal=16",
            f"{RELAY} line 1: Signal: '16' {NOT_A_DIGIT}",
        ),
        (
            b"Signal=",
            f"{RELAY} line 1: Signal: '' {NOT_A_DIGIT}",
        ),
        (
            b"Signal=55",
            f"{RELAY} line 1: Signal: '55' {NOT_A_DIGIT}",
        ),
        (
            b"Signal=5\r\nDuration=abc",
            f"{RELAY} line 2: Duration 'abc' {NOT_MS}",
        ),
        (
            b"Signal=5\r\nDuration=-5",
            f"{RELAY} line 2: Duration '-5' {NOT_MS}",
        ),
        (
            b"Signal=5\r\nDuration=99999999999999999999",
            f"{RELAY} line 2: Duration '99999999999999999999' {NOT_MS}",
        ),
        (b"Signal=5\r\nSignal=6", "application/dtmf-relay line 2: second Signal line"),
        (
            b"Signal=5\r\nDuration=1\r\nDuration=2",
            "application/dtmf-relay line 3: second Duration line",
        ),
        (b"Signal=\xff", "application/dtmf-relay: body is not UTF-8 (byte 7)"),
    ],
)
def test_dtmf_relay_refusals(body: bytes, message: str) -> None:
    with pytest.raises(DtmfBodyError) as err:
        parse_dtmf_relay(body)
    assert str(err.value) == message
    assert isinstance(err.value, ValueError)


@pytest.mark.parametrize(
    ("body", "digit"),
    [(b"5", "5"), (b"5\r\n", "5"), (b" # ", "#"), (b"*", "*"), (b"d", "D"), (b"11", "#")],
)
def test_application_dtmf(body: bytes, digit: str) -> None:
    assert parse_dtmf(body) == digit


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "application/dtmf: '' is not a DTMF digit (0-9, *, #, A-D, 10, 11)"),
        (b"55", "application/dtmf: '55' is not a DTMF digit (0-9, *, #, A-D, 10, 11)"),
        (b"Signal=5", "application/dtmf: 'Signal=5' is not a DTMF digit (0-9, *, #, A-D, 10, 11)"),
        (
            "\u0665".encode(),
            "application/dtmf: '\u0665' is not a DTMF digit (0-9, *, #, A-D, 10, 11)",
        ),
        (b"\xc3", "application/dtmf: body is not UTF-8 (byte 0)"),
    ],
)
def test_application_dtmf_refusals(body: bytes, message: str) -> None:
    with pytest.raises(DtmfBodyError) as err:
        parse_dtmf(body)
    assert str(err.value) == message


def test_build_and_parse_back() -> None:
    assert build_dtmf_relay("5", 160) == b"Signal=5\r\nDuration=160\r\n"
    assert build_dtmf_relay("b") == b"Signal=B\r\nDuration=250\r\n"
    for digit in "0123456789*#ABCD":
        assert parse_dtmf_relay(build_dtmf_relay(digit, 100)) == (digit, 100)
    with pytest.raises(DtmfBodyError, match=r"^digit: 'x' is not a DTMF digit"):
        build_dtmf_relay("x")
    with pytest.raises(DtmfBodyError, match=r"^duration -1 ms is outside 0-60000$"):
        build_dtmf_relay("1", -1)


@settings(max_examples=1000, deadline=None, derandomize=True)
@given(
    st.binary(max_size=60)
    | st.text(alphabet="SignalDurto=0123456789*#ABCD \r\n-", max_size=60).map(str.encode)
)
def test_any_body_gives_a_digit_or_dtmf_body_error(body: bytes) -> None:
    try:
        digit, duration = parse_dtmf_relay(body)
    except DtmfBodyError:
        pass
    else:
        assert len(digit) == 1 and digit in "0123456789*#ABCD" and 0 <= duration <= 60_000
    try:
        digit = parse_dtmf(body)
    except DtmfBodyError:
        pass
    else:
        assert len(digit) == 1 and digit in "0123456789*#ABCD"
