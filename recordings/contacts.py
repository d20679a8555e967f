"""Customer contacts for IVR lookups: who is calling (a view of the history store).

:class:`SqliteContacts` is the ``history`` source of the IVR ``lookup`` node
(engine.flowapp runs it off the event loop). Its contacts live in the
omnichannel history (:class:`recordings.history.HistoryStore`, normally in
``DATA/callcore.db``), so a caller found here is the contact whose timeline
holds their calls, chats and e-mails, merges included. :meth:`get` finds a
customer by phone number (E.164 after normalization, so ``+81 3-1234-5678``,
``tel:+81312345678`` and ``sip:81312345678@pbx`` are the same number), by
account (customer id), or by e-mail (any case).

Each thread uses its own connection; WAL mode, so lookups never wait on a writer.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from recordings.history import HistoryError, HistoryStore

__all__ = ["ContactError", "SqliteContacts", "phone_digits"]


class ContactError(ValueError):
    """A contact that cannot be stored (duplicate phone or account, bad data)."""


def phone_digits(text: str) -> str:
    """The digits of a phone number, URI prefix, user part and punctuation removed."""
    text = text.strip()
    text = re.sub(r"^(tel|sips?):", "", text, flags=re.I)
    text = text.split("@", 1)[0].split(";", 1)[0]
    return re.sub(r"\D", "", text)


class SqliteContacts:
    """The contacts of the history database at ``path`` (created when missing)."""

    def __init__(self, path: Path | str, *, region: str = "US") -> None:
        self.path = Path(path)
        self.region = region
        self._history: HistoryStore | None = None

    @property
    def history(self) -> HistoryStore:
        """The history store, opened on first use (the engine opens its database in
        its own order at start-up; a lookup is the first use here)."""
        if self._history is None:
            self._history = HistoryStore(self.path, region=self.region)
        return self._history

    def add(
        self,
        *,
        name: str,
        now: datetime,
        phones: Iterable[str] = (),
        account: str | None = None,
        email: str | None = None,
        language: str | None = None,
        tier: str | None = None,
        attributes: Mapping[str, Any] | None = None,
    ) -> int:
        """Store a customer; returns its id. Raises ContactError for a phone
        number or account already stored, or a phone without digits."""
        numbers = list(phones)
        for phone in numbers:
            if not phone_digits(phone):
                raise ContactError(f"phone {phone!r} has no digits")
        try:
            return self.history.add_contact(
                name=name,
                now=now,
                phones=numbers,
                emails=[email] if email else [],
                customer_id=account,
                language=language,
                tier=tier,
                attributes=attributes,
            )
        except HistoryError as exc:
            raise ContactError(str(exc)) from None

    def get(self, key: str) -> dict[str, Any] | None:
        """The customer whose phone number, account or e-mail is ``key``, else None."""
        contact_id = self.history.find(key)
        if contact_id is None:
            return None
        contact = self.history.contact(contact_id)
        return {
            k: contact[k] for k in ("id", "name", "account", "email", "language", "tier", "phones")
        } | {"attributes": contact["attributes"], "updated": contact["updated"]}
