"""HTTP digest authentication for SIP (RFC 2617, RFC 7616, RFC 8760), sans I/O.

Client side: :meth:`Challenge.parse` reads a ``WWW-Authenticate`` or
``Proxy-Authenticate`` value (realm, nonce, opaque, algorithm MD5 / MD5-sess /
SHA-256 / SHA-256-sess / SHA-512-256[-sess], qop ``auth`` / ``auth-int``,
stale, userhash), :func:`choose_challenge` picks the strongest one a response
offers (RFC 8760 §2.4), and :func:`authorization` builds the matching
``Authorization`` / ``Proxy-Authorization`` value. The cnonce and the nonce
count are passed in, so results are reproducible (RFC 2617 §3.5 and RFC 7616
§3.9.1 are the tests).

Server side: ``str(Challenge(...))`` writes a challenge, :meth:`Credentials.parse`
reads any scheme's credentials (RFC 4475 regaut01 uses an unknown one) and
:func:`verify` checks Digest credentials against a password.

Malformed peer input raises :class:`~media.sip.errors.SipParseError`;
:func:`verify` returns ``False`` for it instead.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass, field

from media.sip.errors import SipParseError, SipUsageError
from media.sip.headers import closing_quote, is_token, quote, split_list, unquote

# RFC 7616 §6.1 / RFC 8760 names -> hashlib names.
HASHES = {"MD5": "md5", "SHA-256": "sha256", "SHA-512-256": "sha512_256"}
_STRENGTH = ("SHA-512-256", "SHA-256", "MD5")
_VALUE = re.compile(r"[^\s\",;]+")


def _available(name: str) -> bool:
    try:
        hashlib.new(name)
    except ValueError:
        return False
    return True


def algorithm_supported(algorithm: str) -> bool:
    """True if ``algorithm`` (with or without ``-sess``) can be computed here."""
    base = algorithm.upper().removesuffix("-SESS")
    return base in HASHES and _available(HASHES[base])


def _hash(algorithm: str, text: str | bytes) -> str:
    base = algorithm.upper().removesuffix("-SESS")
    if not algorithm_supported(algorithm):
        raise SipParseError(f"digest algorithm {algorithm[:30]!r} is not supported")
    data = text.encode("utf-8") if isinstance(text, str) else text
    return hashlib.new(HASHES[base], data).hexdigest()


def parse_auth_params(text: str, where: str) -> dict[str, str]:
    """``name=value, name="quoted"`` -> names lower-cased, values unquoted."""
    out: dict[str, str] = {}
    for item in split_list(text):
        if not item:
            continue  # RFC 7235 §4.1: empty list elements are ignored
        name, eq, value = item.partition("=")
        name, value = name.strip(), value.strip()
        if not eq or not is_token(name):
            raise SipParseError(f"{where}: malformed parameter {item[:40]!r}")
        if value.startswith('"'):
            if closing_quote(value) != len(value) - 1:
                raise SipParseError(f"{where}: unterminated quoted value of {name!r}")
            value = unquote(value)
        elif not _VALUE.fullmatch(value):
            raise SipParseError(f"{where}: invalid value {value[:40]!r} for {name!r}")
        key = name.lower()
        if key in out:
            raise SipParseError(f"{where}: parameter {key!r} appears twice")
        out[key] = value
    return out


def _split_scheme(value: str, where: str) -> tuple[str, str]:
    text = value.strip()
    end = 0
    while end < len(text) and text[end] not in " \t":
        end += 1
    scheme = text[:end]
    if not is_token(scheme):
        raise SipParseError(f"{where}: missing or invalid authentication scheme")
    return scheme, text[end:].strip()


@dataclass(frozen=True)
class Challenge:
    """A Digest challenge (``WWW-Authenticate`` / ``Proxy-Authenticate``)."""

    realm: str
    nonce: str
    algorithm: str = "MD5"
    qop: tuple[str, ...] = ()
    opaque: str | None = None
    stale: bool = False
    domain: str | None = None
    userhash: bool = False

    @classmethod
    def parse(cls, value: str, where: str = "WWW-Authenticate") -> Challenge:
        """Parse a Digest challenge; other schemes and missing realm/nonce raise."""
        scheme, rest = _split_scheme(value, where)
        if scheme.lower() != "digest":
            raise SipParseError(f"{where}: scheme {scheme[:30]!r} is not Digest")
        p = parse_auth_params(rest, where)
        for required in ("realm", "nonce"):
            if required not in p:
                raise SipParseError(f"{where}: Digest challenge without {required}")
        qop = tuple(q.strip().lower() for q in p.get("qop", "").split(",") if q.strip())
        return cls(
            realm=p["realm"],
            nonce=p["nonce"],
            algorithm=p.get("algorithm", "MD5"),
            qop=qop,
            opaque=p.get("opaque"),
            stale=p.get("stale", "").lower() == "true",
            domain=p.get("domain"),
            userhash=p.get("userhash", "").lower() == "true",
        )

    @property
    def usable(self) -> bool:
        """We can answer it: known algorithm, and qop absent or offering auth/auth-int."""
        qop_ok = not self.qop or "auth" in self.qop or "auth-int" in self.qop
        return algorithm_supported(self.algorithm) and qop_ok

    def __str__(self) -> str:
        parts = [f"realm={quote(self.realm)}", f"nonce={quote(self.nonce)}"]
        if self.domain is not None:
            parts.append(f"domain={quote(self.domain)}")
        if self.opaque is not None:
            parts.append(f"opaque={quote(self.opaque)}")
        if self.stale:
            parts.append("stale=TRUE")
        parts.append(f"algorithm={self.algorithm}")
        if self.qop:
            parts.append(f"qop={quote(','.join(self.qop))}")
        if self.userhash:
            parts.append("userhash=true")
        return "Digest " + ", ".join(parts)


def choose_challenge(values: list[str], where: str = "WWW-Authenticate") -> Challenge | None:
    """The strongest usable Digest challenge among header values (RFC 8760 §2.4).

    Values that do not parse or use another scheme are skipped.
    """
    usable = []
    for value in values:
        try:
            challenge = Challenge.parse(value, where)
        except SipParseError:
            continue
        if challenge.usable:
            usable.append(challenge)
    if not usable:
        return None

    def rank(c: Challenge) -> int:
        """0 for the strongest hash."""
        return _STRENGTH.index(c.algorithm.upper().removesuffix("-SESS"))

    return min(usable, key=rank)


@dataclass(frozen=True)
class Credentials:
    """``Authorization`` / ``Proxy-Authorization``: a scheme and its (unquoted) parameters."""

    scheme: str
    params: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, value: str, where: str = "Authorization") -> Credentials:
        """Parse credentials of any scheme; raises :class:`SipParseError`."""
        scheme, rest = _split_scheme(value, where)
        return cls(scheme, parse_auth_params(rest, where))

    @property
    def is_digest(self) -> bool:
        """The scheme is Digest (case-insensitive)."""
        return self.scheme.lower() == "digest"

    def get(self, name: str) -> str | None:
        """A parameter by lower-case name, unquoted."""
        return self.params.get(name)

    @property
    def username(self) -> str | None:
        """The username parameter (a hash when ``userhash=true``)."""
        return self.params.get("username")

    @property
    def realm(self) -> str | None:
        """The realm parameter."""
        return self.params.get("realm")

    @property
    def nonce(self) -> str | None:
        """The nonce parameter."""
        return self.params.get("nonce")


def response_digest(
    algorithm: str,
    user: str,
    realm: str,
    password: str,
    method: str,
    uri: str,
    nonce: str,
    *,
    qop: str | None,
    cnonce: str,
    nc: str,
    body: bytes = b"",
) -> str:
    """The ``response`` value (RFC 7616 §3.4.1; RFC 2069 form when ``qop`` is None)."""
    ha1 = _hash(algorithm, f"{user}:{realm}:{password}")
    if algorithm.upper().endswith("-SESS"):
        ha1 = _hash(algorithm, f"{ha1}:{nonce}:{cnonce}")
    if qop == "auth-int":
        ha2 = _hash(algorithm, f"{method}:{uri}:{_hash(algorithm, body)}")
    else:
        ha2 = _hash(algorithm, f"{method}:{uri}")
    if qop:
        return _hash(algorithm, f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")
    return _hash(algorithm, f"{ha1}:{nonce}:{ha2}")


def authorization(
    challenge: Challenge,
    user: str,
    password: str,
    method: str,
    uri: str,
    *,
    cnonce: str,
    nc: int = 1,
    body: bytes = b"",
    qop: str | None = None,
) -> str:
    """The ``Authorization``/``Proxy-Authorization`` value answering ``challenge``.

    ``qop`` defaults to ``auth`` when offered, else ``auth-int`` (which
    hashes ``body``); a challenge without qop gets the RFC 2069 form. ``nc``
    is the nonce count for this nonce (1 for its first use). Raises
    :class:`SipParseError` when the challenge cannot be answered (unknown
    algorithm, no usable qop) and :class:`SipUsageError` for a ``qop`` it
    does not offer.
    """
    if qop is None and challenge.qop:
        qop = next((q for q in ("auth", "auth-int") if q in challenge.qop), None)
        if qop is None:
            raise SipParseError(f"Digest challenge offers no supported qop: {challenge.qop!r}")
    elif qop is not None and qop not in challenge.qop:
        raise SipUsageError(f"qop {qop!r} is not offered by the challenge")
    if nc < 1 or nc > 0xFFFFFFFF:
        raise SipUsageError(f"nonce count {nc} out of range")
    nc_text = f"{nc:08x}"
    digest = response_digest(
        challenge.algorithm,
        user,
        challenge.realm,
        password,
        method,
        uri,
        challenge.nonce,
        qop=qop,
        cnonce=cnonce,
        nc=nc_text,
        body=body,
    )
    name = _hash(challenge.algorithm, f"{user}:{challenge.realm}") if challenge.userhash else user
    parts = [
        f"username={quote(name)}",
        f"realm={quote(challenge.realm)}",
        f"nonce={quote(challenge.nonce)}",
        f"uri={quote(uri)}",
        f"response={quote(digest)}",
        f"algorithm={challenge.algorithm}",
    ]
    if qop:
        parts += [f"cnonce={quote(cnonce)}", f"qop={qop}", f"nc={nc_text}"]
    elif challenge.algorithm.upper().endswith("-SESS"):  # H(A1) uses the cnonce
        parts.append(f"cnonce={quote(cnonce)}")
    if challenge.opaque is not None:
        parts.append(f"opaque={quote(challenge.opaque)}")
    if challenge.userhash:
        parts.append("userhash=true")
    return "Digest " + ", ".join(parts)


def verify(
    value: str | Credentials,
    password: str,
    method: str,
    *,
    body: bytes = b"",
    realm: str | None = None,
    nonce: str | None = None,
    user: str | None = None,
) -> bool:
    """Server side: do these Digest credentials prove ``password``?

    ``realm``/``nonce``, when given, must be the ones the credentials answer;
    ``user``, when given, must be the user they name (required to check
    ``userhash=true`` credentials). Malformed credentials give ``False``.
    """
    try:
        cred = value if isinstance(value, Credentials) else Credentials.parse(value)
        p = cred.params
        if not cred.is_digest or (realm is not None and p.get("realm") != realm):
            return False
        if nonce is not None and p.get("nonce") != nonce:
            return False
        algorithm = p.get("algorithm", "MD5")
        name = p["username"]
        if p.get("userhash", "").lower() == "true":
            if user is None or name != _hash(algorithm, f"{user}:{p['realm']}"):
                return False
            name = user
        elif user is not None and name != user:
            return False
        qop = p.get("qop")
        if qop is not None and qop not in ("auth", "auth-int"):
            return False
        expected = response_digest(
            algorithm,
            name,
            p["realm"],
            password,
            method,
            p["uri"],
            p["nonce"],
            qop=qop,
            cnonce=p.get("cnonce", ""),
            nc=p.get("nc", ""),
            body=body,
        )
    except (KeyError, SipParseError):
        return False
    return hmac.compare_digest(expected, p.get("response", "").lower())
