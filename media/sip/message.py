"""SIP messages (RFC 3261 §7, §20): parse, model, serialize, build responses.

``parse_message`` reads one datagram (or one framed TCP message). The start
line is checked strictly: one SP between the elements and nothing after the
version (RFC 4475 lwsstart, trws, lwsruri), a valid Request-URI without
header components (ltgtruri, escruri), a 3-digit status code (bigcode), SIP
version 2.0 (else status 505: badvers). Header lines are unfolded (LWS
continuation lines), names matched case-insensitively with compact forms
expanded, and values kept raw and in order; typed views (``vias``, ``from_``,
``cseq``, ``max_forwards`` ...) parse only when read and raise
:class:`SipParseError` naming the header and the fault.

Content-Length is exact: a datagram with more bytes than it announces is cut
to it (RFC 4475 dblreq), one with fewer is an error (clerr), as are a negative
value (ncl) and conflicting values (mcl01); a datagram without the header
keeps the rest as body, a stream message without it is an error. Bodies are
bytes and never decoded. ``bytes(message)`` always writes the Content-Length
of the body it carries.

Errors and answering them: every failure of ``parse_message`` is a
:class:`SipParseError`. When the start line shows a request (a method token
and a ``SIP/x.y`` version, even if the Request-URI or the spacing is wrong),
``SipParseError.partial`` is that :class:`Request` with every header line that
could be read, so a UAS can answer with ``make_response(exc.partial,
exc.status)``: its Via, From, To, Call-ID and CSeq are copied raw. Typed
accessors of a parsed message raise with ``partial`` set to the message;
``Request.validate()`` runs the checks RFC 3261 §8.2 needs (mandatory
headers present once and well formed, CSeq method matching) in one call.
Semantic answers (416, 420, 483, 415 ...) are the UA's.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from media.sip.errors import SipParseError, SipUsageError
from media.sip.headers import (
    MAX_DELTA,
    ContentType,
    CSeq,
    NameAddr,
    Via,
    check_call_id,
    is_token,
    parse_date,
    parse_name_addrs,
    parse_option_tags,
    parse_uint,
    parse_vias,
    split_list,
)
from media.sip.uri import OpaqueUri, SipUri

T = TypeVar("T")

MAX_MESSAGE = 65535
COMPACT = {
    "i": "Call-ID", "m": "Contact", "e": "Content-Encoding", "l": "Content-Length",
    "c": "Content-Type", "f": "From", "s": "Subject", "k": "Supported", "t": "To",
    "v": "Via", "o": "Event", "u": "Allow-Events", "r": "Refer-To", "b": "Referred-By",
    "x": "Session-Expires", "y": "Identity", "j": "Reject-Contact", "a": "Accept-Contact",
    "d": "Request-Disposition",
}  # fmt: skip
_KNOWN = (
    "Accept", "Accept-Contact", "Accept-Encoding", "Accept-Language", "Alert-Info", "Allow",
    "Allow-Events", "Authentication-Info", "Authorization", "Call-ID", "Call-Info", "Contact",
    "Content-Disposition", "Content-Encoding", "Content-ID", "Content-Language",
    "Content-Length", "Content-Type", "CSeq", "Date", "Error-Info", "Event", "Expires",
    "From", "History-Info", "Identity", "In-Reply-To", "Max-Forwards", "MIME-Version",
    "Min-Expires", "Min-SE", "Organization", "P-Asserted-Identity", "P-Preferred-Identity",
    "Path", "Priority", "Privacy", "Proxy-Authenticate", "Proxy-Authorization",
    "Proxy-Require", "RAck", "Reason", "Record-Route", "Refer-To", "Referred-By",
    "Reject-Contact", "Remote-Party-ID", "Replaces", "Reply-To", "Request-Disposition",
    "Require", "Retry-After", "Route", "RSeq", "Server", "Service-Route", "Session-Expires",
    "Session-ID", "SIP-ETag", "SIP-If-Match", "Subject", "Subscription-State", "Supported",
    "Timestamp", "To", "Unsupported", "User-Agent", "User-to-User", "Via", "Warning",
    "WWW-Authenticate",
)  # fmt: skip
_CANONICAL = {name.lower(): name for name in _KNOWN}
_COMPACT_KEY = {short: full.lower() for short, full in COMPACT.items()}
# Exact spellings seen most (canonical, lower case, compact) -> (key, output name).
_RESOLVED: dict[str, tuple[str, str]] = {
    **{n: (n.lower(), n) for n in _KNOWN},
    **{n.lower(): (n.lower(), n) for n in _KNOWN},
    **{s: (full.lower(), full) for s, full in COMPACT.items()},
    **{s.upper(): (full.lower(), full) for s, full in COMPACT.items()},
}
# Headers whose value is a comma-separated list (RFC 3261 §7.3.1); others are never split.
LIST_HEADERS = frozenset(
    n.lower()
    for n in (
        "Accept", "Accept-Contact", "Accept-Encoding", "Accept-Language", "Alert-Info",
        "Allow", "Allow-Events", "Call-Info", "Contact", "Content-Encoding",
        "Content-Language", "Error-Info", "History-Info", "In-Reply-To",
        "P-Asserted-Identity", "P-Preferred-Identity", "Path", "Proxy-Require", "Reason",
        "Record-Route", "Reject-Contact", "Request-Disposition", "Require", "Route",
        "Service-Route", "Supported", "Unsupported", "Via", "Warning",
    )
)  # fmt: skip
REASONS = {
    100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded", 182: "Queued",
    183: "Session Progress", 199: "Early Dialog Terminated", 200: "OK", 202: "Accepted",
    204: "No Notification", 300: "Multiple Choices", 301: "Moved Permanently",
    302: "Moved Temporarily", 305: "Use Proxy", 380: "Alternative Service",
    400: "Bad Request", 401: "Unauthorized", 402: "Payment Required", 403: "Forbidden",
    404: "Not Found", 405: "Method Not Allowed", 406: "Not Acceptable",
    407: "Proxy Authentication Required", 408: "Request Timeout", 410: "Gone",
    412: "Conditional Request Failed", 413: "Request Entity Too Large",
    414: "Request-URI Too Long", 415: "Unsupported Media Type",
    416: "Unsupported URI Scheme", 417: "Unknown Resource-Priority", 420: "Bad Extension",
    421: "Extension Required", 422: "Session Interval Too Small", 423: "Interval Too Brief",
    428: "Use Identity Header", 429: "Provide Referrer Identity", 430: "Flow Failed",
    433: "Anonymity Disallowed", 436: "Bad Identity-Info", 437: "Unsupported Certificate",
    438: "Invalid Identity Header", 439: "First Hop Lacks Outbound Support",
    440: "Max-Breadth Exceeded", 469: "Bad Info Package", 470: "Consent Needed",
    480: "Temporarily Unavailable", 481: "Call/Transaction Does Not Exist",
    482: "Loop Detected", 483: "Too Many Hops", 484: "Address Incomplete", 485: "Ambiguous",
    486: "Busy Here", 487: "Request Terminated", 488: "Not Acceptable Here",
    489: "Bad Event", 491: "Request Pending", 493: "Undecipherable",
    494: "Security Agreement Required", 500: "Server Internal Error",
    501: "Not Implemented", 502: "Bad Gateway", 503: "Service Unavailable",
    504: "Server Time-out", 505: "Version Not Supported", 513: "Message Too Large",
    580: "Precondition Failure", 600: "Busy Everywhere", 603: "Decline",
    604: "Does Not Exist Anywhere", 606: "Not Acceptable", 607: "Unwanted", 608: "Rejected",
}  # fmt: skip
DIALOG_CREATING = frozenset({"INVITE", "SUBSCRIBE", "REFER", "NOTIFY"})
_VERSION = re.compile(r"[Ss][Ii][Pp]/([0-9]{1,3}\.[0-9]{1,3})")


def reason_phrase(status: int) -> str:
    """The standard reason phrase for ``status`` (that of its class for unknown codes)."""
    return REASONS.get(status) or REASONS.get(status // 100 * 100, "Unknown")


def _resolve(name: str) -> tuple[str, str]:
    """(match key, output spelling) for a header name: compact forms expanded,
    known names in canonical case, unknown names as written."""
    known = _RESOLVED.get(name)
    if known is not None:
        return known
    low = name.lower()
    if len(low) == 1:
        low = _COMPACT_KEY.get(low, low)
    return low, _CANONICAL.get(low, name)


def canonical(name: str) -> str:
    """Canonical spelling of a header name (compact forms expanded)."""
    return _resolve(name)[1]


class Headers:
    """Ordered, case-insensitive multi-map of raw header values.

    Names are matched case-insensitively with compact forms folded into
    their full names; ``items()`` gives canonical spellings for known
    headers and the original spelling for extension headers. ``get_all``
    splits comma lists only for headers defined as lists (Via, Contact,
    Route, Require ...), never inside quotes or ``<...>``; other headers
    (WWW-Authenticate, Authorization, Date ...) come back one value per line.
    """

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: list[tuple[str, str, str]] = []
        for name, value in items:
            self.add(name, value)

    @staticmethod
    def _checked(name: str, value: str) -> tuple[str, str, str]:
        if not is_token(name):
            raise SipUsageError(f"invalid header name {name!r}")
        if "\r" in value or "\n" in value:
            raise SipUsageError(f"{name}: header value contains CR or LF")
        key, out = _resolve(name)
        return key, out, value

    def get(self, name: str) -> str | None:
        """The first value of ``name`` (raw, unsplit), or ``None``."""
        key = _resolve(name)[0]
        for k, _, v in self._items:
            if k == key:
                return v
        return None

    def values(self, name: str) -> list[str]:
        """Every header line's value for ``name``, raw and unsplit."""
        key = _resolve(name)[0]
        return [v for k, _, v in self._items if k == key]

    def get_all(self, name: str) -> list[str]:
        """All values of ``name``: list headers split on commas, empty items dropped."""
        key = _resolve(name)[0]
        values = [v for k, _, v in self._items if k == key]
        if key not in LIST_HEADERS:
            return values
        return [item for v in values for item in split_list(v) if item]

    def count(self, name: str) -> int:
        """How many header lines carry ``name``."""
        key = _resolve(name)[0]
        return sum(1 for k, _, _ in self._items if k == key)

    def add(self, name: str, value: str) -> None:
        """Append a header line."""
        self._items.append(self._checked(name, value))

    def prepend(self, name: str, value: str) -> None:
        """Insert a header line before all others (e.g. a new top Via)."""
        self._items.insert(0, self._checked(name, value))

    def set(self, name: str, value: str) -> None:
        """Replace all lines of ``name`` by one, at the place of the first."""
        item = self._checked(name, value)
        key = item[0]
        for i, (k, _, _) in enumerate(self._items):
            if k == key:
                self._items[i] = item
                self._items[i + 1 :] = [x for x in self._items[i + 1 :] if x[0] != key]
                return
        self._items.append(item)

    def remove(self, name: str) -> None:
        """Remove every line of ``name``."""
        key = _resolve(name)[0]
        self._items = [x for x in self._items if x[0] != key]

    def items(self) -> list[tuple[str, str]]:
        """(name, raw value) for every header line, in order."""
        return [(n, v) for _, n, v in self._items]

    def copy(self) -> Headers:
        """An independent copy (the values are shared strings)."""
        h = Headers()
        h._items = list(self._items)
        return h

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self.items())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        return [(k, v) for k, _, v in self._items] == [(k, v) for k, _, v in other._items]

    def __repr__(self) -> str:
        return f"Headers({self.items()!r})"


@dataclass
class _Message:
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""
    version: str = "2.0"

    def _typed(self, parse: Callable[[], T]) -> T:
        try:
            return parse()
        except SipParseError as exc:
            if exc.partial is None:
                exc.partial = self  # type: ignore[assignment]
            raise

    def _single(self, name: str) -> str:
        values = self.headers.values(name)
        if not values:
            raise SipParseError(f"missing {name} header", partial=self)  # type: ignore[arg-type]
        if len(values) > 1:
            raise SipParseError(
                f"{name}: {len(values)} header lines where one is allowed",
                partial=self,  # type: ignore[arg-type]
            )
        return values[0]

    def _optional(self, name: str) -> str | None:
        return self._single(name) if name in self.headers else None

    @property
    def call_id(self) -> str:
        """The Call-ID (``word["@"word]``), exactly one header line."""
        return self._typed(lambda: check_call_id(self._single("Call-ID")))

    @property
    def cseq(self) -> CSeq:
        """The CSeq (sequence number below 2**31), exactly one header line."""
        return self._typed(lambda: CSeq.parse(self._single("CSeq")))

    @property
    def vias(self) -> list[Via]:
        """Every Via, top first (RFC 5118 IPv6 rules; received with or without brackets)."""
        return self._typed(lambda: parse_vias(self.headers.values("Via")))

    @property
    def top_via(self) -> Via:
        """The first Via; a message without one raises."""
        vias = self.vias
        if not vias:
            raise SipParseError("missing Via header", partial=self)  # type: ignore[arg-type]
        return vias[0]

    @property
    def from_(self) -> NameAddr:
        """The From address with its tag, exactly one header line."""
        return self._typed(lambda: NameAddr.parse(self._single("From"), "From"))

    @property
    def to(self) -> NameAddr:
        """The To address with its tag (if any), exactly one header line."""
        return self._typed(lambda: NameAddr.parse(self._single("To"), "To"))

    @property
    def contact(self) -> list[NameAddr]:
        """Contact addresses; a lone ``*`` (REGISTER) gives ``[]`` (see ``contact_is_star``)."""
        if self.contact_is_star:
            return []
        return self._typed(lambda: parse_name_addrs(self.headers.values("Contact"), "Contact"))

    @property
    def contact_is_star(self) -> bool:
        """Contact is the single ``*`` of a REGISTER removing all bindings."""
        return [v.strip() for v in self.headers.values("Contact")] == ["*"]

    @property
    def route(self) -> list[NameAddr]:
        """Route entries, in order."""
        return self._typed(lambda: parse_name_addrs(self.headers.values("Route"), "Route"))

    @property
    def record_route(self) -> list[NameAddr]:
        """Record-Route entries, in order."""
        values = self.headers.values("Record-Route")
        return self._typed(lambda: parse_name_addrs(values, "Record-Route"))

    @property
    def max_forwards(self) -> int | None:
        """Max-Forwards (0-255), ``None`` when absent (RFC 4475 zeromf, scalar02)."""
        raw = self._optional("Max-Forwards")
        return None if raw is None else self._typed(lambda: parse_uint(raw, "Max-Forwards", 255))

    @property
    def expires(self) -> int | None:
        """Expires in delta-seconds (up to 2**32-1), ``None`` when absent."""
        raw = self._optional("Expires")
        return None if raw is None else self._typed(lambda: parse_uint(raw, "Expires", MAX_DELTA))

    @property
    def content_type(self) -> str | None:
        """Lower-cased media type (``"application/sdp"``) as written; never raises."""
        value = self.headers.get("Content-Type")
        return value.split(";")[0].strip().lower() if value is not None else None

    @property
    def content_type_header(self) -> ContentType | None:
        """The Content-Type parsed and checked (type, subtype, parameters)."""
        raw = self._optional("Content-Type")
        return None if raw is None else self._typed(lambda: ContentType.parse(raw))

    def _tags(self, name: str) -> list[str]:
        return self._typed(lambda: parse_option_tags(self.headers.get_all(name), name))

    @property
    def require(self) -> list[str]:
        """Option tags of Require (the UA answers 420 for unknown ones)."""
        return self._tags("Require")

    @property
    def proxy_require(self) -> list[str]:
        """Option tags of Proxy-Require."""
        return self._tags("Proxy-Require")

    @property
    def supported(self) -> list[str]:
        """Supported option tags (an empty ``Supported:`` header gives ``[]``)."""
        return self._tags("Supported")

    @property
    def unsupported(self) -> list[str]:
        """Option tags of Unsupported."""
        return self._tags("Unsupported")

    @property
    def date(self) -> datetime | None:
        """The Date header as UTC; a zone other than GMT is an error (RFC 4475 baddate)."""
        raw = self._optional("Date")
        return None if raw is None else self._typed(lambda: parse_date(raw))

    def _check(self) -> None:
        for name in ("Via", "From", "To", "Call-ID", "CSeq"):
            if name not in self.headers:
                raise SipParseError(f"missing {name} header", partial=self)  # type: ignore[arg-type]
        self.top_via  # noqa: B018 - parsed to validate
        for view in ("from_", "to", "call_id", "cseq", "max_forwards", "contact"):
            getattr(self, view)
        for view in ("record_route", "content_type_header", "expires", "date"):
            getattr(self, view)

    def _serialize(self, start: str) -> bytes:
        out = [start]
        length = str(len(self.body))
        written = False
        for key, name, value in self.headers._items:
            if key == "content-length":
                if not written:
                    out.append("Content-Length: " + length)
                    written = True
            else:
                out.append(f"{name}: {value}")
        if not written:
            out.append("Content-Length: " + length)
        out.append("\r\n")
        return "\r\n".join(out).encode("utf-8", "surrogateescape") + self.body


@dataclass
class Request(_Message):
    """A SIP request: ``method``, ``uri`` (text), ``headers``, ``body``, ``version``."""

    method: str = ""
    uri: str = ""

    @property
    def request_uri(self) -> SipUri | OpaqueUri:
        """The Request-URI parsed (an :class:`OpaqueUri` for non-SIP schemes: 416 is the UA's)."""
        return self._typed(lambda: SipUri.parse(self.uri))

    @property
    def cseq(self) -> CSeq:
        """The CSeq; its method must be the request's (RFC 4475 mismatch01/02)."""
        return self._typed(lambda: CSeq.parse(self._single("CSeq"), self.method))

    def validate(self) -> None:
        """Check what RFC 3261 §8.2 needs before processing; raise :class:`SipParseError`.

        Via, From, To, Call-ID and CSeq must be present once and well formed,
        and the CSeq method must match; Max-Forwards, Contact, Record-Route,
        Content-Type, Expires and Date must be well formed when present. The
        error's ``partial`` is this request. Semantics (Require, schemes,
        Max-Forwards of 0) are left to the UA.
        """
        self._check()
        self.request_uri  # noqa: B018

    def __bytes__(self) -> bytes:
        return self._serialize(f"{self.method} {self.uri} SIP/{self.version}")


@dataclass
class Response(_Message):
    """A SIP response: ``status``, ``reason``, ``headers``, ``body``, ``version``."""

    status: int = 0
    reason: str = ""

    def validate(self) -> None:
        """The checks of :meth:`Request.validate` that apply to a response."""
        self._check()

    def __bytes__(self) -> bytes:
        return self._serialize(f"SIP/{self.version} {self.status} {self.reason}")


def make_request(
    method: str, uri: str, headers: Iterable[tuple[str, str]], body: bytes = b""
) -> Request:
    """A request with the given headers (Content-Length is added on serialization)."""
    return Request(Headers(headers), body, "2.0", method, uri)


def _version(text: str) -> str | None:
    m = _VERSION.fullmatch(text)
    return m.group(1) if m else None


def _start_line(line: str) -> tuple[Request | Response | None, SipParseError | None]:
    """The message the start line announces, and the error if the line is wrong."""
    if line[:4].upper() == "SIP/":
        parts = line.split(" ", 2)
        version = _version(parts[0])
        if version is None:
            return None, SipParseError(f"status line: invalid SIP version {parts[0][:20]!r}")
        code = parts[1] if len(parts) > 1 else ""
        if not (len(code) == 3 and code.isascii() and code.isdigit() and 100 <= int(code) <= 699):
            return None, SipParseError(
                f"status line: status code {code[:20]!r} is not a number from 100 to 699"
            )
        return Response(
            Headers(), b"", version, int(code), parts[2] if len(parts) > 2 else ""
        ), None
    parts = line.split(" ")
    if len(parts) == 3 and all(parts):
        method, uri, ver = parts
        version = _version(ver)
        if version is None or not is_token(method):
            return None, SipParseError(f"malformed request line {line[:80]!r}")
        req = Request(Headers(), b"", version, method, uri)
        try:
            parsed = SipUri.parse(uri)
        except SipParseError as exc:
            return req, SipParseError(f"Request-URI: {exc.reason}", partial=req)
        if isinstance(parsed, SipUri) and parsed.headers:
            return req, SipParseError(
                "Request-URI: header components ('?...') are not allowed in a Request-URI "
                "(RFC 3261 §19.1.1)",
                partial=req,
            )
        return req, None
    words = line.split()
    if len(words) >= 3 and is_token(words[0]) and _version(words[-1]) is not None:
        req = Request(Headers(), b"", _version(words[-1]) or "", words[0], " ".join(words[1:-1]))
        if len(words) > 3 and " ".join(words) == line:
            reason = f"request line: white space inside the Request-URI {req.uri[:60]!r}"
        else:
            reason = (
                "request line: elements must be separated by exactly one SP with nothing "
                f"after the version (RFC 3261 §7.1): {line[:80]!r}"
            )
        return req, SipParseError(reason, partial=req)
    return None, SipParseError(f"not a SIP request or status line: {line[:80]!r}")


def _read_head(head: bytes) -> tuple[Request | Response | None, SipParseError | None, list[str]]:
    """Start line and header lines; never raises. Returns (message, start error, problems)."""
    text = head.decode("utf-8", "surrogateescape")
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    lines = text.split("\n")
    while len(lines) > 1 and not lines[-1]:  # a datagram that ended without its blank line
        lines.pop()
    message, error = _start_line(lines[0])
    headers = message.headers if message is not None else Headers()
    items = headers._items
    problems: list[str] = []
    name: str | None = None
    parts: list[str] = []
    for number in range(1, len(lines)):
        line = lines[number]
        if line[:1] in (" ", "\t"):
            if name is None:
                problems.append(f"line {number + 1}: continuation line without a header before it")
            elif "\r" in line:
                problems.append(f"line {number + 1}: {name}: bare CR in a continuation line")
            else:
                parts.append(line.strip())
            continue
        if name is not None:
            key, out = _resolve(name)
            items.append((key, out, " ".join(p for p in parts if p)))
            name = None
        colon = line.find(":")
        candidate = line[:colon].rstrip(" \t") if colon > 0 else ""
        if not candidate or not is_token(candidate):
            problems.append(f"line {number + 1}: malformed header line {line[:40]!r}")
        elif "\r" in line:
            problems.append(f"line {number + 1}: {candidate}: bare CR in the header line")
        else:
            name = candidate
            parts = [line[colon + 1 :].strip()]
    if name is not None:
        key, out = _resolve(name)
        items.append((key, out, " ".join(p for p in parts if p)))
    return message, error, problems


def _blank_line(data: bytes, start: int) -> tuple[int, int]:
    """(end of the header block, start of the body); (-1, -1) if there is no blank line."""
    crlf = data.find(b"\r\n\r\n", start)
    lf = data.find(b"\n\n", start)
    if lf >= 0 and (crlf < 0 or lf < crlf):
        return lf, lf + 2
    return (crlf, crlf + 4) if crlf >= 0 else (-1, -1)


def parse_message(
    data: bytes, *, stream: bool = False, max_size: int = MAX_MESSAGE
) -> Request | Response:
    """Parse one SIP message (a datagram, or a frame cut by ``StreamParser``).

    ``stream=True`` makes Content-Length mandatory (RFC 3261 §18.3). Raises
    :class:`SipParseError` (and nothing else) with ``status`` 400, 505 for
    a SIP version other than 2.0, or 413 for a message over ``max_size``
    bytes; ``partial`` is set as the module docstring describes.
    """
    start = 0
    n = len(data)
    while start < n and data[start] in (13, 10):  # RFC 3261 §7.5: CRLFs before the start line
        start += 1
    head_end, body_start = _blank_line(data, start)
    if head_end < 0:  # the datagram ended without the blank line
        head_end = body_start = n
    message, error, problems = _read_head(data[start:head_end])
    if message is None:
        raise error or SipParseError("empty message")
    if n > max_size:
        raise SipParseError(f"message of {n} bytes exceeds {max_size}", 413, message)
    if error is not None:
        raise error
    if message.version != "2.0":
        raise SipParseError(f"SIP version {message.version} is not supported", 505, message)
    if problems:
        raise SipParseError(problems[0], partial=message)
    body = data[body_start:]
    lengths = message.headers.values("Content-Length")
    if lengths:
        distinct = sorted({v.strip() for v in lengths})
        if len(distinct) > 1:
            raise SipParseError(
                f"Content-Length: conflicting values {', '.join(v[:12] for v in distinct)}",
                partial=message,
            )
        try:
            length = parse_uint(distinct[0], "Content-Length", 2**31 - 1)
        except SipParseError as exc:
            exc.partial = message
            raise
        if length > len(body):
            raise SipParseError(
                f"Content-Length: {length} bytes announced, {len(body)} received",
                partial=message,
            )
        body = body[:length]
        message.headers.set("Content-Length", str(length))
    elif stream:
        raise SipParseError(
            "Content-Length is mandatory on a stream transport (RFC 3261 §18.3)", partial=message
        )
    message.body = body
    return message


def make_response(
    req: Request,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    body: bytes = b"",
    content_type: str | None = None,
    headers: Iterable[tuple[str, str]] = (),
) -> Response:
    """A response to ``req`` built per RFC 3261 §8.2.6.

    Copies every Via (in order), From, Call-ID, CSeq and To, adding
    ``;tag=to_tag`` to To when it has no tag (not on a 100, which does not
    establish a dialog); copies Record-Route into 101-299 responses to
    dialog-creating methods (INVITE, SUBSCRIBE, REFER, NOTIFY: RFC 3261
    §12.1.1) and Timestamp into a 100 (§8.2.6.1). ``reason`` defaults to the
    standard phrase; ``headers`` are appended after the copied ones and
    ``content_type`` sets Content-Type for ``body``. Works on a partial
    request from :class:`SipParseError` (headers are copied raw).
    """
    out = Headers()
    items = out._items
    copy_rr = req.method in DIALOG_CREATING and 100 < status < 300
    for key, name, value in req.headers._items:
        if key in ("via", "from", "call-id", "cseq"):
            items.append((key, name, value))
        elif key == "to":
            if to_tag and status != 100 and not _has_tag(value):
                value = f"{value};tag={to_tag}"
            items.append((key, name, value))
        elif (key == "record-route" and copy_rr) or (key == "timestamp" and status == 100):
            items.append((key, name, value))
    for name, value in headers:
        out.add(name, value)
    if content_type:
        out.set("Content-Type", content_type)
    return Response(
        out, body, "2.0", status, reason if reason is not None else reason_phrase(status)
    )


def _has_tag(to_value: str) -> bool:
    try:
        return NameAddr.parse(to_value, "To").tag is not None
    except SipParseError:
        return ";tag=" in to_value.replace(" ", "").lower()
