"""SIP URIs (RFC 3261 §19.1, §25.1) and hosts (RFC 5118 for IPv6).

``SipUri.parse`` accepts ``sip:`` and ``sips:`` URIs and returns any other
scheme (``tel:``, ``http:``, ``urn:`` ...) as an :class:`OpaqueUri`, so that a
header carrying one still parses (RFC 4475 unksm2) and the UA decides what to
do with it (416 when it is the Request-URI: unkscm, novelsc).

Fields hold decoded values: ``%HH`` escapes in the user, password, parameters
and headers are undone (RFC 4475 esc01: ``sip:%75se%72@example.com`` has user
``user``), parameter names are lower-cased, the host is lower-cased and an
IPv6 host is kept without its brackets. ``str()`` gives back the text exactly
as it was parsed as long as no field was changed; after a change it is
rebuilt, escaping what must be escaped.

IPv6 (RFC 5118): an address must be written as a reference in brackets
(``sip:2001:db8::10`` is refused, §4.2); ``[2001:db8::10:5070]`` is an address
without a port (§4.3); the ``:::`` that RFC 3261's ABNF lets slip in before an
embedded IPv4 address is tolerated and read as ``::`` (§4.10), nowhere else.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any

from media.sip.errors import SipParseError

_ALNUM = "A-Za-z0-9"
_MARK = r"\-_.!~*'()"
_UNRESERVED = _ALNUM + _MARK
_ESC = "%[0-9A-Fa-f]{2}"


def _chars(extra: str) -> re.Pattern[str]:
    # One character class or one escape per step: linear, no backtracking.
    return re.compile(rf"(?:[{_UNRESERVED}{extra}]|{_ESC})+")


_USER = _chars(r"&=+$,;?/")
_PASSWORD = re.compile(rf"(?:[{_UNRESERVED}&=+$,]|{_ESC})*")
_PARAMCHAR = _chars(r"\[\]/:&+$")
_HNAME = _chars(r"\[\]/?:+$")
_HVALUE = re.compile(rf"(?:[{_UNRESERVED}\[\]/?:+$]|{_ESC})*")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*")
_OPAQUE = re.compile(rf"(?:[{_UNRESERVED};/?:@&=+$,\[\]#]|{_ESC})+")
_LABEL = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_\-]*[A-Za-z0-9_])?")
_IPV4 = re.compile(r"[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}")
_IPV6_CHARS = frozenset("0123456789abcdefABCDEF:.")
_HEX = frozenset(b"0123456789abcdefABCDEF")

# Characters left as they are when a field is written back (RFC 3261 §25.1).
_SAFE_USER = frozenset("&=+$,;?/" + "-_.!~*'()") | frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
)
_SAFE_PASSWORD = (_SAFE_USER - frozenset(";?/")) | frozenset("&=+$,")
_SAFE_PARAM = (_SAFE_USER - frozenset("&=+$,;?/")) | frozenset("[]/:&+$")
_SAFE_HEADER = (_SAFE_USER - frozenset("&=+$,;?/")) | frozenset("[]/?:+$")


def unescape(text: str) -> str:
    """Decode ``%HH`` escapes (as UTF-8; a ``%`` not followed by two hex digits stays)."""
    if "%" not in text:
        return text
    raw = text.encode("utf-8", "surrogateescape")
    out = bytearray()
    i = 0
    n = len(raw)
    while i < n:
        c = raw[i]
        if c == 0x25 and i + 2 < n and raw[i + 1] in _HEX and raw[i + 2] in _HEX:
            out.append(int(raw[i + 1 : i + 3], 16))
            i += 3
        else:
            out.append(c)
            i += 1
    return out.decode("utf-8", "surrogateescape")


def escape(text: str, safe: frozenset[str]) -> str:
    """``%HH``-escape every character of ``text`` that is not in ``safe``."""
    if all(c in safe for c in text):
        return text
    out = []
    for c in text:
        if c in safe:
            out.append(c)
        else:
            out.extend(f"%{b:02X}" for b in c.encode("utf-8", "surrogateescape"))
    return "".join(out)


def parse_ipv6(text: str) -> str | None:
    """``text`` as an IPv6 address (lower case), or ``None`` if it is not one.

    RFC 5118 §4.10: one ``:::`` directly before an embedded IPv4 address that
    ends the address is read as ``::`` (RFC 3261's ABNF produces it); any
    other ``:::`` is refused. Zone ids (``%eth0``) are not part of SIP.
    """
    if not text or not _IPV6_CHARS.issuperset(text):
        return None
    try:
        ipaddress.IPv6Address(text)
        return text.lower()
    except ValueError:
        pass
    head, sep, tail = text.partition(":::")
    if sep and ":" not in tail and _IPV4.fullmatch(tail) and ":::" not in head:
        fixed = f"{head}::{tail}"
        try:
            ipaddress.IPv6Address(fixed)
            return fixed.lower()
        except ValueError:
            return None
    return None


def _is_ipv4(text: str) -> bool:
    return bool(_IPV4.fullmatch(text)) and all(int(p) <= 255 for p in text.split("."))


def check_host(text: str, where: str) -> str:
    """Validate a host (hostname, IPv4 address or bracketed IPv6 reference).

    Returns it lower-cased, an IPv6 address without its brackets. Raises
    :class:`SipParseError` whose reason starts with ``where``.
    """
    if text.startswith("["):
        if not text.endswith("]"):
            raise SipParseError(f"{where}: IPv6 reference {text!r} lacks its closing ']'")
        addr = parse_ipv6(text[1:-1])
        if addr is None:
            raise SipParseError(f"{where}: {text[1:-1]!r} is not a valid IPv6 address")
        return addr
    if not text:
        raise SipParseError(f"{where}: empty host")
    labels = text[:-1].split(".") if text.endswith(".") else text.split(".")
    if labels[-1].isdigit() or _IPV4.fullmatch(text):
        if not _is_ipv4(text):
            raise SipParseError(f"{where}: {text!r} is not a valid IPv4 address or host name")
        return text
    for label in labels:
        if not _LABEL.fullmatch(label):
            raise SipParseError(f"{where}: invalid host name {text!r}")
    return text.lower()


def parse_port(text: str, where: str) -> int:
    """A port number 0-65535 written in ASCII digits."""
    if not text or not text.isascii() or not text.isdigit() or len(text.lstrip("0")) > 5:
        raise SipParseError(f"{where}: invalid port {text!r}")
    port = int(text)
    if port > 65535:
        raise SipParseError(f"{where}: port {port} is out of range")
    return port


def split_hostport(text: str, where: str) -> tuple[str, int | None]:
    """``host[:port]`` (IPv6 in brackets) -> (host, port); RFC 5118 rules."""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise SipParseError(f"{where}: IPv6 reference {text!r} lacks its closing ']'")
        host = check_host(text[: end + 1], where)
        tail = text[end + 1 :]
        if not tail:
            return host, None
        if tail[0] != ":":
            raise SipParseError(f"{where}: unexpected {tail!r} after the IPv6 reference")
        return host, parse_port(tail[1:], where)
    if text.count(":") > 1:
        raise SipParseError(
            f"{where}: {text!r} looks like an IPv6 address without the brackets "
            "RFC 5118 §4.2 requires"
        )
    name, sep, port_text = text.partition(":")
    host = check_host(name, where)
    return host, parse_port(port_text, where) if sep else None


_PARSED: dict[str, tuple[Any, ...]] = {}
"""Parsed URIs by their text: a call's messages carry the same few URIs over and
over (From, To, Contact, Request-URI, Route), and parsing one is ~30 us of
Python; a hit builds a fresh object from the stored fields (~2 us)."""
_PARSED_MAX = 4096


def _remember(text: str, fields: tuple[Any, ...]) -> None:
    if len(_PARSED) >= _PARSED_MAX:  # URIs of calls long gone: start afresh
        _PARSED.clear()
    _PARSED[text] = fields


@dataclass
class OpaqueUri:
    """A URI of a scheme we do not interpret (``tel:``, ``http:``, ``urn:`` ...)."""

    scheme: str
    rest: str

    @property
    def is_sip(self) -> bool:
        """Always False: not a sip/sips URI."""
        return False

    def __str__(self) -> str:
        return f"{self.scheme}:{self.rest}"


@dataclass
class SipUri:
    """``sip:user:password@host:port;params?headers`` with decoded fields.

    ``params`` maps lower-cased names to values (``None`` for a flag such as
    ``lr``); ``headers`` maps header names to values (repeated names are
    joined with ``", "``).
    """

    scheme: str
    host: str
    user: str | None = None
    password: str | None = None
    port: int | None = None
    params: dict[str, str | None] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    _text: str = field(default="", compare=False, repr=False)
    _snapshot: tuple[object, ...] = field(default=(), compare=False, repr=False)

    @property
    def is_sip(self) -> bool:
        """Always True: a sip/sips URI."""
        return True

    @classmethod
    def parse(cls, text: str) -> SipUri | OpaqueUri:
        """Parse a URI; raises :class:`SipParseError` naming what is wrong.

        ``sip``/``sips`` give a :class:`SipUri`, any other well-formed
        absolute URI an :class:`OpaqueUri`.
        """
        cached = _PARSED.get(text)
        if cached is not None:  # a fresh object: callers may change theirs
            if cached[0] is None:
                return OpaqueUri(cached[1], cached[2])
            hit = cls(
                cached[1],
                cached[2],
                cached[3],
                cached[4],
                cached[5],
                dict(cached[6]),
                dict(cached[7]),
            )
            hit._text = text
            hit._snapshot = cached[8]
            return hit
        colon = text.find(":")
        if colon <= 0 or not _SCHEME.fullmatch(text[:colon]):
            raise SipParseError(f"URI {text[:80]!r} does not start with a scheme")
        scheme = text[:colon].lower()
        rest = text[colon + 1 :]
        if scheme not in ("sip", "sips"):
            if not _OPAQUE.fullmatch(rest):
                raise SipParseError(f"URI {text[:80]!r}: character not allowed in a URI")
            _remember(text, (None, scheme, rest))
            return OpaqueUri(scheme, rest)
        where = f"URI {text[:80]!r}"
        user = password = None
        at = rest.rfind("@")
        if at >= 0:
            userinfo, rest = rest[:at], rest[at + 1 :]
            user_text, sep, password_text = userinfo.partition(":")
            if not _USER.fullmatch(user_text):
                raise SipParseError(f"{where}: invalid user part {user_text[:40]!r}")
            if sep:
                if not _PASSWORD.fullmatch(password_text):
                    raise SipParseError(f"{where}: invalid password")
                password = unescape(password_text)
            user = unescape(user_text)
        rest, qmark, header_text = rest.partition("?")
        hostport, semi, param_text = rest.partition(";")
        host, port = split_hostport(hostport, where)
        params: dict[str, str | None] = {}
        if semi:
            for item in param_text.split(";"):
                name, eq, value = item.partition("=")
                if not _PARAMCHAR.fullmatch(name) or (eq and not _PARAMCHAR.fullmatch(value)):
                    raise SipParseError(f"{where}: invalid parameter {item[:40]!r}")
                key = unescape(name).lower()
                if key in params:
                    raise SipParseError(f"{where}: parameter {key!r} appears twice")
                params[key] = unescape(value) if eq else None
        headers: dict[str, str] = {}
        if qmark:
            for item in header_text.split("&"):
                name, eq, value = item.partition("=")
                if not eq or not _HNAME.fullmatch(name) or not _HVALUE.fullmatch(value):
                    raise SipParseError(f"{where}: invalid header component {item[:40]!r}")
                hname, hvalue = unescape(name), unescape(value)
                headers[hname] = f"{headers[hname]}, {hvalue}" if hname in headers else hvalue
        uri = cls(scheme, host, user, password, port, params, headers)
        uri._text = text
        uri._snapshot = uri._fields()
        _remember(
            text,
            (True, scheme, host, user, password, port, dict(params), dict(headers), uri._snapshot),
        )
        return uri

    def _fields(self) -> tuple[object, ...]:
        return (
            self.scheme,
            self.host,
            self.user,
            self.password,
            self.port,
            tuple(self.params.items()),
            tuple(self.headers.items()),
        )

    @property
    def hostport(self) -> str:
        """The host (IPv6 in brackets) and the port if one was given."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port is None else f"{host}:{self.port}"

    @property
    def transport(self) -> str | None:
        """The ``transport`` parameter, lower-cased, if present."""
        value = self.params.get("transport")
        return value.lower() if value else None

    def __str__(self) -> str:
        if self._text and self._snapshot == self._fields():
            return self._text
        out = [self.scheme, ":"]
        if self.user is not None:
            out.append(escape(self.user, _SAFE_USER))
            if self.password is not None:
                out += [":", escape(self.password, _SAFE_PASSWORD)]
            out.append("@")
        out.append(self.hostport)
        for k, v in self.params.items():
            out += [";", escape(k, _SAFE_PARAM)]
            if v is not None:
                out += ["=", escape(v, _SAFE_PARAM)]
        if self.headers:
            out.append("?")
            out.append(
                "&".join(
                    f"{escape(k, _SAFE_HEADER)}={escape(v, _SAFE_HEADER)}"
                    for k, v in self.headers.items()
                )
            )
        return "".join(out)

    def matches(self, other: SipUri | OpaqueUri) -> bool:
        """URI equivalence per RFC 3261 §19.1.4.

        Scheme, user, password, host and port must be equal (host and the
        scheme case-insensitively, absent port differs from 5060); the
        ``user``, ``ttl``, ``method``, ``maddr`` and ``transport`` parameters
        must agree when either side has them; any other parameter present on
        both sides must be equal (case-insensitively); headers must be equal.
        """
        if not isinstance(other, SipUri):
            return False
        if (self.scheme, self.user, self.password, self.host, self.port) != (
            other.scheme,
            other.user,
            other.password,
            other.host,
            other.port,
        ):
            return False
        for name in self.params.keys() | other.params.keys():
            if name in self.params and name in other.params:
                a, b = self.params[name], other.params[name]
                if (a is None) != (b is None) or (a or "").lower() != (b or "").lower():
                    return False
            elif name in ("user", "ttl", "method", "maddr", "transport"):
                return False
        return {k.lower(): v for k, v in self.headers.items()} == {
            k.lower(): v for k, v in other.headers.items()
        }
