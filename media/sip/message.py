"""SIP messages (RFC 3261 §7, §20): parse, model, serialize, build responses.

``parse_message`` reads one datagram (or one framed TCP message). The start
line is checked strictly (single spaces, known version: RFC 4475 lwsstart,
trws, badvers), headers are unfolded and kept raw in order, and typed views
(``vias``, ``from_``, ``cseq``...) parse on first use. ``Content-Length`` is
exact: a longer datagram is cut to it (dblreq), a shorter one is an error
(clerr), a negative or repeated one is an error (ncl, mcl01).

Header names are case-insensitive, compact forms are expanded, and
``bytes(message)`` always writes the Content-Length of the body it carries.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from media.sip.errors import SipParseError
from media.sip.headers import CSeq, NameAddr, Via, is_token, split_list
from media.sip.uri import OpaqueUri, SipUri

COMPACT = {
    "i": "Call-ID", "m": "Contact", "e": "Content-Encoding", "l": "Content-Length",
    "c": "Content-Type", "f": "From", "s": "Subject", "k": "Supported", "t": "To",
    "v": "Via", "o": "Event", "u": "Allow-Events", "r": "Refer-To", "b": "Referred-By",
    "x": "Session-Expires", "y": "Identity", "j": "Reject-Contact", "a": "Accept-Contact",
}  # fmt: skip
CANONICAL = {
    n.lower(): n
    for n in (
        "Call-ID", "CSeq", "WWW-Authenticate", "Proxy-Authenticate", "Proxy-Authorization",
        "Authorization", "Max-Forwards", "Content-Length", "Content-Type", "Record-Route",
        "Retry-After", "User-Agent", "Refer-To", "Referred-By", "Allow-Events", "MIME-Version",
        "Accept-Encoding", "Accept-Language", "RSeq", "RAck", "Min-Expires", "Min-SE",
        "Session-Expires", "Proxy-Require", "Alert-Info", "Call-Info", "Error-Info",
        "In-Reply-To", "Reply-To", "Content-Disposition", "Content-Encoding",
        "Content-Language", "P-Asserted-Identity", "SIP-ETag", "SIP-If-Match",
    )
}  # fmt: skip
# Headers whose values contain commas that do not separate list items.
NOT_LISTS = frozenset(
    n.lower()
    for n in (
        "WWW-Authenticate", "Proxy-Authenticate", "Authorization", "Proxy-Authorization",
        "Date", "Call-ID", "CSeq", "From", "To", "Subject", "User-Agent", "Server",
        "Content-Type", "Retry-After", "Warning", "Organization", "Timestamp",
    )
)  # fmt: skip
REASONS = {
    100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded", 182: "Queued",
    183: "Session Progress", 200: "OK", 202: "Accepted", 400: "Bad Request",
    401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
    406: "Not Acceptable", 407: "Proxy Authentication Required", 408: "Request Timeout",
    413: "Request Entity Too Large", 415: "Unsupported Media Type",
    416: "Unsupported URI Scheme", 420: "Bad Extension", 480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist", 482: "Loop Detected", 483: "Too Many Hops",
    486: "Busy Here", 487: "Request Terminated", 488: "Not Acceptable Here",
    491: "Request Pending", 500: "Server Internal Error", 501: "Not Implemented",
    503: "Service Unavailable", 505: "Version Not Supported", 603: "Decline",
}  # fmt: skip
MAX_MESSAGE = 65535


def canonical(name: str) -> str:
    """Canonical spelling of a header name (compact forms expanded)."""
    low = name.lower()
    if len(low) == 1 and low in COMPACT:
        return COMPACT[low]
    return CANONICAL.get(low) or "-".join(p[:1].upper() + p[1:].lower() for p in name.split("-"))


class Headers:
    """Ordered, case-insensitive multi-map of raw header values."""

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: list[tuple[str, str]] = [(canonical(n), v) for n, v in items]

    def get(self, name: str) -> str | None:
        key = canonical(name)
        for n, v in self._items:
            if n == key:
                return v
        return None

    def get_all(self, name: str) -> list[str]:
        key = canonical(name)
        values = [v for n, v in self._items if n == key]
        if key.lower() in NOT_LISTS:
            return values
        return [item for v in values for item in split_list(v) if item]

    def count(self, name: str) -> int:
        key = canonical(name)
        return sum(1 for n, _ in self._items if n == key)

    def add(self, name: str, value: str) -> None:
        self._items.append((canonical(name), value))

    def prepend(self, name: str, value: str) -> None:
        self._items.insert(0, (canonical(name), value))

    def set(self, name: str, value: str) -> None:
        key = canonical(name)
        for i, (n, _) in enumerate(self._items):
            if n == key:
                self._items[i] = (key, value)
                self._items = [x for j, x in enumerate(self._items) if j <= i or x[0] != key]
                return
        self._items.append((key, value))

    def remove(self, name: str) -> None:
        key = canonical(name)
        self._items = [x for x in self._items if x[0] != key]

    def items(self) -> list[tuple[str, str]]:
        return list(self._items)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def copy(self) -> Headers:
        h = Headers()
        h._items = list(self._items)
        return h


@dataclass
class _Message:
    headers: Headers
    body: bytes
    version: str

    def _single(self, name: str) -> str:
        value = self.headers.get(name)
        if value is None:
            raise SipParseError(f"missing {name} header")
        return value

    @property
    def call_id(self) -> str:
        return self._single("Call-ID").strip()

    @property
    def cseq(self) -> CSeq:
        return CSeq.parse(self._single("CSeq"))

    @property
    def vias(self) -> list[Via]:
        return [Via.parse(v) for v in self.headers.get_all("Via")]

    @property
    def from_(self) -> NameAddr:
        return NameAddr.parse(self._single("From"), "From")

    @property
    def to(self) -> NameAddr:
        return NameAddr.parse(self._single("To"), "To")

    @property
    def contact(self) -> list[NameAddr]:
        return [NameAddr.parse(v, "Contact") for v in self.headers.get_all("Contact") if v != "*"]

    @property
    def content_type(self) -> str | None:
        value = self.headers.get("Content-Type")
        return value.split(";")[0].strip().lower() if value else None

    def _serialize(self, start: str) -> bytes:
        lines = [start]
        for name, value in self.headers.items():
            if name != "Content-Length":
                lines.append(f"{name}: {value}")
        lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + self.body


@dataclass
class Request(_Message):
    """A SIP request."""

    method: str = ""
    uri: str = ""

    @property
    def request_uri(self) -> SipUri | OpaqueUri:
        return SipUri.parse(self.uri)

    def __bytes__(self) -> bytes:
        return self._serialize(f"{self.method} {self.uri} SIP/{self.version}")


@dataclass
class Response(_Message):
    """A SIP response."""

    status: int = 0
    reason: str = ""

    def __bytes__(self) -> bytes:
        return self._serialize(f"SIP/{self.version} {self.status} {self.reason}")


def make_request(
    method: str, uri: str, headers: Iterable[tuple[str, str]], body: bytes = b""
) -> Request:
    return Request(Headers(headers), body, "2.0", method, uri)


def _split_head(data: bytes) -> tuple[bytes, bytes]:
    idx = data.find(b"\r\n\r\n")
    if idx >= 0:
        return data[:idx], data[idx + 4 :]
    idx = data.find(b"\n\n")
    if idx >= 0:
        return data[:idx], data[idx + 2 :]
    return data, b""


def parse_message(data: bytes, *, stream: bool = False) -> Request | Response:
    """Parse one SIP message; raises :class:`SipParseError`.

    ``stream=True`` means it came framed from TCP (Content-Length already
    honoured by the framer, and mandatory there).
    """
    if len(data) > MAX_MESSAGE:
        raise SipParseError(f"message of {len(data)} bytes exceeds {MAX_MESSAGE}", status=413)
    data = data.lstrip(b"\r\n")  # RFC 3261 §7.5: ignore CRLFs before the start line
    head, body = _split_head(data)
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SipParseError(f"header block is not UTF-8 (byte {exc.start})") from None
    lines = text.replace("\r\n", "\n").split("\n")
    while len(lines) > 1 and not lines[-1]:  # datagram ended without the blank line
        lines.pop()
    start = lines[0]
    try:
        message = _start_line(start)
        start_error: SipParseError | None = None
    except SipParseError as exc:
        if start.startswith("SIP/"):
            raise
        # Keep reading: with the headers, the request can still be answered 400.
        method = start.split(" ", 1)[0]
        message = Request(Headers(), b"", "2.0", method if is_token(method) else "UNKNOWN", "")
        start_error = exc
    if isinstance(message, Request) and start_error is None:
        try:
            SipUri.parse(message.uri)
        except SipParseError as exc:
            start_error = SipParseError(f"Request-URI: {exc.reason}")
    headers = message.headers
    current: list[str] | None = None
    problems: list[str] = []
    for number, line in enumerate(lines[1:], start=2):
        if line[:1] in (" ", "\t"):
            if current is None:
                problems.append(f"line {number}: continuation line before any header")
                continue
            current[1] += " " + line.strip()
            continue
        if current is not None:
            headers.add(current[0], current[1])
        name, sep, value = line.partition(":")
        name = name.rstrip(" \t")
        if not sep or not is_token(name):
            problems.append(f"line {number}: malformed header line {line[:40]!r}")
            current = None
            continue
        current = [name, value.strip()]
    if current is not None:
        headers.add(current[0], current[1])
    if isinstance(message, Response) and message.version == "?":
        raise SipParseError(problems[0] if problems else "bad response")
    if start_error is not None:
        raise SipParseError(start_error.reason, start_error.status, message)
    if problems:
        raise SipParseError(problems[0], partial=message)
    lengths = headers.get_all("Content-Length")
    if len(lengths) > 1:
        raise SipParseError("Content-Length: more than one value", partial=message)
    if lengths:
        raw = lengths[0].strip()
        if not raw.isdigit():
            raise SipParseError(f"Content-Length: invalid value {raw!r}", partial=message)
        length = int(raw)
        if length > len(body):
            raise SipParseError(
                f"Content-Length {length} exceeds the {len(body)} body bytes received",
                partial=message,
            )
        body = body[:length]
    elif stream:
        raise SipParseError("Content-Length is mandatory over TCP", partial=message)
    message.body = body
    if message.version != "2.0":
        raise SipParseError(f"SIP version {message.version} not supported", 505, message)
    return message


def _start_line(line: str) -> Request | Response:
    if line.startswith("SIP/"):
        parts = line.split(" ", 2)
        if len(parts) < 3 and not (len(parts) == 2 and parts[1].isdigit()):
            raise SipParseError(f"malformed status line {line[:60]!r}")
        version = parts[0][4:]
        code = parts[1]
        if len(code) != 3 or not code.isdigit() or not 100 <= int(code) <= 699:
            raise SipParseError(f"status code {code[:12]!r} is not 100-699")
        reason = parts[2] if len(parts) == 3 else ""
        return Response(Headers(), b"", version, int(code), reason)
    parts = line.split(" ")
    if len(parts) != 3 or not all(parts):
        raise SipParseError(
            f"request line must be 'METHOD SP URI SP SIP/2.0' with single spaces: {line[:80]!r}"
        )
    method, uri, version = parts
    if not is_token(method):
        raise SipParseError(f"invalid method {method[:30]!r}")
    if not version.upper().startswith("SIP/"):
        raise SipParseError(f"invalid protocol version {version!r}")
    return Request(Headers(), b"", version[4:], method, uri)


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
    """A response to ``req`` per RFC 3261 §8.2.6 (Via, From, To, Call-ID, CSeq copied)."""
    h = Headers()
    for name, value in req.headers.items():
        if name in ("Via", "From", "Call-ID", "CSeq"):
            h.add(name, value)
        elif name == "To":
            if to_tag and ";tag=" not in value.replace(" ", "").lower() and status != 100:
                value = f"{value};tag={to_tag}"
            h.add(name, value)
        elif name == "Record-Route" and 100 < status < 300:
            h.add(name, value)
    for name, value in headers:
        h.add(name, value)
    if content_type:
        h.set("Content-Type", content_type)
    return Response(h, body, "2.0", status, reason or REASONS.get(status, "Unknown"))
