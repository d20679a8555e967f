"""SIP errors, split by whose fault they are (the h11 way).

``SipParseError`` is the peer's: a message we cannot accept. It carries the
status a UAS should answer with and, when the start line was readable, the
partially parsed message so that answer can be built.
``SipUsageError`` is ours: the application misused the API.
"""

from __future__ import annotations

from typing import Any


class SipParseError(ValueError):
    """A malformed SIP message or header; ``reason`` says what and where."""

    def __init__(self, reason: str, status: int = 400, partial: Any = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.partial = partial


class SipUsageError(RuntimeError):
    """The application called the SIP stack in a way it does not allow."""
