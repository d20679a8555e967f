"""Customer contacts in a SQLite file: who is calling, for IVR lookups.

One row per customer (name, account, email, language, tier, free-form JSON
attributes) and any number of phone numbers. :meth:`SqliteContacts.get`
finds a customer by phone number (compared on digits only, so
``+81 3-1234-5678``, ``tel:+81312345678`` and ``sip:81312345678@pbx`` are
the same number), by account, or by e-mail (case-insensitive). It is the
``history`` source of the IVR ``lookup`` node (engine.flowapp runs it off
the event loop).

Each call opens its own connection, so the object can be used from any
thread; the database runs in WAL mode so lookups never wait on a writer.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

__all__ = ["ContactError", "SqliteContacts", "phone_digits"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS contacts (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL DEFAULT '',
    account TEXT UNIQUE,
    email TEXT,
    language TEXT,
    tier TEXT,
    attributes TEXT NOT NULL DEFAULT '{}',
    updated TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS contact_phones (
    digits TEXT PRIMARY KEY,
    phone TEXT NOT NULL,
    contact_id INTEGER NOT NULL REFERENCES contacts(id) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS contacts_email ON contacts(lower(email));
"""


class ContactError(ValueError):
    """A contact that cannot be stored (duplicate phone or account, bad data)."""


def phone_digits(text: str) -> str:
    """The digits of a phone number, URI prefix, user part and punctuation removed."""
    text = text.strip()
    text = re.sub(r"^(tel|sips?):", "", text, flags=re.I)
    text = text.split("@", 1)[0].split(";", 1)[0]
    return re.sub(r"\D", "", text)


class SqliteContacts:
    """The contacts database at ``path`` (created with its schema when missing)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=5.0)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA foreign_keys=ON")
        return db

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
        attrs = json.dumps(dict(attributes or {}), ensure_ascii=False, sort_keys=True)
        db = self._connect()
        try:
            with db:
                cur = db.execute(
                    "INSERT INTO contacts (name, account, email, language, tier, attributes,"
                    " updated) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (name, account, email, language, tier, attrs, now.isoformat()),
                )
                contact_id = int(cur.lastrowid or 0)
                for phone in numbers:
                    db.execute(
                        "INSERT INTO contact_phones (digits, phone, contact_id) VALUES (?, ?, ?)",
                        (phone_digits(phone), phone, contact_id),
                    )
        except sqlite3.IntegrityError as exc:
            raise ContactError(
                f"contact {name!r} not stored: {exc} (a phone number or account belongs to"
                " another contact)"
            ) from None
        finally:
            db.close()
        return contact_id

    def get(self, key: str) -> dict[str, Any] | None:
        """The customer whose phone number, account or e-mail is ``key``, else None."""
        key = key.strip()
        if not key:
            return None
        db = self._connect()
        try:
            row = None
            if "@" in key and not key.lower().startswith(("sip:", "sips:")):
                row = db.execute(
                    "SELECT * FROM contacts WHERE lower(email) = lower(?) ORDER BY id LIMIT 1",
                    (key,),
                ).fetchone()
            if row is None:
                row = db.execute("SELECT * FROM contacts WHERE account = ?", (key,)).fetchone()
            digits = phone_digits(key)
            if row is None and digits:
                row = db.execute(
                    "SELECT c.* FROM contacts c JOIN contact_phones p ON p.contact_id = c.id"
                    " WHERE p.digits = ?",
                    (digits,),
                ).fetchone()
            if row is None:
                return None
            phones = [
                r["phone"]
                for r in db.execute(
                    "SELECT phone FROM contact_phones WHERE contact_id = ? ORDER BY rowid",
                    (row["id"],),
                )
            ]
        finally:
            db.close()
        return {
            "id": row["id"],
            "name": row["name"],
            "account": row["account"],
            "email": row["email"],
            "language": row["language"],
            "tier": row["tier"],
            "phones": phones,
            "attributes": json.loads(row["attributes"]),
            "updated": row["updated"],
        }
