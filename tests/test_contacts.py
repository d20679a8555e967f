"""The SQLite contacts directory behind IVR ``history`` lookups (a real file)."""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from recordings.contacts import ContactError, SqliteContacts, phone_digits

NOW = datetime(2026, 11, 23, 10, tzinfo=UTC)


def test_phone_digits_forms() -> None:
    for text in ("+81 3-1234-5678", "tel:+81312345678", "sip:81312345678@pbx;user=phone",
                 "(813) 1234 5678", "SIP:81312345678@pbx"):  # fmt: skip
        assert phone_digits(text) == "81312345678", text
    assert phone_digits("alice@example.com") == ""


def test_get_by_phone_account_email(tmp_path: Path) -> None:
    db = SqliteContacts(tmp_path / "c" / "contacts.sqlite3")
    ada = db.add(
        name="Ada Lovelace",
        phones=["+44 20 7946 0018", "+44 7700 900123"],
        account="1234567",
        email="Ada@Example.com",
        language="en",
        tier="vip",
        attributes={"segment": "enterprise", "open_tickets": 2},
        now=NOW,
    )
    db.add(name="Grace", phones=["+12125550123"], now=NOW)
    record = db.get("sip:+447700900123@pbx")
    assert record == {
        "id": ada,
        "name": "Ada Lovelace",
        "account": "1234567",
        "email": "Ada@Example.com",
        "language": "en",
        "tier": "vip",
        "phones": ["+44 20 7946 0018", "+44 7700 900123"],
        "attributes": {"open_tickets": 2, "segment": "enterprise"},
        "updated": "2026-11-23T10:00:00+00:00",
    }
    assert db.get("1234567") == record  # account
    assert db.get("ada@example.COM") == record  # e-mail, any case
    assert db.get("+1 212 555 0123")["name"] == "Grace"  # type: ignore[index]
    assert db.get("+15550000") is None and db.get("") is None and db.get("nobody@x") is None


def test_duplicates_refused_and_nothing_half_stored(tmp_path: Path) -> None:
    db = SqliteContacts(tmp_path / "contacts.sqlite3")
    db.add(name="A", phones=["+12125550123"], account="1", now=NOW)
    with pytest.raises(ContactError, match="contact 'B' not stored: UNIQUE constraint failed"):
        db.add(name="B", phones=["+15550001", "tel:+1 212 555 0123"], now=NOW)
    assert db.get("+15550001") is None  # the whole contact was rolled back
    with pytest.raises(ContactError, match="account"):
        db.add(name="C", account="1", now=NOW)
    with pytest.raises(ContactError, match="phone 'n/a' has no digits"):
        db.add(name="D", phones=["n/a"], now=NOW)
    rows = sqlite3.connect(tmp_path / "contacts.sqlite3").execute("SELECT count(*) FROM contacts")
    assert rows.fetchone() == (1,)


def test_reopen_and_concurrent_readers(tmp_path: Path) -> None:
    path = tmp_path / "contacts.sqlite3"
    SqliteContacts(path).add(name="A", phones=["+12125550123"], now=NOW)
    db = SqliteContacts(path)  # schema creation is idempotent
    found: list[str] = []

    def reader() -> None:
        for _ in range(50):
            record = db.get("+12125550123")
            assert record is not None
        found.append("ok")

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for t in threads:
        t.start()
    db.add(name="B", phones=["+15550002"], now=NOW)
    for t in threads:
        t.join()
    assert found == ["ok"] * 4
    assert db.get("+15550002")["name"] == "B"  # type: ignore[index]
