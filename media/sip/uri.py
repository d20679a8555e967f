"""SIP URIs (RFC 3261 §19.1, RFC 5118 for IPv6 references).

``SipUri.parse`` accepts ``sip:`` and ``sips:`` URIs; any other scheme parses
as an :class:`OpaqueUri` so that a header carrying ``tel:`` or ``http:`` still
parses (RFC 4475 unksm2) and the UA decides what to do with it (416 when it is
the Request-URI). ``str()`` gives the URI back as it was written.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from media.sip.errors import SipParseError

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*):")
_HOSTNAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9\-._]*[A-Za-z0-9_])?\.?$")
_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


def unescape(text: str) -> str:
    """Decode %HH escapes (left alone when malformed)."""
    if "%" not in text:
        return text
    out = bytearray()
    i = 0
    raw = text.encode("utf-8")
    while i < len(raw):
        if raw[i] == 0x25 and i + 2 < len(raw) + 0 and _is_hex(raw[i + 1 : i + 3]):
            out.append(int(raw[i + 1 : i + 3], 16))
            i += 3
        else:
            out.append(raw[i])
            i += 1
    return out.decode("utf-8", "replace")


def _is_hex(b: bytes) -> bool:
    return len(b) == 2 and all(c in b"0123456789abcdefABCDEF" for c in b)


@dataclass
class OpaqueUri:
    """A URI of a scheme we do not interpret (tel:, http:, urn: ...)."""

    scheme: str
    rest: str

    def __str__(self) -> str:
        return f"{self.scheme}:{self.rest}"

    @property
    def is_sip(self) -> bool:
        return False


@dataclass
class SipUri:
    """``sip:user:password@host:port;params?headers``."""

    scheme: str
    host: str
    user: str | None = None
    password: str | None = None
    port: int | None = None
    params: dict[str, str | None] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    _text: str = field(default="", compare=False, repr=False)

    @property
    def is_sip(self) -> bool:
        return True

    @classmethod
    def parse(cls, text: str) -> SipUri | OpaqueUri:
        """Parse a URI; raises :class:`SipParseError` naming what is wrong."""
        m = _SCHEME.match(text)
        if not m:
            raise SipParseError(f"URI {text!r} has no scheme")
        scheme = m.group(1).lower()
        rest = text[m.end() :]
        if scheme not in ("sip", "sips"):
            if not rest or any(c in rest for c in ' \t<>"'):
                raise SipParseError(f"URI {text!r} is malformed")
            return OpaqueUri(scheme, rest)
        if any(c in text for c in ' \t<>"') or _ESCAPE.search(text):
            raise SipParseError(f"SIP URI {text!r} contains a character that must be escaped")
        user = password = None
        at = rest.rfind("@")
        if at >= 0:  # userinfo may itself hold ';', '?' and '/' (RFC 4475 intmeth)
            userinfo, rest = rest[:at], rest[at + 1 :]
            user, sep, pw = userinfo.partition(":")
            password = pw if sep else None
            user = unescape(user)
        headers: dict[str, str] = {}
        if "?" in rest:
            rest, _, hpart = rest.partition("?")
            for item in hpart.split("&"):
                name, _, value = item.partition("=")
                if not name:
                    raise SipParseError(f"SIP URI {text!r} has an empty header name")
                headers[unescape(name)] = unescape(value)
        hostport, _, pstr = rest.partition(";")
        params: dict[str, str | None] = {}
        if pstr:
            for item in pstr.split(";"):
                if not item:
                    raise SipParseError(f"SIP URI {text!r} has an empty parameter")
                name, sep, value = item.partition("=")
                params[unescape(name).lower()] = unescape(value) if sep else None
        host, port = _split_hostport(hostport, text)
        return cls(scheme, host, user, password, port, params, headers, text)

    @property
    def hostport(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port is None else f"{host}:{self.port}"

    def __str__(self) -> str:
        if self._text:
            return self._text
        out = f"{self.scheme}:"
        if self.user is not None:
            out += self.user
            if self.password is not None:
                out += f":{self.password}"
            out += "@"
        out += self.hostport
        for k, v in self.params.items():
            out += f";{k}" if v is None else f";{k}={v}"
        if self.headers:
            out += "?" + "&".join(f"{k}={v}" for k, v in self.headers.items())
        return out


def _split_hostport(text: str, uri: str) -> tuple[str, int | None]:
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise SipParseError(f"SIP URI {uri!r}: IPv6 reference without ']'")
        host = text[1:end]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise SipParseError(f"SIP URI {uri!r}: {host!r} is not a valid IPv6 address") from None
        tail = text[end + 1 :]
        if tail and not tail.startswith(":"):
            raise SipParseError(f"SIP URI {uri!r}: junk after IPv6 reference")
        port_s = tail[1:] if tail else None
    else:
        if text.count(":") > 1:
            raise SipParseError(f"SIP URI {uri!r}: IPv6 address must be in brackets (RFC 5118)")
        host, sep, port_s_ = text.partition(":")
        port_s = port_s_ if sep else None
        if not host or not _HOSTNAME.match(host):
            raise SipParseError(f"SIP URI {uri!r}: invalid host {host!r}")
    port = None
    if port_s is not None:
        if not port_s.isdigit() or int(port_s) > 65535:
            raise SipParseError(f"SIP URI {uri!r}: invalid port {port_s!r}")
        port = int(port_s)
    return host.lower() if ":" not in host else host, port
