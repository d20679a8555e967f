"""Text records: building (masking, summary, ISO times), JSON round trip, exact exports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recordings.stt import Segment, Word
from recordings.textrecord import (
    SCHEMA_VERSION,
    RecordError,
    TextRecord,
    build_record,
    load_record,
    to_srt,
    to_text,
    to_webvtt,
)


def _seg(start: float, end: float, *words: tuple[float, float, str]) -> Segment:
    ws = [Word(s, e, t, 0.9) for s, e, t in words]
    return Segment(start, end, " ".join(w.text for w in ws), ws, 0.9)


CONTEXT = {
    "metadata": {
        "caller": "sip:1001@127.0.0.1",
        "called": "5000",
        "started_at": "2025-03-04T10:00:00+00:00",
        "recording": "DATA/recordings/2025/03/04/c1.wav",
        "agent": "alice",
    },
    "ivr_path": [
        {"at": "2025-03-04T10:00:01+00:00", "flow": "main", "node": "menu", "type": "menu"},
        {"at": 0.2, "flow": "main", "node": "welcome", "type": "play"},
    ],
    "dtmf": [
        {"at": 3.0, "digit": "2", "source": "rfc4733"},
        {"at": 9.5, "digit": "4", "source": "rfc4733"},
        {"at": 10.0, "digit": "1", "source": "inband"},
    ],
    "pauses": [{"start": 9.0, "end": 11.0, "reason": "pci"}],
    "queue": [
        {
            "queue": "billing",
            "enqueued_at": "2025-03-04T10:00:04+00:00",
            "answered_at": 16.5,
            "outcome": "answered",
            "agent": "alice",
        }
    ],
}


def record() -> TextRecord:
    return build_record(
        "c1",
        {
            "caller": [
                _seg(5.0, 7.0, (5.0, 5.5, "I"), (5.5, 6.0, "want"), (6.0, 7.0, "billing")),
                _seg(10.2, 11.5, (10.2, 10.8, "four"), (11.1, 11.5, "thanks")),
            ],
            "agent": [
                _seg(1.0, 2.5, (1.0, 1.6, "Welcome"), (1.7, 2.5, "<back>")),
                _seg(6.5, 8.0, (6.5, 8.0, "Sure")),
            ],
        },
        duration=20.0,
        backend="vosk:/m",
        context=CONTEXT,
        created_at="2025-03-04T10:01:00+00:00",
        processing_seconds=2.0,
    )


def test_build_orders_masks_and_summarizes() -> None:
    r = record()
    assert r.schema_version == SCHEMA_VERSION == 1
    assert [(s.speaker, s.channel, s.start) for s in r.segments] == [
        ("agent", 1, 1.0),
        ("caller", 0, 5.0),
        ("agent", 1, 6.5),
        ("caller", 0, 10.2),
    ]
    # ISO times become offsets from metadata.started_at; the path is sorted by time
    assert [(s.at, s.node) for s in r.ivr_path] == [(0.2, "welcome"), (1.0, "menu")]
    assert [(d.at, d.digit, d.masked) for d in r.dtmf] == [
        (3.0, "2", False),
        (9.5, "*", True),
        (10.0, "*", True),
    ]
    masked = r.segments[3]
    assert masked.text == "*** thanks"
    assert [w.text for w in masked.words] == ["***", "thanks"]
    assert r.queue[0].enqueued_at == 4.0 and r.queue[0].wait_seconds == 12.5
    s = r.summary
    assert s.speakers["caller"].talk_seconds == 3.3
    assert s.speakers["agent"].talk_seconds == 3.0
    assert (s.speakers["caller"].words, s.speakers["agent"].segments) == (5, 2)
    assert s.overlap_seconds == 0.5  # 6.5-7.0
    assert s.silence_seconds == 20.0 - 5.8
    assert (s.first_speaker, s.words, s.dtmf_count, s.masked_dtmf) == ("agent", 8, 3, 2)
    assert s.queue_wait_seconds == 12.5
    assert r.transcription.real_time_factor == 0.1
    assert r.metadata.speakers == ["caller", "agent"] and r.metadata.duration == 20.0


def test_json_round_trip_and_version_check(tmp_path: Path) -> None:
    r = record()
    path = tmp_path / "c1.json"
    path.write_text(r.to_json(), encoding="utf-8")
    assert load_record(path) == r
    data = json.loads(r.to_json())
    data["schema_version"] = 2
    with pytest.raises(RecordError, match=r"schema_version 2 is not supported .*reads 1"):
        load_record(json.dumps(data))
    data["schema_version"] = 1
    data["segments"][0]["start"] = "soon"
    with pytest.raises(RecordError, match=r"segments\.0\.start"):
        load_record(json.dumps(data))
    with pytest.raises(RecordError, match="not readable JSON"):
        load_record("{")


def test_bad_context_names_the_field() -> None:
    with pytest.raises(RecordError, match=r"dtmf\[0\]\.at"):
        build_record("x", {}, duration=1.0, backend="b", context={"dtmf": [{"digit": "1"}]})
    with pytest.raises(RecordError, match="queue"):
        build_record("x", {}, duration=1.0, backend="b", context={"queue": [{"wait": 1}]})
    with pytest.raises(RecordError, match="channel 'bob'"):
        build_record("x", {"bob": []}, duration=1.0, backend="b")


def test_plain_text_export() -> None:
    assert to_text(record()) == (
        "Call c1\n"
        "Started: 2025-03-04T10:00:00+00:00\n"
        "Duration: 00:20.0\n"
        "From: sip:1001@127.0.0.1  To: 5000\n"
        "IVR: main/welcome > main/menu\n"
        "DTMF: 00:03.0 2, 00:09.5 [masked], 00:10.0 [masked]\n"
        "Paused (pci): 00:09.0-00:11.0\n"
        "Queue billing: entered 00:04.0, waited 12.5 s, answered by alice\n"
        "\n"
        "[00:01.0] agent: Welcome <back>\n"
        "[00:05.0] caller: I want billing\n"
        "[00:06.5] agent: Sure\n"
        "[00:10.2] caller: *** thanks\n"
    )


def test_webvtt_export() -> None:
    assert to_webvtt(record()) == (
        "WEBVTT\n"
        "\n"
        "1\n"
        "00:00:01.000 --> 00:00:02.500\n"
        "<v agent>Welcome &lt;back&gt;\n"
        "\n"
        "2\n"
        "00:00:05.000 --> 00:00:07.000\n"
        "<v caller>I want billing\n"
        "\n"
        "3\n"
        "00:00:06.500 --> 00:00:08.000\n"
        "<v agent>Sure\n"
        "\n"
        "4\n"
        "00:00:10.200 --> 00:00:11.500\n"
        "<v caller>*** thanks\n"
    )


def test_srt_export() -> None:
    assert to_srt(record()) == (
        "1\n00:00:01,000 --> 00:00:02,500\nagent: Welcome <back>\n\n"
        "2\n00:00:05,000 --> 00:00:07,000\ncaller: I want billing\n\n"
        "3\n00:00:06,500 --> 00:00:08,000\nagent: Sure\n\n"
        "4\n00:00:10,200 --> 00:00:11,500\ncaller: *** thanks\n"
    )


def test_long_times_and_empty_record() -> None:
    long = build_record(
        "c2",
        {"caller": [_seg(3725.25, 3726.0, (3725.25, 3726.0, "hi"))]},
        duration=3800.0,
        backend="b",
    )
    assert "01:02:05.250 --> 01:02:06.000" in to_webvtt(long)
    assert "01:02:05,250 --> 01:02:06,000" in to_srt(long)
    assert "[62:05.2] caller: hi" in to_text(long)  # minutes keep counting in the text view
    still_open = build_record(
        "c4",
        {},
        duration=5.0,
        backend="b",
        context={"pauses": [{"start": 4.0, "end": None}], "dtmf": [{"at": 4.5, "digit": "9"}]},
    )
    assert still_open.pauses[0].end == 5.0 and still_open.dtmf[0].digit == "*"
    empty = build_record("c3", {}, duration=5.0, backend="b")
    assert to_webvtt(empty) == "WEBVTT\n"
    assert to_srt(empty) == ""
    assert to_text(empty) == "Call c3\nDuration: 00:05.0\n\n"
    assert empty.summary.first_speaker is None and empty.summary.silence_seconds == 5.0


def test_the_recorders_context_builds_a_record() -> None:
    """recordings.metadata.transcription_context (what the engine queues) -> build_record."""
    from recordings.metadata import CallFacts, PauseSpan, build_metadata, transcription_context

    t0 = 1_741_082_400.0  # 2025-03-04T10:00:00Z
    facts = CallFacts(
        call_id="abc",
        caller="sip:+14155550123@pbx",
        called="5000",
        started_at=t0,
        digits=((2.0, "2", "rfc4733"), (9.5, "4", "rfc4733"), (12.0, "#", "inband")),
    )
    meta = build_metadata(
        facts,
        path="DATA/recordings/2025/03/04/abc.wav",
        duration=30.0,
        flow={
            "flow": "main",
            "path": [
                {
                    "flow": "main",
                    "node": "welcome",
                    "type": "play",
                    "at": "2025-03-04T10:00:00.5+00:00",
                },
                {"flow": "main", "node": "menu", "type": "menu", "at": "2025-03-04T10:00:01+00:00"},
            ],
        },
        queue_stays=[
            {
                "queue": "billing",
                "enqueued_at": t0 + 4,
                "answered_at": t0 + 16.5,
                "outcome": "answered",
                "agent": "alice",
            }
        ],
        pauses=[PauseSpan(9.0, 11.0)],
    )
    record = build_record(
        "abc",
        {"caller": [_seg(5.0, 6.0, (5.0, 6.0, "billing"))], "agent": []},
        duration=30.0,
        backend="b",
        context=transcription_context(meta),
    )
    assert [(s.at, s.node) for s in record.ivr_path] == [(0.5, "welcome"), (1.0, "menu")]
    assert [(d.at, d.digit, d.masked) for d in record.dtmf] == [
        (2.0, "2", False),
        (9.5, "*", True),
        (12.0, "#", False),
    ]
    assert record.queue[0].wait_seconds == 12.5 and record.queue[0].agent == "alice"
    assert record.metadata.recording == "DATA/recordings/2025/03/04/abc.wav"
    assert record.metadata.started_at == "2025-03-04T10:00:00+00:00"
    assert record.summary.queue_wait_seconds == 12.5
