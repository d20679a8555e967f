"""Who a contact is: identifiers normalized so the same person matches (pure).

Kinds of identifier:

``phone``     E.164 (``+15551234567``), from any written form: ``tel:`` and
              ``sip:`` URIs (the user part), spaces, dashes, brackets; numbers
              without ``+`` are read in the default region, then as
              international without the ``+`` (``81312345678`` from a PBX is
              ``+81312345678``). A number too short or too long for E.164
              (a test number, an extension with a ``+``) keeps ``+`` and its
              digits, so it still matches itself however it is written.
``email``     lower case, trimmed; must look like ``local@domain.tld``.
``customer``  the customer/account id, trimmed, as given.
``sip``       a SIP address that is not a phone number (``sip:alice@example.com``,
              a softphone's user), ``user@host`` lower case without port.

:func:`caller_identity` picks the identifier of a SIP caller URI (phone when
the user part is a number, else sip; None when anonymous).
"""

from __future__ import annotations

import re

import phonenumbers

__all__ = [
    "IDENTIFIER_KINDS",
    "IdentityError",
    "caller_identity",
    "normalize",
    "normalize_email",
    "normalize_phone",
    "normalize_sip",
]

IDENTIFIER_KINDS = ("phone", "email", "customer", "sip")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")
_VISUAL = re.compile(r"[\s\-().\/]")
_ANONYMOUS = frozenset({"anonymous", "unknown", "restricted", "private", "unavailable", ""})


class IdentityError(ValueError):
    """An identifier that cannot be normalized; the message says which and why."""


def _user_part(text: str) -> tuple[str, str]:
    """(user, host) of a ``sip:``/``sips:``/``tel:`` URI or a bare address."""
    text = text.strip().strip("<>").strip()
    text = re.sub(r"^(sips?|tel):", "", text, flags=re.I)
    text = text.split(";", 1)[0]
    user, _, host = text.partition("@")
    return user, host.split(":", 1)[0].split(">", 1)[0]


def normalize_phone(text: str, region: str = "US") -> str:
    """``text`` as E.164 (see module docstring). Raises :class:`IdentityError` when
    there is no number in it (letters, no digits)."""
    user, _ = _user_part(text)
    compact = _VISUAL.sub("", user)
    if compact.startswith("00"):
        compact = "+" + compact[2:]
    body = compact[1:] if compact.startswith("+") else compact
    if not body.isdigit():
        raise IdentityError(f"phone {text!r} is not a number (digits, + and separators only)")
    candidates = [compact] if compact.startswith("+") else [compact, "+" + compact]
    for candidate in candidates:
        try:
            number = phonenumbers.parse(candidate, None if candidate.startswith("+") else region)
        except phonenumbers.NumberParseException:
            continue
        reason = phonenumbers.is_possible_number_with_reason(number)
        if reason == phonenumbers.ValidationResult.IS_POSSIBLE:
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return compact if compact.startswith("+") else "+" + compact


def normalize_email(text: str) -> str:
    """``text`` trimmed and lower-cased; raises :class:`IdentityError` when it is not
    ``local@domain.tld``."""
    value = text.strip().lower()
    if value.startswith("mailto:"):
        value = value[7:]
    if not _EMAIL.match(value):
        raise IdentityError(f"email {text!r} is not an address like name@example.com")
    return value


def normalize_sip(text: str) -> str:
    """A SIP address as ``user@host`` (lower case, no scheme, port or parameters)."""
    user, host = _user_part(text)
    if not user and not host:
        raise IdentityError(f"sip address {text!r} is empty")
    return f"{user}@{host}".lower() if host else user.lower()


def normalize(kind: str, value: str, region: str = "US") -> str:
    """Normalize one identifier of ``kind`` (one of :data:`IDENTIFIER_KINDS`)."""
    if not isinstance(value, str) or not value.strip():
        raise IdentityError(f"{kind} must be a non-empty text")
    if kind == "phone":
        return normalize_phone(value, region)
    if kind == "email":
        return normalize_email(value)
    if kind == "customer":
        text = value.strip()
        if len(text) > 128:
            raise IdentityError("customer id is longer than 128 characters")
        return text
    if kind == "sip":
        return normalize_sip(value)
    raise IdentityError(f"identifier kind {kind!r} is not one of {', '.join(IDENTIFIER_KINDS)}")


def caller_identity(uri: str, region: str = "US") -> tuple[str, str] | None:
    """The identifier of a SIP caller (``From`` URI): ``("phone", E.164)`` when its
    user part is a number, ``("sip", user@host)`` otherwise, None when anonymous."""
    user, _ = _user_part(uri)
    if user.lower() in _ANONYMOUS:
        return None
    try:
        return "phone", normalize_phone(uri, region)
    except IdentityError:
        return "sip", normalize_sip(uri)
