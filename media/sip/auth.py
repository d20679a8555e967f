"""HTTP digest authentication for SIP (RFC 2617, RFC 7616, RFC 8760), sans I/O.

Client side: parse a ``WWW-Authenticate``/``Proxy-Authenticate`` challenge and
build the matching credentials (MD5, MD5-sess, SHA-256, SHA-256-sess; qop
``auth`` or none). Server side: ``verify`` checks credentials against a
password, for tests and a future registrar. The cnonce is passed in.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from media.sip.headers import split_list

ALGORITHMS = {"MD5": "md5", "SHA-256": "sha256"}


def _h(algorithm: str, text: str) -> str:
    base = algorithm.upper().removesuffix("-SESS")
    try:
        name = ALGORITHMS[base]
    except KeyError:
        raise ValueError(f"unsupported digest algorithm {algorithm!r}") from None
    return hashlib.new(name, text.encode()).hexdigest()


def _params(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in split_list(text):
        k, sep, v = item.partition("=")
        if not sep:
            raise ValueError(f"digest parameter {item!r} has no '='")
        v = v.strip()
        if v.startswith('"') and v.endswith('"') and len(v) >= 2:
            v = v[1:-1].replace('\\"', '"')
        out[k.strip().lower()] = v
    return out


@dataclass(frozen=True)
class Challenge:
    """A digest challenge."""

    realm: str
    nonce: str
    algorithm: str = "MD5"
    qop: tuple[str, ...] = ()
    opaque: str | None = None
    stale: bool = False

    @classmethod
    def parse(cls, value: str) -> Challenge:
        scheme, _, rest = value.strip().partition(" ")
        if scheme.lower() != "digest":
            raise ValueError(f"authentication scheme {scheme!r} is not Digest")
        p = _params(rest)
        if "realm" not in p or "nonce" not in p:
            raise ValueError("digest challenge lacks realm or nonce")
        qop = tuple(q.strip() for q in p.get("qop", "").split(",") if q.strip())
        return cls(
            realm=p["realm"],
            nonce=p["nonce"],
            algorithm=p.get("algorithm", "MD5"),
            qop=qop,
            opaque=p.get("opaque"),
            stale=p.get("stale", "").lower() == "true",
        )


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
) -> str:
    ha1 = _h(algorithm, f"{user}:{realm}:{password}")
    if algorithm.upper().endswith("-SESS"):
        ha1 = _h(algorithm, f"{ha1}:{nonce}:{cnonce}")
    ha2 = _h(algorithm, f"{method}:{uri}")
    if qop:
        return _h(algorithm, f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")
    return _h(algorithm, f"{ha1}:{nonce}:{ha2}")


def authorization(
    challenge: Challenge, user: str, password: str, method: str, uri: str, *, cnonce: str, nc: int
) -> str:
    """The ``Authorization``/``Proxy-Authorization`` value answering ``challenge``."""
    qop = "auth" if "auth" in challenge.qop else None
    nc_s = f"{nc:08x}"
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
        nc=nc_s,
    )
    parts = [
        f'username="{user}"',
        f'realm="{challenge.realm}"',
        f'nonce="{challenge.nonce}"',
        f'uri="{uri}"',
        f'response="{digest}"',
        f"algorithm={challenge.algorithm}",
    ]
    if qop:
        parts += [f"qop={qop}", f"nc={nc_s}", f'cnonce="{cnonce}"']
    if challenge.opaque is not None:
        parts.append(f'opaque="{challenge.opaque}"')
    return "Digest " + ", ".join(parts)


def verify(value: str, password: str, method: str) -> bool:
    """Server side: do these credentials answer their own challenge for ``password``?"""
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "digest":
        return False
    p = _params(rest)
    try:
        expected = response_digest(
            p.get("algorithm", "MD5"),
            p["username"],
            p["realm"],
            password,
            method,
            p["uri"],
            p["nonce"],
            qop=p.get("qop"),
            cnonce=p.get("cnonce", ""),
            nc=p.get("nc", ""),
        )
    except (KeyError, ValueError):
        return False
    return expected == p.get("response")
