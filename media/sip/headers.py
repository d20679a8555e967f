"""Typed SIP header values (RFC 3261 §20, §25.1).

Via, name-addr (From, To, Contact, Route, Record-Route), CSeq, Content-Type,
Call-ID, option-tag lists, delta-seconds and Date. Each parser is strict where
RFC 3261's grammar is strict, so RFC 4475's invalid messages fail here with a
reason that names the header and the fault, and tolerant of linear white
space wherever the grammar allows it (RFC 4475 wsinv). Every failure is a
:class:`~media.sip.errors.SipParseError`; nothing else escapes.

Parameter maps keep names lower-cased and values as written (a quoted value
keeps its quotes; :func:`unquote` removes them); a parameter without a value
maps to ``None``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

from media.sip.errors import SipParseError
from media.sip.uri import OpaqueUri, SipUri, check_host, parse_ipv6, parse_port

MAGIC_COOKIE = "z9hG4bK"
MAX_CSEQ = 2**31 - 1  # RFC 3261 §8.1.1.5: less than 2**31
MAX_DELTA = 2**32 - 1  # delta-seconds (Expires, expires=)
TOKEN_CHARS = r"A-Za-z0-9\-.!%*_+`'~"
_TOKEN = re.compile(rf"[{TOKEN_CHARS}]+")
_GEN_VALUE = re.compile(rf"[{TOKEN_CHARS}:\[\]]+")  # token / host (IPv6 reference)
_WORD = rf"[{TOKEN_CHARS}()<>:\\\"/\[\]?{{}}]+"
_CALL_ID = re.compile(rf"{_WORD}(?:@{_WORD})?")
_DATE = re.compile(
    r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), ([0-9]{2}) "
    r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) ([0-9]{4}) "
    r"([0-9]{2}):([0-9]{2}):([0-9]{2}) (\S+)"
)
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def is_token(text: str) -> bool:
    """True if ``text`` is a non-empty RFC 3261 token."""
    return _TOKEN.fullmatch(text) is not None


def closing_quote(text: str, start: int = 0) -> int:
    """Index of the ``"`` closing the quoted string opened at ``text[start]``, or -1."""
    i = start + 1
    n = len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            i += 2
        elif c == '"':
            return i
        else:
            i += 1
    return -1


def unquote(value: str) -> str:
    """The content of a quoted-string with its quoted-pairs undone (other text as is)."""
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        inner = value[1:-1]
        if "\\" not in inner:
            return inner
        return re.sub(r"\\(.)", r"\1", inner, flags=re.DOTALL)
    return value


def quote(text: str) -> str:
    """``text`` as a quoted-string (backslash and double quote escaped)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def split_outside_quotes(value: str, sep: str, *, angles: bool = False) -> list[str]:
    """Split on ``sep`` outside quoted strings (and ``<...>`` if ``angles``); items unstripped."""
    if '"' not in value and (not angles or "<" not in value):
        return value.split(sep)
    out: list[str] = []
    depth = 0
    start = 0
    i = 0
    n = len(value)
    while i < n:
        c = value[i]
        if c == '"':
            end = closing_quote(value, i)
            i = n if end < 0 else end + 1
            continue
        if angles and c == "<":
            depth += 1
        elif angles and c == ">" and depth:
            depth -= 1
        elif c == sep and depth == 0:
            out.append(value[start:i])
            start = i + 1
        i += 1
    out.append(value[start:])
    return out


def split_list(value: str) -> list[str]:
    """Split a header value on commas outside quotes and ``<...>``; items stripped.

    Empty items are kept (``"a,,b"`` gives ``["a", "", "b"]``) so that callers
    can refuse them.
    """
    return [item.strip() for item in split_outside_quotes(value, ",", angles=True)]


def parse_params(text: str, where: str) -> dict[str, str | None]:
    """``a=b;c``: the text after the first ``;``, LWS allowed around ``;`` and ``=``.

    Values are tokens, hosts or quoted strings (kept with their quotes).
    Empty (including an empty ``text``), malformed or repeated parameters
    raise :class:`SipParseError`.
    """
    params: dict[str, str | None] = {}
    for item in split_outside_quotes(text, ";"):
        name, eq, value = item.partition("=")
        name = name.strip()
        if not name and not eq and not value:
            raise SipParseError(f"{where}: empty parameter (';;' or a trailing ';')")
        if not is_token(name):
            raise SipParseError(f"{where}: invalid parameter name {name[:40]!r}")
        key = name.lower()
        if key in params:
            raise SipParseError(f"{where}: parameter {key!r} appears twice")
        if not eq:
            params[key] = None
            continue
        value = value.strip()
        if value.startswith('"'):
            if closing_quote(value) != len(value) - 1:
                raise SipParseError(f"{where}: unterminated quoted value of parameter {key!r}")
        elif not _GEN_VALUE.fullmatch(value):
            raise SipParseError(f"{where}: invalid value {value[:40]!r} for parameter {key!r}")
        params[key] = value
    return params


def format_params(params: dict[str, str | None]) -> str:
    """``;name=value;flag`` for a parameter map."""
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params.items())


def parse_uint(text: str, where: str, limit: int) -> int:
    """A decimal number 0..limit in ASCII digits (leading zeros allowed)."""
    text = text.strip()
    if not text or not text.isascii() or not text.isdigit():
        raise SipParseError(f"{where}: {text[:40]!r} is not a number")
    if len(text.lstrip("0")) > len(str(limit)) or int(text) > limit:
        raise SipParseError(f"{where}: {text[:40]} exceeds {limit}")
    return int(text)


def check_call_id(value: str) -> str:
    """A Call-ID value (``word ["@" word]``), stripped."""
    value = value.strip()
    if not _CALL_ID.fullmatch(value):
        raise SipParseError(f"Call-ID: invalid value {value[:60]!r}")
    return value


def parse_option_tags(values: list[str], where: str) -> list[str]:
    """Option tags of Require / Proxy-Require / Supported / Unsupported."""
    for tag in values:
        if not is_token(tag):
            raise SipParseError(f"{where}: invalid option tag {tag[:40]!r}")
    return values


def parse_date(value: str) -> datetime:
    """A SIP-date (RFC 3261 §20.17: rfc1123-date, always GMT) as an aware UTC datetime."""
    text = value.strip()
    m = _DATE.fullmatch(text)
    if m is None:
        raise SipParseError(f"Date: {text[:60]!r} is not an RFC 1123 date")
    if m.group(8) != "GMT":
        raise SipParseError(
            f"Date: time zone must be GMT (RFC 3261 §20.17), not {m.group(8)[:10]!r}"
        )
    try:
        return datetime(
            int(m.group(4)),
            _MONTHS.index(m.group(3)) + 1,
            int(m.group(2)),
            int(m.group(5)),
            int(m.group(6)),
            int(m.group(7)),
            tzinfo=UTC,
        )
    except ValueError as exc:
        raise SipParseError(f"Date: {text[:60]!r}: {exc}") from None


def _sent_by(text: str) -> tuple[str, int | None]:
    """Via sent-by: host [COLON port], where COLON may carry LWS."""
    text = text.strip()
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise SipParseError("Via: IPv6 reference in sent-by lacks its closing ']'")
        host = check_host(text[: end + 1], "Via")
        tail = text[end + 1 :].strip()
        if not tail:
            return host, None
        if tail[0] != ":":
            raise SipParseError(f"Via: unexpected {tail[:20]!r} after the sent-by host")
        return host, parse_port(tail[1:].strip(), "Via")
    if text.count(":") > 1:
        raise SipParseError(f"Via: {text[:60]!r} is an IPv6 address without brackets")
    name, sep, port = text.partition(":")
    host = check_host(name.strip(), "Via")
    return host, parse_port(port.strip(), "Via") if sep else None


@dataclass
class Via:
    """One Via value: ``SIP/2.0/UDP host:port;branch=...;received=...;rport``."""

    transport: str
    host: str
    port: int | None
    params: dict[str, str | None] = field(default_factory=dict)
    version: str = "2.0"
    protocol: str = "SIP"

    @classmethod
    def parse(cls, value: str) -> Via:
        """Parse one via-parm (not a comma list); raises :class:`SipParseError`."""
        parts = value.split("/", 2)
        if len(parts) != 3:
            raise SipParseError(f"Via: malformed sent-protocol in {value.strip()[:60]!r}")
        protocol, version = parts[0].strip(), parts[1].strip()
        rest = parts[2].lstrip()
        end = 0
        while end < len(rest) and rest[end] not in " \t":
            end += 1
        transport, rest = rest[:end], rest[end:]
        if not (is_token(protocol) and is_token(version) and is_token(transport)):
            raise SipParseError(f"Via: malformed sent-protocol in {value.strip()[:60]!r}")
        if protocol.upper() != "SIP":
            raise SipParseError(f"Via: protocol {protocol[:20]!r} is not SIP")
        if not rest.strip():
            raise SipParseError("Via: missing sent-by after the transport")
        sent_by, semi, param_text = rest.partition(";")
        host, port = _sent_by(sent_by)
        params = parse_params(param_text, "Via") if semi else {}
        via = cls(transport.upper(), host, port, params, version, protocol.upper())
        via._check_params()
        return via

    def _check_params(self) -> None:
        p = self.params
        branch = p.get("branch", "")
        if "branch" in p and (branch is None or not is_token(branch)):
            raise SipParseError(f"Via: invalid branch {branch!r}")
        if "received" in p:
            received = p["received"] or ""
            bare = (
                received[1:-1] if received.startswith("[") and received.endswith("]") else received
            )
            valid_v4 = bool(re.fullmatch(r"[0-9.]+", bare)) and _ipv4(bare)
            if not valid_v4 and parse_ipv6(bare) is None:
                raise SipParseError(f"Via: received={received[:60]!r} is not an IP address")
        if "rport" in p and p["rport"] is not None:
            parse_port(p["rport"], "Via: rport")
        if "ttl" in p:
            parse_uint(p["ttl"] or "", "Via: ttl", 255)
        if "maddr" in p:
            check_host(p["maddr"] or "", "Via: maddr")

    @property
    def branch(self) -> str | None:
        """The branch parameter (``None`` for RFC 2543 peers, RFC 4475 inv2543)."""
        return self.params.get("branch")

    @property
    def has_rfc3261_branch(self) -> bool:
        """The branch starts with the magic cookie and has more after it (RFC 4475 badbranch)."""
        b = self.branch
        return b is not None and b.startswith(MAGIC_COOKIE) and len(b) > len(MAGIC_COOKIE)

    @property
    def received(self) -> str | None:
        """The ``received`` address, without IPv6 brackets (RFC 5118 §4.5 accepts both)."""
        value = self.params.get("received")
        if value and value.startswith("["):
            return value[1:-1].lower()
        return value.lower() if value else value

    @property
    def has_rport(self) -> bool:
        """The ``rport`` parameter is present (valueless in a request, RFC 3581)."""
        return "rport" in self.params

    @property
    def rport(self) -> int | None:
        """The port filled into ``rport`` by a server, if any."""
        value = self.params.get("rport")
        return int(value) if value else None

    @property
    def sent_by(self) -> tuple[str, int]:
        """(host, port), the port defaulting to 5061 for TLS and 5060 otherwise."""
        return self.host, self.port or (5061 if self.transport == "TLS" else 5060)

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = "" if self.port is None else f":{self.port}"
        return f"{self.protocol}/{self.version}/{self.transport} {host}{port}" + format_params(
            self.params
        )


def _ipv4(text: str) -> bool:
    parts = text.split(".")
    return len(parts) == 4 and all(p.isdigit() and len(p) <= 3 and int(p) <= 255 for p in parts)


def parse_vias(values: list[str]) -> list[Via]:
    """All via-parms of Via header values (each may be a comma list)."""
    out = []
    for value in values:
        for item in split_list(value):
            if not item:
                raise SipParseError(f"Via: empty element in {value[:60]!r}")
            out.append(Via.parse(item))
    return out


@dataclass
class NameAddr:
    """A name-addr or addr-spec with header parameters (From, To, Contact, Route...).

    ``display`` is the display name with quoting undone (``None`` if absent).
    """

    uri: SipUri | OpaqueUri
    display: str | None = None
    params: dict[str, str | None] = field(default_factory=dict)

    @property
    def tag(self) -> str | None:
        """The tag parameter, if present."""
        return self.params.get("tag")

    @property
    def expires(self) -> int | None:
        """The ``expires`` parameter (Contact), delta-seconds up to 2**32-1."""
        value = self.params.get("expires")
        return None if value is None else parse_uint(value, "expires parameter", MAX_DELTA)

    @classmethod
    def parse(cls, value: str, where: str = "address") -> NameAddr:
        """Parse one name-addr / addr-spec with parameters; ``where`` names the header."""
        text = value.strip()
        if not text:
            raise SipParseError(f"{where}: empty value")
        display: str | None = None
        if text[0] == '"':
            end = closing_quote(text)
            if end < 0:
                raise SipParseError(f"{where}: unterminated quoted display name")
            display = unquote(text[: end + 1])
            text = text[end + 1 :].lstrip()
            if not text.startswith("<"):
                raise SipParseError(f"{where}: a quoted display name must be followed by <URI>")
            lt = 0
        else:
            lt = text.find("<")
            if lt > 0 and '"' in text[:lt]:
                lt = -1  # a '<' inside a quoted parameter of a bare addr-spec
            if lt > 0:
                words = text[:lt].split()
                if not all(is_token(w) for w in words):
                    raise SipParseError(
                        f"{where}: display name {text[:lt].strip()[:40]!r} must be tokens or "
                        "a quoted string"
                    )
                display = " ".join(words)
        if lt >= 0:
            gt = text.find(">", lt)
            if gt < 0:
                raise SipParseError(f"{where}: '<' without a closing '>'")
            inner = text[lt + 1 : gt]
            if inner != inner.strip():
                raise SipParseError(f"{where}: white space inside <...> around the URI")
            uri = _uri(inner, where)
            rest = text[gt + 1 :].lstrip()
            if rest and rest[0] != ";":
                raise SipParseError(f"{where}: unexpected {rest[:20]!r} after '>'")
            params = parse_params(rest[1:], where) if rest else {}
        else:
            spec, semi, param_text = text.partition(";")
            spec = spec.rstrip()
            if any(c in spec for c in " \t"):
                raise SipParseError(f"{where}: white space inside the address {spec[:60]!r}")
            if "?" in spec or "," in spec:
                raise SipParseError(
                    f"{where}: a URI containing '?' or ',' must be enclosed in <...> "
                    "(RFC 3261 §20.10)"
                )
            uri = _uri(spec, where)
            params = parse_params(param_text, where) if semi else {}
        if "tag" in params and (params["tag"] is None or not is_token(params["tag"] or "")):
            raise SipParseError(f"{where}: invalid tag parameter")
        return cls(uri, display, params)

    def __str__(self) -> str:
        head = (
            f"{quote(self.display)} <{self.uri}>" if self.display is not None else f"<{self.uri}>"
        )
        return head + format_params(self.params)


def _uri(text: str, where: str) -> SipUri | OpaqueUri:
    try:
        return SipUri.parse(text)
    except SipParseError as exc:
        raise SipParseError(f"{where}: {exc.reason}") from None


def parse_name_addrs(values: list[str], where: str) -> list[NameAddr]:
    """All name-addrs of list headers (Contact, Route, Record-Route)."""
    out = []
    for value in values:
        for item in split_list(value):
            if not item:
                raise SipParseError(f"{where}: empty element in {value[:60]!r}")
            out.append(NameAddr.parse(item, where))
    return out


@dataclass(frozen=True)
class CSeq:
    """``CSeq: seq METHOD``."""

    seq: int
    method: str

    @classmethod
    def parse(cls, value: str, method: str | None = None) -> CSeq:
        """Parse a CSeq value; with ``method``, it must also name that request method."""
        parts = value.split()
        if len(parts) != 2:
            raise SipParseError(f"CSeq: expected 'number METHOD', got {value.strip()[:60]!r}")
        seq = parse_uint(parts[0], "CSeq: sequence number", MAX_CSEQ)
        if not is_token(parts[1]):
            raise SipParseError(f"CSeq: invalid method {parts[1][:40]!r}")
        if method is not None and parts[1] != method:
            raise SipParseError(
                f"CSeq: method {parts[1][:40]} does not match the request method {method[:40]}"
            )
        return cls(seq, parts[1])

    def __str__(self) -> str:
        return f"{self.seq} {self.method}"


@dataclass
class ContentType:
    """``type/subtype;param=value`` (RFC 3261 §20.15); type and subtype lower-cased."""

    type: str
    subtype: str
    params: dict[str, str | None] = field(default_factory=dict)

    @property
    def media_type(self) -> str:
        """``type/subtype`` in lower case."""
        return f"{self.type}/{self.subtype}"

    @classmethod
    def parse(cls, value: str, where: str = "Content-Type") -> ContentType:
        """Parse a media type with parameters; raises :class:`SipParseError`."""
        head, semi, param_text = value.partition(";")
        if '"' in head:
            raise SipParseError(f"{where}: malformed media type {value.strip()[:60]!r}")
        mtype, slash, subtype = head.partition("/")
        mtype, subtype = mtype.strip(), subtype.strip()
        if not slash or not is_token(mtype) or not is_token(subtype):
            raise SipParseError(f"{where}: malformed media type {head.strip()[:60]!r}")
        params = parse_params(param_text, where) if semi else {}
        return cls(mtype.lower(), subtype.lower(), params)

    def __str__(self) -> str:
        return self.media_type + format_params(self.params)
