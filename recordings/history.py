"""The omnichannel customer history: contacts and every interaction, in one SQLite file.

Contacts are identified by any number of identifiers (:mod:`recordings.identity`:
E.164 phone, e-mail, customer id, SIP address); an identifier belongs to one
contact. Two contacts found to be one person are *merged*: the survivor gets
every identifier and interaction of the other, the other is kept as a
pointer (``merged_into``) so its old id still leads to the survivor, and the
merge is recorded (``contact_merges``: who, when, what moved).

Interactions of every channel (``voice``, ``voicemail``, ``chat``, ``email``,
``sms``, ``social``) share one table and so one timeline per contact, newest
first. A channel's own id (SIP call id, message id) is ``external_id``:
ingesting the same message twice stores it once. Subjects and bodies
(messages, call transcripts) are indexed with SQLite FTS5 (external content,
kept in step by triggers), searched with :meth:`HistoryStore.search`. The
index also holds each interaction's contact as a token (``c<id>``), so a
search within one contact's history is an intersection the index does
itself (a common word costs no more than a rare one there).

Voice calls arrive by themselves: the recorder tells :meth:`record_call`
about every finished recording (numbers, flow, queue, agent, disposition),
and the transcription workers hand the text record to
:meth:`attach_transcript` later. :meth:`delete_call` removes a call's
interactions, transcript and index rows together (retention, erasure).

Each thread keeps its own connection (WAL mode: readers never wait for the
writer); every write is one transaction, so a refused input stores nothing.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from recordings.identity import IdentityError, caller_identity, normalize
from recordings.metadata import RecordingMeta

__all__ = [
    "CHANNELS",
    "HistoryError",
    "HistoryStore",
    "Identifier",
    "InteractionIn",
    "fts_query",
    "open_history",
    "snippet",
    "transcript_text",
]

CHANNELS = ("voice", "voicemail", "chat", "email", "sms", "social")
RANK_WINDOW = 5000
"""Search ranks the newest this many matches (see :meth:`HistoryStore.search`)."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS contacts (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL DEFAULT '',
    account TEXT UNIQUE,
    email TEXT,
    language TEXT,
    tier TEXT,
    attributes TEXT NOT NULL DEFAULT '{}',
    merged_into INTEGER REFERENCES contacts(id),
    created TEXT NOT NULL,
    updated TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS contact_identifiers (
    kind TEXT NOT NULL,
    value TEXT NOT NULL,
    display TEXT NOT NULL,
    contact_id INTEGER NOT NULL REFERENCES contacts(id),
    PRIMARY KEY (kind, value)
);
CREATE INDEX IF NOT EXISTS contact_identifiers_contact ON contact_identifiers(contact_id);
CREATE TABLE IF NOT EXISTS contact_merges (
    id INTEGER PRIMARY KEY,
    survivor INTEGER NOT NULL,
    merged INTEGER NOT NULL,
    at TEXT NOT NULL,
    by TEXT NOT NULL DEFAULT '',
    identifiers TEXT NOT NULL,
    interactions INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS interactions (
    id INTEGER PRIMARY KEY,
    contact_id INTEGER REFERENCES contacts(id),
    channel TEXT NOT NULL,
    direction TEXT NOT NULL DEFAULT 'inbound',
    occurred_at REAL NOT NULL,
    external_id TEXT,
    subject TEXT NOT NULL DEFAULT '',
    body TEXT NOT NULL DEFAULT '',
    meta TEXT NOT NULL DEFAULT '{}',
    created REAL NOT NULL,
    contact_tag TEXT GENERATED ALWAYS AS ('c' || ifnull(contact_id, 0)) VIRTUAL
);
CREATE UNIQUE INDEX IF NOT EXISTS interactions_external
    ON interactions(channel, external_id) WHERE external_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS interactions_timeline ON interactions(contact_id, occurred_at);
CREATE VIRTUAL TABLE IF NOT EXISTS interactions_fts USING fts5(
    subject, body, contact_tag, content='interactions', content_rowid='id',
    tokenize='unicode61 remove_diacritics 2'
);
CREATE TRIGGER IF NOT EXISTS interactions_fts_insert AFTER INSERT ON interactions BEGIN
    INSERT INTO interactions_fts(rowid, subject, body, contact_tag)
        VALUES (new.id, new.subject, new.body, new.contact_tag);
END;
CREATE TRIGGER IF NOT EXISTS interactions_fts_delete AFTER DELETE ON interactions BEGIN
    INSERT INTO interactions_fts(interactions_fts, rowid, subject, body, contact_tag)
        VALUES ('delete', old.id, old.subject, old.body, old.contact_tag);
END;
CREATE TRIGGER IF NOT EXISTS interactions_fts_update AFTER UPDATE OF subject, body, contact_id
    ON interactions BEGIN
    INSERT INTO interactions_fts(interactions_fts, rowid, subject, body, contact_tag)
        VALUES ('delete', old.id, old.subject, old.body, old.contact_tag);
    INSERT INTO interactions_fts(rowid, subject, body, contact_tag)
        VALUES (new.id, new.subject, new.body, new.contact_tag);
END;
"""


class HistoryError(ValueError):
    """A request the history cannot do. ``status`` is the HTTP status (400 bad input,
    404 unknown contact, 409 conflict); ``field`` names the bad input field."""

    def __init__(self, text: str, *, status: int = 400, field: str | None = None) -> None:
        super().__init__(text)
        self.status = status
        self.field = field


@dataclass(frozen=True)
class Identifier:
    """One normalized identifier, with the form it was given in."""

    kind: str
    value: str
    display: str


# ---------------------------------------------------------------- ingest model
class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ContactRef(_In):
    """Whose interaction it is: a contact id, or identifiers (found, else created)."""

    id: int | None = Field(default=None, ge=1)
    phone: str | None = Field(default=None, max_length=64)
    email: str | None = Field(default=None, max_length=254)
    customer_id: str | None = Field(default=None, max_length=128)
    sip: str | None = Field(default=None, max_length=254)
    name: str | None = Field(default=None, max_length=200)


class InteractionIn(_In):
    """The body of ``POST /history/interactions`` (chat, e-mail, SMS, social ...)."""

    channel: Literal["voice", "voicemail", "chat", "email", "sms", "social"]
    contact: ContactRef
    occurred_at: datetime
    direction: Literal["inbound", "outbound"] = "inbound"
    subject: str = Field(default="", max_length=1000)
    body: str = Field(min_length=1, max_length=1_000_000)
    external_id: str | None = Field(default=None, min_length=1, max_length=256)
    meta: dict[str, Any] = Field(default_factory=dict)

    @field_validator("occurred_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("needs a time zone, e.g. 2024-05-01T10:00:00Z")
        return value


def _field(loc: Sequence[int | str]) -> str:
    return ".".join(str(part) for part in loc) or "body"


# --------------------------------------------------------------------- helpers
def fts_query(text: str, contact_id: int | None = None) -> str:
    """The FTS5 MATCH expression for a user's search text: every word must occur in
    the subject or body (each quoted, so FTS operators and punctuation in the text
    are plain words); a word written with a trailing ``*`` matches as a prefix.
    ``contact_id`` keeps to that contact's interactions. Raises HistoryError when
    the text has no words."""
    words = re.findall(r"\w+\*?", text)
    if not words:
        raise HistoryError(f"search text {text!r} has no words", field="q")
    quoted = [f'"{w[:-1]}"*' if w.endswith("*") else f'"{w}"' for w in words[:32]]
    expr = "{subject body} : (" + " ".join(quoted) + ")"
    if contact_id is not None:
        expr += f' AND contact_tag : "c{contact_id}"'
    return expr


def _fold(word: str) -> str:
    """A word as the index sees it: lower case, diacritics removed."""
    decomposed = unicodedata.normalize("NFKD", word.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def snippet(text: str, words: Sequence[str], width: int = 12) -> str:
    """Up to ``width`` words of ``text`` around the first word that matches one of
    ``words`` (a prefix matches too), matches in ``[...]``, ``...`` where cut."""
    tokens = text.split()
    if not tokens:
        return ""
    wanted = [_fold(w) for w in words if w]

    def hit(token: str) -> bool:
        core = _fold(re.sub(r"^\W+|\W+$", "", token))
        return bool(core) and any(core.startswith(w) for w in wanted)

    def mark(token: str) -> str:
        lead, core, trail = re.match(r"^(\W*)(.*?)(\W*)$", token).groups()  # type: ignore[union-attr]
        return f"{lead}[{core}]{trail}" if hit(token) else token

    first = next((i for i, t in enumerate(tokens) if hit(t)), 0)
    start = max(0, min(first - width // 3, len(tokens) - width))
    part = [mark(t) for t in tokens[start : start + width]]
    return (
        ("..." if start > 0 else "")
        + " ".join(part)
        + ("..." if start + width < len(tokens) else "")
    )


def transcript_text(record: Mapping[str, Any]) -> str:
    """A text record's segments as ``speaker: text`` lines (what search indexes)."""
    lines = []
    for seg in record.get("segments") or []:
        text = str(seg.get("text", "")).strip()
        if text:
            lines.append(f"{seg.get('speaker', '?')}: {text}")
    return "\n".join(lines)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


def _uri_user(uri: str) -> str:
    text = re.sub(r"^(sips?|tel):", "", uri.strip().strip("<>"), flags=re.I)
    return text.split("@", 1)[0].split(";", 1)[0]


class HistoryStore:
    """The history tables in the SQLite file at ``path`` (created when missing).

    ``region``: where phone numbers written without ``+`` are read (ISO 3166
    code, e.g. ``US``, ``GB``, ``JP``).
    """

    def __init__(self, path: Path | str, *, region: str = "US") -> None:
        self.path = Path(path)
        self.region = region
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        try:
            db = self._db()
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)
        except sqlite3.Error as exc:
            raise HistoryError(
                f"{self.path}: cannot open the history tables: {exc}"
                " (check the file is a SQLite database with FTS5, and writable)",
                status=500,
            ) from None

    def _db(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=10.0, isolation_level=None)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA foreign_keys=ON")
            self._local.db = db
        return db

    def _write(self) -> _Tx:
        return _Tx(self._db())

    def close(self) -> None:
        """Close this thread's connection (others close when their thread ends)."""
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None

    # ------------------------------------------------------------ identifiers
    def identifiers(self, pairs: Iterable[tuple[str, str]]) -> list[Identifier]:
        """Normalize ``(kind, value)`` pairs; raises HistoryError naming the bad one."""
        out = []
        for kind, value in pairs:
            try:
                out.append(Identifier(kind, normalize(kind, value, self.region), value.strip()))
            except IdentityError as exc:
                raise HistoryError(str(exc), field=kind) from None
        return out

    def _live(self, db: sqlite3.Connection, contact_id: int) -> int | None:
        """The contact ``contact_id`` stands for now (following merges), None if unknown."""
        for _ in range(100):
            row = db.execute(
                "SELECT merged_into FROM contacts WHERE id = ?", (contact_id,)
            ).fetchone()
            if row is None:
                return None
            if row["merged_into"] is None:
                return contact_id
            contact_id = int(row["merged_into"])
        raise HistoryError(f"contact {contact_id}: merge chain too long", status=500)

    def _owner(self, db: sqlite3.Connection, ident: Identifier) -> int | None:
        row = db.execute(
            "SELECT contact_id FROM contact_identifiers WHERE kind = ? AND value = ?",
            (ident.kind, ident.value),
        ).fetchone()
        return None if row is None else self._live(db, int(row["contact_id"]))

    # --------------------------------------------------------------- contacts
    def add_contact(
        self,
        *,
        name: str,
        now: datetime,
        phones: Iterable[str] = (),
        emails: Iterable[str] = (),
        customer_id: str | None = None,
        sips: Iterable[str] = (),
        language: str | None = None,
        tier: str | None = None,
        attributes: Mapping[str, Any] | None = None,
    ) -> int:
        """Store a new contact; returns its id. Raises HistoryError (409) when an
        identifier belongs to another contact; nothing is stored then."""
        emails = list(emails)
        pairs = [("phone", p) for p in phones] + [("email", e) for e in emails]
        pairs += [("sip", s) for s in sips]
        if customer_id is not None:
            pairs.append(("customer", customer_id))
        idents = self.identifiers(pairs)
        attrs = json.dumps(dict(attributes or {}), ensure_ascii=False, sort_keys=True)
        try:
            with self._write() as db:
                contact_id = self._insert_contact(
                    db, name, now, customer_id, emails[0] if emails else None, language, tier, attrs
                )
                for ident in idents:
                    db.execute(
                        "INSERT INTO contact_identifiers (kind, value, display, contact_id)"
                        " VALUES (?, ?, ?, ?)",
                        (ident.kind, ident.value, ident.display, contact_id),
                    )
        except sqlite3.IntegrityError as exc:
            raise HistoryError(
                f"contact {name!r} not stored: {exc} (a phone number, e-mail, customer id or"
                " account belongs to another contact)",
                status=409,
            ) from None
        return contact_id

    @staticmethod
    def _insert_contact(
        db: sqlite3.Connection,
        name: str,
        now: datetime,
        account: str | None,
        email: str | None,
        language: str | None,
        tier: str | None,
        attrs: str = "{}",
    ) -> int:
        stamp = now.isoformat()
        cur = db.execute(
            "INSERT INTO contacts (name, account, email, language, tier, attributes, created,"
            " updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (name, account, email, language, tier, attrs, stamp, stamp),
        )
        return int(cur.lastrowid or 0)

    def find(self, key: str) -> int | None:
        """The contact whose e-mail, customer id, phone number or SIP address is ``key``."""
        key = key.strip()
        if not key:
            return None
        kinds = ["customer", "phone", "sip"]
        if "@" in key and not key.lower().startswith(("sip:", "sips:")):
            kinds = ["email", "customer", "sip"]
        db = self._db()
        for kind in kinds:
            try:
                value = normalize(kind, key, self.region)
            except IdentityError:
                continue
            found = self._owner(db, Identifier(kind, value, key))
            if found is not None:
                return found
        return None

    def contact(self, contact_id: int) -> dict[str, Any]:
        """The contact ``contact_id`` stands for (a merged id gives the survivor), with
        its identifiers and the ids merged into it. Raises HistoryError 404."""
        db = self._db()
        live = self._live(db, contact_id)
        if live is None:
            raise HistoryError(f"contact {contact_id} does not exist", status=404, field="id")
        row = db.execute("SELECT * FROM contacts WHERE id = ?", (live,)).fetchone()
        idents = db.execute(
            "SELECT kind, value, display FROM contact_identifiers WHERE contact_id = ?"
            " ORDER BY rowid",
            (live,),
        ).fetchall()
        merged = [
            r["merged"]
            for r in db.execute(
                "SELECT merged FROM contact_merges WHERE survivor = ? ORDER BY id", (live,)
            )
        ]
        return {
            "id": live,
            "name": row["name"],
            "account": row["account"],
            "email": row["email"],
            "language": row["language"],
            "tier": row["tier"],
            "phones": [i["display"] for i in idents if i["kind"] == "phone"],
            "identifiers": [
                {"kind": i["kind"], "value": i["value"], "display": i["display"]} for i in idents
            ],
            "attributes": json.loads(row["attributes"]),
            "created": row["created"],
            "updated": row["updated"],
            "merged_ids": merged,
        }

    def _resolve(
        self, db: sqlite3.Connection, idents: Sequence[Identifier], name: str, now: datetime
    ) -> int:
        """The contact owning any of ``idents`` (the free ones are added to it), else a
        new contact holding them all."""
        owners = [self._owner(db, ident) for ident in idents]
        found = next((o for o in owners if o is not None), None)
        if found is None:
            emails = [i.display for i in idents if i.kind == "email"]
            account = next((i.value for i in idents if i.kind == "customer"), None)
            found = self._insert_contact(
                db, name, now, account, emails[0] if emails else None, None, None
            )
        for ident, owner in zip(idents, owners, strict=True):
            if owner is None:
                db.execute(
                    "INSERT INTO contact_identifiers (kind, value, display, contact_id)"
                    " VALUES (?, ?, ?, ?)",
                    (ident.kind, ident.value, ident.display, found),
                )
        return found

    def merge(self, into: int, other: int, *, now: datetime, by: str = "") -> dict[str, Any]:
        """Merge contact ``other`` into ``into`` (see module docstring); returns the
        survivor. Raises HistoryError: 404 unknown id, 409 already one contact."""
        with self._write() as db:
            survivor, merged = self._live(db, into), self._live(db, other)
            for given, live, field in ((into, survivor, "into"), (other, merged, "from")):
                if live is None:
                    raise HistoryError(f"contact {given} does not exist", status=404, field=field)
            assert survivor is not None and merged is not None
            if survivor == merged:
                raise HistoryError(
                    f"contacts {into} and {other} are already one contact ({survivor})",
                    status=409,
                    field="from",
                )
            moved = [
                dict(r)
                for r in db.execute(
                    "SELECT kind, value FROM contact_identifiers WHERE contact_id = ?", (merged,)
                )
            ]
            db.execute(
                "UPDATE contact_identifiers SET contact_id = ? WHERE contact_id = ?",
                (survivor, merged),
            )
            count = db.execute(
                "UPDATE interactions SET contact_id = ? WHERE contact_id = ?", (survivor, merged)
            ).rowcount
            gone = db.execute("SELECT * FROM contacts WHERE id = ?", (merged,)).fetchone()
            keep = db.execute("SELECT * FROM contacts WHERE id = ?", (survivor,)).fetchone()
            attrs = {**json.loads(gone["attributes"]), **json.loads(keep["attributes"])}
            account = keep["account"] or gone["account"]
            db.execute(
                "UPDATE contacts SET merged_into = ?, account = NULL, updated = ? WHERE id = ?",
                (survivor, now.isoformat(), merged),
            )
            db.execute(
                "UPDATE contacts SET name = ?, account = ?, email = ?, language = ?, tier = ?,"
                " attributes = ?, updated = ? WHERE id = ?",
                (
                    keep["name"] or gone["name"],
                    account,
                    keep["email"] or gone["email"],
                    keep["language"] or gone["language"],
                    keep["tier"] or gone["tier"],
                    json.dumps(attrs, ensure_ascii=False, sort_keys=True),
                    now.isoformat(),
                    survivor,
                ),
            )
            db.execute(
                "INSERT INTO contact_merges (survivor, merged, at, by, identifiers, interactions)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (survivor, merged, now.isoformat(), by, json.dumps(moved), count),
            )
        return self.contact(survivor)

    def merges(self) -> list[dict[str, Any]]:
        """Every merge, oldest first."""
        rows = self._db().execute("SELECT * FROM contact_merges ORDER BY id").fetchall()
        return [{**dict(r), "identifiers": json.loads(r["identifiers"])} for r in rows]

    # ----------------------------------------------------------- interactions
    def ingest(self, payload: Any, *, now: datetime) -> dict[str, Any]:
        """Store one interaction given as JSON (see :class:`InteractionIn`); returns
        ``{id, contact_id, created}`` (``created`` False: the same channel+external_id
        was stored before). Raises HistoryError naming the bad field."""
        if not isinstance(payload, Mapping):
            raise HistoryError("the body must be a JSON object", field="body")
        try:
            item = InteractionIn.model_validate(payload)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = _field(err["loc"])
            raise HistoryError(f"{where}: {err['msg']}", field=where) from None
        ref = item.contact
        pairs = [
            (kind, value)
            for kind, value in (
                ("phone", ref.phone),
                ("email", ref.email),
                ("customer", ref.customer_id),
                ("sip", ref.sip),
            )
            if value
        ]
        if ref.id is None and not pairs:
            raise HistoryError(
                "contact: give an id, or a phone, email, customer_id or sip", field="contact"
            )
        try:
            idents = self.identifiers(pairs)
        except HistoryError as exc:
            kind = "customer_id" if exc.field == "customer" else exc.field
            raise HistoryError(f"contact.{kind}: {exc}", field=f"contact.{kind}") from None
        with self._write() as db:
            if ref.id is not None:
                contact_id = self._live(db, ref.id)
                if contact_id is None:
                    raise HistoryError(
                        f"contact.id: contact {ref.id} does not exist",
                        status=404,
                        field="contact.id",
                    )
            else:
                contact_id = self._resolve(db, idents, ref.name or "", now)
            return self._insert_interaction(
                db,
                contact_id,
                item.channel,
                item.direction,
                item.occurred_at.timestamp(),
                item.external_id,
                item.subject,
                item.body,
                item.meta,
                now.timestamp(),
            )

    @staticmethod
    def _insert_interaction(
        db: sqlite3.Connection,
        contact_id: int | None,
        channel: str,
        direction: str,
        occurred_at: float,
        external_id: str | None,
        subject: str,
        body: str,
        meta: Mapping[str, Any],
        created: float,
    ) -> dict[str, Any]:
        if external_id is not None:
            row = db.execute(
                "SELECT id, contact_id FROM interactions WHERE channel = ? AND external_id = ?",
                (channel, external_id),
            ).fetchone()
            if row is not None:
                return {"id": row["id"], "contact_id": row["contact_id"], "created": False}
        cur = db.execute(
            "INSERT INTO interactions (contact_id, channel, direction, occurred_at, external_id,"
            " subject, body, meta, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                contact_id,
                channel,
                direction,
                occurred_at,
                external_id,
                subject,
                body,
                json.dumps(dict(meta), ensure_ascii=False, sort_keys=True, default=str),
                created,
            ),
        )
        return {"id": int(cur.lastrowid or 0), "contact_id": contact_id, "created": True}

    def record_call(self, meta: RecordingMeta, *, now: datetime | None = None) -> int:
        """A finished (or recovered) recording as a ``voice`` interaction of its caller
        (found by number or SIP address, else created; anonymous: no contact).
        Called again for the same call, it updates the stored details. Returns its id."""
        ident = caller_identity(meta.caller, self.region)
        when = now or datetime.fromtimestamp(meta.ended_at or meta.started_at, UTC)
        details = {
            "recording": meta.path,
            "status": meta.status,
            "duration": meta.duration,
            "disposition": meta.disposition,
            "called": meta.called,
            "flow": meta.flow,
            "flow_version": meta.flow_version,
            "queue": meta.queue,
            "wait": meta.wait,
            "agent": meta.agent,
            "pauses": len(meta.pauses),
        }
        subject = f"Call to {_uri_user(meta.called)}: {meta.disposition}"
        if meta.agent:
            subject += f" (agent {meta.agent})"
        with self._write() as db:
            contact_id = None
            if ident is not None:
                found = Identifier(ident[0], ident[1], meta.caller)
                contact_id = self._resolve(db, [found], meta.caller_name, when)
            if meta.voicemail:
                box = meta.voicemail
                self._insert_interaction(
                    db,
                    contact_id,
                    "voicemail",
                    "inbound",
                    meta.started_at,
                    meta.call_id,
                    f"Voicemail for {box.get('mailbox')} ({box.get('seconds', 0):g} s)",
                    "",
                    {**box, "recording": meta.path},
                    when.timestamp(),
                )
            row = db.execute(
                "SELECT id, meta FROM interactions WHERE channel = 'voice' AND external_id = ?",
                (meta.call_id,),
            ).fetchone()
            if row is not None:
                merged = {**json.loads(row["meta"]), **details}
                db.execute(
                    "UPDATE interactions SET subject = ?, meta = ? WHERE id = ?",
                    (subject, json.dumps(merged, sort_keys=True, default=str), row["id"]),
                )
                return int(row["id"])
            return int(
                self._insert_interaction(
                    db,
                    contact_id,
                    "voice",
                    "inbound",
                    meta.started_at,
                    meta.call_id,
                    subject,
                    "",
                    details,
                    when.timestamp(),
                )["id"]
            )

    def attach_transcript(
        self, call_id: str, text_record: Mapping[str, Any], *, now: datetime | None = None
    ) -> int:
        """Put the transcript of ``call_id`` (a text record, recordings.textrecord, as
        JSON data) on its voice interaction, where search finds it. A call the
        history has not seen yet gets its interaction from the record's metadata.
        Returns the interaction id."""
        text = transcript_text(text_record)
        summary = text_record.get("summary") or {}
        info = {
            "transcript": {
                "backend": (text_record.get("transcription") or {}).get("backend"),
                "words": summary.get("words"),
                "mean_confidence": summary.get("mean_confidence"),
                "segments": len(text_record.get("segments") or []),
            }
        }
        with self._write() as db:
            row = db.execute(
                "SELECT id, meta FROM interactions WHERE channel = 'voice' AND external_id = ?",
                (call_id,),
            ).fetchone()
            if row is not None:
                merged = {**json.loads(row["meta"]), **info}
                db.execute(
                    "UPDATE interactions SET body = ?, meta = ? WHERE id = ?",
                    (text, json.dumps(merged, sort_keys=True, default=str), row["id"]),
                )
                return int(row["id"])
            meta = text_record.get("metadata") or {}
            started = meta.get("started_at")
            occurred = datetime.fromisoformat(started).timestamp() if started else 0.0
            ident = caller_identity(str(meta.get("caller", "")), self.region)
            contact_id = None
            if ident is not None:
                found = Identifier(ident[0], ident[1], str(meta.get("caller")))
                # a contact first seen here dates from the call (as in record_call)
                when = now or datetime.fromtimestamp(occurred, UTC)
                contact_id = self._resolve(db, [found], "", when)
            subject = f"Call to {_uri_user(str(meta.get('called', '')))}"
            return int(
                self._insert_interaction(
                    db,
                    contact_id,
                    "voice",
                    str(meta.get("direction") or "inbound"),
                    occurred,
                    call_id,
                    subject,
                    text,
                    {**info, "recording": meta.get("recording")},
                    occurred,
                )["id"]
            )

    def delete_call(self, call_id: str) -> int:
        """Remove ``call_id``'s voice and voicemail interactions, with their transcript
        and search index rows; returns how many rows went."""
        with self._write() as db:
            return db.execute(
                "DELETE FROM interactions WHERE external_id = ? AND channel IN"
                " ('voice', 'voicemail')",
                (call_id,),
            ).rowcount

    # ---------------------------------------------------------------- reading
    def timeline(
        self, contact_id: int, *, limit: int = 50, before: float | None = None
    ) -> dict[str, Any]:
        """The contact and its interactions of every channel, newest first
        (``before``: older than this Unix time, for paging). Raises HistoryError 404."""
        contact = self.contact(contact_id)
        sql = "SELECT * FROM interactions WHERE contact_id = ?"
        args: list[Any] = [contact["id"]]
        if before is not None:
            sql += " AND occurred_at < ?"
            args.append(before)
        rows = self._db().execute(
            sql + " ORDER BY occurred_at DESC, id DESC LIMIT ?", (*args, limit)
        )
        return {"contact": contact, "interactions": [_interaction(r) for r in rows]}

    def interaction(self, interaction_id: int) -> dict[str, Any] | None:
        """One interaction, None when there is none."""
        row = (
            self._db()
            .execute("SELECT * FROM interactions WHERE id = ?", (interaction_id,))
            .fetchone()
        )
        return None if row is None else _interaction(row)

    def search(
        self,
        text: str,
        *,
        limit: int = 20,
        contact_id: int | None = None,
        order: Literal["rank", "recent"] = "rank",
        window: int = RANK_WINDOW,
    ) -> list[dict[str, Any]]:
        """Interactions whose subject or body hold every word of ``text`` (``word*``: a
        prefix), each with a snippet (matches in ``[...]``).

        ``order="rank"``: the best by bm25 among the newest ``window`` matches (all
        matches when there are fewer: ranking every one of a million matches of a
        word found in most messages costs seconds, the newest thousands are what a
        contact center looks at); ``order="recent"``: newest stored first. With
        ``contact_id`` only that contact's interactions (and those merged into it).
        """
        db = self._db()
        live = None
        if contact_id is not None:
            live = self._live(db, contact_id)
            if live is None:
                raise HistoryError(f"contact {contact_id} does not exist", status=404)
        match = fts_query(text, live)
        newest = (
            "SELECT rowid AS id, bm25(interactions_fts, 1.0, 1.0, 0.0) AS score"
            " FROM interactions_fts"
            " WHERE interactions_fts MATCH ? ORDER BY rowid DESC LIMIT ?"
        )
        if order == "rank":
            sql = f"SELECT id, score FROM ({newest}) ORDER BY score LIMIT ?"
            args: tuple[Any, ...] = (match, max(window, limit), limit)
        else:
            sql, args = newest, (match, limit)
        try:
            hits = db.execute(sql, args).fetchall()
        except sqlite3.OperationalError as exc:
            raise HistoryError(f"search {text!r} failed: {exc}", field="q") from None
        if not hits:
            return []
        ids = [int(h["id"]) for h in hits]
        rows = {
            int(r["id"]): r
            for r in db.execute(
                f"SELECT * FROM interactions WHERE id IN ({','.join('?' * len(ids))})", ids
            )
        }
        words = [w.rstrip("*") for w in re.findall(r"\w+\*?", text)]
        out = []
        for hit in hits:
            r = rows.get(int(hit["id"]))
            if r is None:
                continue
            out.append(
                {
                    "id": r["id"],
                    "contact_id": r["contact_id"],
                    "channel": r["channel"],
                    "direction": r["direction"],
                    "occurred_at": _iso(r["occurred_at"]),
                    "external_id": r["external_id"],
                    "subject": r["subject"],
                    "snippet": snippet(r["body"] or r["subject"], words),
                    "score": round(-float(hit["score"]), 4),
                }
            )
        return out


def _interaction(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "contact_id": row["contact_id"],
        "channel": row["channel"],
        "direction": row["direction"],
        "occurred_at": _iso(row["occurred_at"]),
        "external_id": row["external_id"],
        "subject": row["subject"],
        "body": row["body"],
        "meta": json.loads(row["meta"]),
    }


class _Tx:
    """``with`` block = one IMMEDIATE transaction on ``db`` (rolled back on error)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> sqlite3.Connection:
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, exc_type: object, *_: object) -> None:
        self.db.execute("ROLLBACK" if exc_type is not None else "COMMIT")


def open_history(path: Path | str) -> HistoryStore:
    """The history store in the database at ``path`` (the transcription workers'
    hook: ``recordings.worker.find_history`` calls it with ``DATA/callcore.db``)."""
    return HistoryStore(path)
