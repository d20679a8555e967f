"""SIP errors, split by whose fault they are (the h11 way).

::

    ValueError
    +-- SipParseError          the peer's fault: a message or header we cannot accept
    |   +-- StreamFramingError (media.sip.stream) the byte stream lost its framing
    RuntimeError
    +-- SipUsageError          our fault: the application misused the API

``SipParseError`` carries the status a UAS should answer with (``status``),
what is wrong and where (``reason``, e.g. ``"Via: missing branch"``) and, when
the start line of a request could be read, the message as far as it was
parsed (``partial``) so that a 400 can be built from its Via, From, To,
Call-ID and CSeq. It subclasses ``ValueError`` so that callers which only
know "bad input" can catch that.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from media.sip.message import Request, Response


class SipParseError(ValueError):
    """A malformed SIP message or header value.

    ``reason`` names the header or line and what is wrong with it; ``status``
    is the response a UAS should send (400 in general, 505 for an unsupported
    SIP version, 413 for an oversized message); ``partial`` is the request or
    response as far as it could be parsed (``None`` when not even its start
    line was recognisable). For errors raised by a typed accessor of a parsed
    message, ``partial`` is that message.
    """

    def __init__(
        self, reason: str, status: int = 400, partial: Request | Response | None = None
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.partial = partial

    def __str__(self) -> str:
        return self.reason


class SipUsageError(RuntimeError):
    """The application called the SIP layer in a way it does not allow."""
