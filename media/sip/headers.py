"""Typed SIP header values: Via, name-addr (From/To/Contact/Route), CSeq.

Each parser is strict where RFC 3261 is strict (RFC 4475's invalid messages
fail here with a reason naming the header) and tolerant of linear white space
wherever the grammar allows it (RFC 4475 wsinv).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from media.sip.errors import SipParseError
from media.sip.uri import OpaqueUri, SipUri

TOKEN_CHARS = r"A-Za-z0-9\-.!%*_+`'~"
_TOKEN = re.compile(rf"^[{TOKEN_CHARS}]+$")
_VIA_PROTO = re.compile(
    rf"^\s*([{TOKEN_CHARS}]+)\s*/\s*([{TOKEN_CHARS}]+)\s*/\s*([{TOKEN_CHARS}]+)\s+"
)
MAGIC_COOKIE = "z9hG4bK"
MAX_CSEQ = 2**31 - 1


def is_token(text: str) -> bool:
    return bool(_TOKEN.match(text))


def split_list(value: str) -> list[str]:
    """Split a header value on commas outside quotes and angle brackets."""
    out: list[str] = []
    depth = 0
    quoted = False
    escaped = False
    start = 0
    for i, ch in enumerate(value):
        if escaped:
            escaped = False
        elif quoted:
            if ch == "\\":
                escaped = True
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
        elif ch == "<":
            depth += 1
        elif ch == ">":
            depth = max(0, depth - 1)
        elif ch == "," and depth == 0:
            out.append(value[start:i].strip())
            start = i + 1
    out.append(value[start:].strip())
    return out


def parse_params(text: str, where: str) -> dict[str, str | None]:
    """``;a=b;c`` (leading ';' optional) with LWS around ';' and '='; values may be quoted."""
    params: dict[str, str | None] = {}
    text = text.strip()
    if not text:
        return params
    if text.startswith(";"):
        text = text[1:]
    for item in _split_semicolons(text):
        item = item.strip()
        if not item:
            raise SipParseError(f"{where}: empty parameter")
        name, sep, value = item.partition("=")
        name = name.strip()
        if not is_token(name):
            raise SipParseError(f"{where}: invalid parameter name {name!r}")
        if sep:
            value = value.strip()
            if value.startswith('"'):
                if len(value) < 2 or not value.endswith('"'):
                    raise SipParseError(f"{where}: unterminated quoted parameter {name!r}")
            elif not value or any(c.isspace() for c in value):
                raise SipParseError(f"{where}: invalid value for parameter {name!r}")
            params[name.lower()] = value
        else:
            params[name.lower()] = None
    return params


def _split_semicolons(text: str) -> list[str]:
    out = []
    quoted = False
    start = 0
    for i, ch in enumerate(text):
        if ch == '"' and (i == 0 or text[i - 1] != "\\"):
            quoted = not quoted
        elif ch == ";" and not quoted:
            out.append(text[start:i])
            start = i + 1
    out.append(text[start:])
    return out


def _check_host(host: str, where: str) -> tuple[str, int | None]:
    host = host.strip()
    port: int | None = None
    if host.startswith("["):
        end = host.find("]")
        if end < 0:
            raise SipParseError(f"{where}: IPv6 reference without ']'")
        addr, rest = host[1:end], host[end + 1 :].strip()
        try:
            ipaddress.IPv6Address(addr)
        except ValueError:
            raise SipParseError(f"{where}: invalid IPv6 address {addr!r}") from None
        if rest:
            if not rest.startswith(":") or not rest[1:].strip().isdigit():
                raise SipParseError(f"{where}: invalid port after IPv6 reference")
            port = int(rest[1:].strip())
        host = addr
    else:
        if host.count(":") > 1:
            raise SipParseError(f"{where}: IPv6 address must be in brackets (RFC 5118)")
        name, sep, p = host.partition(":")
        name = name.strip()
        if sep:
            p = p.strip()
            if not p.isdigit():
                raise SipParseError(f"{where}: invalid port {p!r}")
            port = int(p)
        if not name or not re.match(r"^[A-Za-z0-9\-._]+$", name):
            raise SipParseError(f"{where}: invalid host {name!r}")
        host = name
    if port is not None and port > 65535:
        raise SipParseError(f"{where}: port {port} out of range")
    return host, port


@dataclass
class Via:
    """One Via value: ``SIP/2.0/UDP host:port;branch=...``."""

    transport: str
    host: str
    port: int | None
    params: dict[str, str | None] = field(default_factory=dict)
    version: str = "2.0"

    @classmethod
    def parse(cls, value: str) -> Via:
        m = _VIA_PROTO.match(value)
        if not m:
            raise SipParseError(f"Via: malformed sent-protocol in {value.strip()!r}")
        if m.group(1).upper() != "SIP":
            raise SipParseError(f"Via: protocol {m.group(1)!r} is not SIP")
        rest = value[m.end() :]
        sent_by, sep, params = rest.partition(";")
        host, port = _check_host(sent_by, "Via")
        p = parse_params(params, "Via") if sep else {}
        if sep and not params.strip():
            raise SipParseError("Via: empty parameter")
        return cls(m.group(3).upper(), host, port, p, m.group(2))

    @property
    def branch(self) -> str | None:
        return self.params.get("branch")

    @property
    def sent_by(self) -> tuple[str, int]:
        return self.host, self.port or 5060

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        out = f"SIP/{self.version}/{self.transport} {host}"
        if self.port is not None:
            out += f":{self.port}"
        for k, v in self.params.items():
            out += f";{k}" if v is None else f";{k}={v}"
        return out


def parse_vias(values: list[str]) -> list[Via]:
    return [Via.parse(v) for value in values for v in split_list(value)]


@dataclass
class NameAddr:
    """A name-addr or addr-spec with header parameters (From, To, Contact, Route)."""

    uri: SipUri | OpaqueUri
    display: str | None = None
    params: dict[str, str | None] = field(default_factory=dict)

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")

    @classmethod
    def parse(cls, value: str, where: str) -> NameAddr:
        text = value.strip()
        display: str | None = None
        if text.startswith('"'):
            end = _closing_quote(text)
            if end < 0:
                raise SipParseError(f"{where}: unbalanced quotes in display name")
            display = text[1:end]
            text = text[end + 1 :].lstrip()
            if not text.startswith("<"):
                raise SipParseError(f"{where}: quoted display name must be followed by <URI>")
        lt = text.find("<")
        if lt >= 0:
            before = text[:lt].strip()
            if before:
                if display is not None or not all(is_token(w) for w in before.split()):
                    raise SipParseError(
                        f"{where}: display name {before!r} must be tokens or a quoted string"
                    )
                display = " ".join(before.split())
            gt = text.find(">", lt)
            if gt < 0:
                raise SipParseError(f"{where}: '<' without '>'")
            inner = text[lt + 1 : gt]
            if inner != inner.strip():
                raise SipParseError(f"{where}: white space inside <...> around the URI")
            uri = SipUri.parse(inner)
            rest = text[gt + 1 :].strip()
            if rest and not rest.startswith(";"):
                raise SipParseError(f"{where}: junk after '>': {rest[:20]!r}")
            params = parse_params(rest, where)
        else:
            spec, sep, ptext = text.partition(";")
            spec = spec.strip()
            if any(c in spec for c in "?,") and spec.split(":", 1)[0].lower() in ("sip", "sips"):
                raise SipParseError(f"{where}: a URI with '?' or ',' must be enclosed in <...>")
            if " " in spec:
                raise SipParseError(f"{where}: malformed address {spec!r}")
            uri = SipUri.parse(spec)
            params = parse_params(ptext, where) if sep else {}
        return cls(uri, display, params)

    def __str__(self) -> str:
        out = f'"{self.display}" <{self.uri}>' if self.display else f"<{self.uri}>"
        for k, v in self.params.items():
            out += f";{k}" if v is None else f";{k}={v}"
        return out


def _closing_quote(text: str) -> int:
    i = 1
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == '"':
            return i
        i += 1
    return -1


@dataclass(frozen=True)
class CSeq:
    seq: int
    method: str

    @classmethod
    def parse(cls, value: str) -> CSeq:
        parts = value.split()
        if len(parts) != 2 or not parts[0].isdigit():
            raise SipParseError(f"CSeq: malformed value {value.strip()!r}")
        seq = int(parts[0])
        if seq > MAX_CSEQ:
            raise SipParseError(f"CSeq: sequence number {parts[0]} exceeds 2**31-1")
        if not is_token(parts[1]):
            raise SipParseError(f"CSeq: invalid method {parts[1]!r}")
        return cls(seq, parts[1])

    def __str__(self) -> str:
        return f"{self.seq} {self.method}"
