"""The omnichannel history on a real SQLite file: identities, timeline, search, merges."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from recordings.contacts import SqliteContacts
from recordings.history import HistoryError, HistoryStore, fts_query, open_history, snippet
from recordings.identity import IdentityError, caller_identity, normalize, normalize_phone
from recordings.metadata import RecordingMeta
from recordings.worker import find_history

NOW = datetime(2026, 11, 23, 10, tzinfo=UTC)


def _at(minutes: float) -> str:
    return (NOW + timedelta(minutes=minutes)).isoformat()


def _count(path: Path, table: str) -> int:
    with sqlite3.connect(path) as db:
        return int(db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def _call(call_id: str, caller: str, minutes: float, **kw: Any) -> RecordingMeta:
    start = (NOW + timedelta(minutes=minutes)).timestamp()
    base: dict[str, Any] = {
        "call_id": call_id,
        "path": f"/data/recordings/{call_id}.wav",
        "status": "complete",
        "started_at": start,
        "ended_at": start + 95.0,
        "duration": 95.0,
        "caller": caller,
        "called": "sip:5000@engine",
        "disposition": "agent",
        "queue": "billing",
        "agent": "alice",
        "wait": 12.5,
    }
    base.update(kw)
    return RecordingMeta(**base)


RECORD = {
    "call_id": "call-1",
    "metadata": {"caller": "sip:+15551234567@pbx", "started_at": NOW.isoformat()},
    "transcription": {"backend": "faster-whisper"},
    "segments": [
        {"speaker": "caller", "text": "My router keeps dropping the connection."},
        {"speaker": "agent", "text": "Let us reset the modem firmware together."},
    ],
    "summary": {"words": 13, "mean_confidence": 0.91},
}


# ------------------------------------------------------------------ identity
def test_phone_forms_normalize_to_e164() -> None:
    for text in ("+1 (555) 123-4567", "tel:+15551234567", "sip:+15551234567@pbx;user=phone",
                 "5551234567", "001-555-123-4567", "<sip:15551234567@10.0.0.1:5060>"):  # fmt: skip
        assert normalize_phone(text) == "+15551234567", text
    assert normalize_phone("sip:81312345678@pbx") == "+81312345678"  # international, no +
    assert normalize_phone("030 1234567", "DE") == "+49301234567"
    assert normalize_phone("+15550002") == "+15550002"  # too short for E.164: kept as given
    with pytest.raises(IdentityError, match="phone 'alice' is not a number"):
        normalize_phone("alice")
    assert normalize("email", " Ada@Example.COM ") == "ada@example.com"
    with pytest.raises(IdentityError, match="email 'ada@' is not an address"):
        normalize("email", "ada@")
    assert caller_identity("sip:+15551234567@pbx") == ("phone", "+15551234567")
    assert caller_identity("sip:Alice@Example.com:5070") == ("sip", "alice@example.com")
    assert caller_identity("sip:anonymous@anonymous.invalid") is None


# ------------------------------------------------------------------ contacts
def test_contacts_found_by_every_identifier_and_duplicates_refused(tmp_path: Path) -> None:
    db = tmp_path / "callcore.db"
    store = HistoryStore(db)
    ada = store.add_contact(
        name="Ada", now=NOW, phones=["+1 555 123 4567"], emails=["Ada@Example.com"],
        customer_id="C-1", sips=["sip:ada@desk.example.com"], tier="vip",
    )  # fmt: skip
    for key in ("tel:+15551234567", "ada@example.com", "C-1", "sip:ada@desk.example.com:5060"):
        assert store.find(key) == ada, key
    assert store.find("+15559999999") is None and store.find("") is None
    with pytest.raises(HistoryError, match="contact 'Bob' not stored: UNIQUE") as info:
        store.add_contact(name="Bob", now=NOW, phones=["+15550100", "5551234567"])
    assert info.value.status == 409
    assert _count(db, "contacts") == 1 and store.find("+15550100") is None  # nothing stored
    with pytest.raises(HistoryError, match="email 'bob' is not an address") as bad:
        store.add_contact(name="Bob", now=NOW, emails=["bob"])
    assert bad.value.field == "email"


# --------------------------------------------------------- ingest / timeline
def test_every_channel_lands_in_one_timeline_newest_first(tmp_path: Path) -> None:
    db = tmp_path / "callcore.db"
    store = HistoryStore(db)
    chat = store.ingest(
        {
            "channel": "chat",
            "contact": {"email": "Ada@Example.com", "name": "Ada"},
            "occurred_at": _at(1),
            "body": "Hello, my router is blinking red.",
            "external_id": "chat-9",
        },
        now=NOW,
    )
    ada = chat["contact_id"]
    assert chat["created"] and store.contact(ada)["name"] == "Ada"
    again = store.ingest(
        {"channel": "chat", "contact": {"email": "ada@example.com"}, "occurred_at": _at(1),
         "body": "Hello, my router is blinking red.", "external_id": "chat-9"},
        now=NOW,
    )  # fmt: skip
    assert again == {"id": chat["id"], "contact_id": ada, "created": False}
    store.ingest(
        {"channel": "email", "contact": {"id": ada}, "occurred_at": _at(3),
         "subject": "Invoice 2211", "body": "Please resend the invoice."},
        now=NOW,
    )  # fmt: skip
    store.ingest(
        {"channel": "sms", "contact": {"email": "ADA@example.com", "phone": "+1 555 123 4567"},
         "occurred_at": _at(5), "body": "Thanks!", "direction": "outbound"},
        now=NOW,
    )  # fmt: skip
    # The SMS named her e-mail and a new number: the number is now hers, so her call is too.
    store.record_call(_call("call-1", "sip:+15551234567@pbx", 2))
    timeline = store.timeline(ada)
    assert [(i["channel"], i["direction"]) for i in timeline["interactions"]] == [
        ("sms", "outbound"),
        ("email", "inbound"),
        ("voice", "inbound"),
        ("chat", "inbound"),
    ]
    voice = timeline["interactions"][2]
    assert (
        voice["external_id"] == "call-1" and voice["subject"] == "Call to 5000: agent (agent alice)"
    )
    assert voice["meta"]["queue"] == "billing" and voice["meta"]["wait"] == 12.5
    assert voice["meta"]["recording"] == "/data/recordings/call-1.wav"
    older = store.timeline(ada, limit=2, before=(NOW + timedelta(minutes=2.5)).timestamp())
    assert [i["channel"] for i in older["interactions"]] == ["voice", "chat"]
    assert {i["value"] for i in timeline["contact"]["identifiers"]} == {
        "ada@example.com",
        "+15551234567",
    }


@pytest.mark.parametrize(
    ("body", "field", "text"),
    [
        ({"contact": {"email": "a@b.co"}, "occurred_at": _at(0), "body": "x"}, "channel",
         "channel: Field required"),
        ({"channel": "fax", "contact": {"email": "a@b.co"}, "occurred_at": _at(0), "body": "x"},
         "channel", "channel: Input should be 'voice', 'voicemail', 'chat', 'email', 'sms'"),
        ({"channel": "sms", "contact": {"phone": "call me"}, "occurred_at": _at(0), "body": "x"},
         "contact.phone", "contact.phone: phone 'call me' is not a number"),
        ({"channel": "sms", "contact": {"email": "nope"}, "occurred_at": _at(0), "body": "x"},
         "contact.email", "contact.email: email 'nope' is not an address"),
        ({"channel": "sms", "contact": {}, "occurred_at": _at(0), "body": "x"}, "contact",
         "contact: give an id, or a phone, email, customer_id or sip"),
        ({"channel": "sms", "contact": {"email": "a@b.co"}, "occurred_at": "2026-11-23T10:00",
          "body": "x"}, "occurred_at", "occurred_at: Value error, needs a time zone"),
        ({"channel": "sms", "contact": {"email": "a@b.co"}, "occurred_at": _at(0), "body": ""},
         "body", "body: String should have at least 1 character"),
        ({"channel": "sms", "contact": {"email": "a@b.co"}, "occurred_at": _at(0), "body": "x",
          "colour": "red"}, "colour", "colour: Extra inputs are not permitted"),
        (["not", "an", "object"], "body", "the body must be a JSON object"),
    ],
)  # fmt: skip
def test_bad_input_names_the_field_and_stores_nothing(
    tmp_path: Path, body: Any, field: str, text: str
) -> None:
    db = tmp_path / "callcore.db"
    store = HistoryStore(db)
    store.ingest(
        {"channel": "chat", "contact": {"email": "x@y.zz"}, "occurred_at": _at(0), "body": "kept"},
        now=NOW,
    )
    with pytest.raises(HistoryError) as info:
        store.ingest(body, now=NOW)
    assert info.value.field == field and str(info.value).startswith(text), str(info.value)
    assert info.value.status == 400
    assert _count(db, "interactions") == 1 and _count(db, "contacts") == 1


def test_unknown_contact_is_404(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "callcore.db")
    with pytest.raises(HistoryError, match=r"contact\.id: contact 7 does not exist") as info:
        store.ingest(
            {"channel": "sms", "contact": {"id": 7}, "occurred_at": _at(0), "body": "x"}, now=NOW
        )
    assert info.value.status == 404
    with pytest.raises(HistoryError, match="contact 7 does not exist"):
        store.timeline(7)


# --------------------------------------------------------------------- search
def test_transcripts_and_messages_are_searchable_and_deletable(tmp_path: Path) -> None:
    db = tmp_path / "callcore.db"
    store = HistoryStore(db)
    store.record_call(_call("call-1", "sip:+15551234567@pbx", 0))
    store.ingest(
        {"channel": "email", "contact": {"phone": "+15551234567"}, "occurred_at": _at(9),
         "subject": "Modem", "body": "The modem still drops after the firmware reset."},
        now=NOW,
    )  # fmt: skip
    assert store.search("firmware") == [
        {**store.search("firmware")[0], "channel": "email"}
    ]  # only the e-mail so far: the call has no transcript yet
    voice_id = store.attach_transcript("call-1", RECORD)  # what the transcription worker does
    hits = store.search("modem firmware")
    assert {h["channel"] for h in hits} == {"voice", "email"}
    voice = next(h for h in hits if h["channel"] == "voice")
    assert voice["id"] == voice_id and "[modem] [firmware]" in voice["snippet"]
    assert voice["external_id"] == "call-1" and voice["score"] >= 0
    assert [h["channel"] for h in store.search("rout*")] == ["voice"]  # a prefix
    assert store.search("rout") == []
    assert store.search('router AND OR NEAR("') == store.search("router and or near")
    with pytest.raises(HistoryError, match="has no words"):
        store.search("?!")
    interaction = store.interaction(voice_id)
    assert interaction is not None and interaction["meta"]["transcript"]["words"] == 13
    assert interaction["meta"]["disposition"] == "agent"  # the call's details stay

    assert store.delete_call("call-1") == 1
    assert [h["channel"] for h in store.search("modem")] == ["email"]
    assert store.search("router") == []  # the index rows went with the transcript
    with sqlite3.connect(db) as raw:  # the FTS index agrees with its content table
        raw.execute("INSERT INTO interactions_fts(interactions_fts) VALUES('integrity-check')")


def test_transcript_before_the_call_row_creates_the_interaction(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "callcore.db")
    interaction_id = store.attach_transcript("call-1", RECORD)
    found = store.interaction(interaction_id)
    assert found is not None and found["channel"] == "voice"
    assert store.find("+15551234567") == found["contact_id"]
    store.record_call(_call("call-1", "sip:+15551234567@pbx", 0))  # arrives later: same row
    assert [h["id"] for h in store.search("router")] == [interaction_id]
    assert store.interaction(interaction_id)["meta"]["queue"] == "billing"  # type: ignore[index]


def test_anonymous_and_voicemail_calls(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "callcore.db")
    anon = store.record_call(_call("a-1", "sip:anonymous@anonymous.invalid", 0))
    assert store.interaction(anon)["contact_id"] is None  # type: ignore[index]
    box = {"mailbox": "sales", "audio": "/data/voicemail/sales/v-1.wav", "seconds": 12.5}
    store.record_call(_call("v-1", "sip:alice@example.com", 1, disposition="voicemail",
                            agent=None, voicemail=box))  # fmt: skip
    alice = store.find("sip:alice@example.com")
    assert alice is not None
    items = store.timeline(alice)["interactions"]
    assert sorted(i["channel"] for i in items) == ["voice", "voicemail"]
    mail = next(i for i in items if i["channel"] == "voicemail")
    assert mail["subject"] == "Voicemail for sales (12.5 s)"
    assert mail["meta"]["audio"] == "/data/voicemail/sales/v-1.wav"
    assert store.delete_call("v-1") == 2


# --------------------------------------------------------------------- merges
def test_merge_keeps_every_identifier_and_interaction_and_is_recorded(tmp_path: Path) -> None:
    db = tmp_path / "callcore.db"
    store = HistoryStore(db)
    by_phone = store.add_contact(name="A. Lovelace", now=NOW, phones=["+15551234567"])
    by_mail = store.add_contact(
        name="Ada", now=NOW, emails=["ada@example.com"], customer_id="C-1", tier="vip",
        attributes={"segment": "enterprise"},
    )  # fmt: skip
    store.record_call(_call("call-1", "sip:+15551234567@pbx", 0))
    store.ingest(
        {"channel": "chat", "contact": {"customer_id": "C-1"}, "occurred_at": _at(4),
         "body": "About my modem"},
        now=NOW,
    )  # fmt: skip
    survivor = store.merge(by_phone, by_mail, now=NOW, by="supervisor:sam")
    assert survivor["id"] == by_phone and survivor["merged_ids"] == [by_mail]
    assert survivor["account"] == "C-1" and survivor["tier"] == "vip"
    assert survivor["attributes"] == {"segment": "enterprise"}
    assert {(i["kind"], i["value"]) for i in survivor["identifiers"]} == {
        ("phone", "+15551234567"),
        ("email", "ada@example.com"),
        ("customer", "C-1"),
    }
    for key in ("+15551234567", "ada@example.com", "C-1"):
        assert store.find(key) == by_phone
    assert store.contact(by_mail)["id"] == by_phone  # the old id leads to the survivor
    timeline = store.timeline(by_mail)["interactions"]
    assert [i["channel"] for i in timeline] == ["chat", "voice"]
    (merge,) = store.merges()
    assert (merge["survivor"], merge["merged"], merge["by"], merge["interactions"]) == (
        by_phone, by_mail, "supervisor:sam", 1,
    )  # fmt: skip
    assert {m["kind"] for m in merge["identifiers"]} == {"email", "customer"}
    with pytest.raises(HistoryError, match="already one contact") as info:
        store.merge(by_mail, by_phone, now=NOW)
    assert info.value.status == 409
    with pytest.raises(HistoryError, match="contact 99 does not exist"):
        store.merge(99, by_phone, now=NOW)
    assert [h["channel"] for h in store.search("modem", contact_id=by_mail)] == ["chat"]
    # The IVR's lookup reads the same contacts (SqliteContacts keeps its interface).
    found = SqliteContacts(db).get("ada@example.com")
    assert found is not None and found["id"] == by_phone and found["tier"] == "vip"
    assert found["phones"] == ["+15551234567"]


def test_transcription_workers_find_the_store(tmp_path: Path) -> None:
    sink = find_history("auto", tmp_path / "callcore.db")
    assert isinstance(sink, HistoryStore)
    assert isinstance(open_history(tmp_path / "callcore.db"), HistoryStore)


def test_fts_query_quotes_every_word() -> None:
    assert fts_query('router "AND" modem*') == '{subject body} : ("router" "AND" "modem"*)'
    assert fts_query("router", 12) == '{subject body} : ("router") AND contact_tag : "c12"'


def test_rank_looks_at_the_newest_window_of_matches(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "callcore.db")
    bodies = ["outage outage outage", "outage", "outage today", "outage again", "no match"]
    for i, body in enumerate(bodies):
        store.ingest(
            {"channel": "sms", "contact": {"phone": "+15551234567"}, "occurred_at": _at(i),
             "body": body},
            now=NOW,
        )  # fmt: skip
    best = store.search("outage")
    assert best[0]["snippet"] == "[outage] [outage] [outage]" and len(best) == 4
    newest_two = store.search("outage", window=2, limit=2)  # only the two newest compete
    assert [h["snippet"] for h in newest_two] == ["[outage] again", "[outage] today"] or [
        h["snippet"] for h in newest_two
    ] == ["[outage] today", "[outage] again"]
    recent = store.search("outage", order="recent", limit=3)
    assert [h["snippet"] for h in recent] == ["[outage] again", "[outage] today", "[outage]"]


def test_snippet() -> None:
    text = " ".join(f"w{i}" for i in range(30)) + " Café firmware w31"
    assert snippet(text, ["cafe"], width=6) == "...w27 w28 w29 [Café] firmware w31"
    assert snippet(text, ["w3"], width=4) == "...w2 [w3] w4 w5..."
    assert snippet("short text", ["nothing"]) == "short text"
    assert snippet("Router, reset!", ["rout"]) == "[Router], reset!"
