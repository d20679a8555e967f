"""Recording metadata from the flow driver's and the ACD's reports (pure functions)."""

from __future__ import annotations

from recordings.metadata import (
    CallFacts,
    PauseSpan,
    build_metadata,
    disposition_of,
    mask_digits,
    transcription_context,
)
from recordings.textrecord import build_record

T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z


def _facts(**kw: object) -> CallFacts:
    base = {
        "call_id": "c1@pbx",
        "caller": "sip:+15551234567@pbx",
        "called": "sip:5000@engine",
        "started_at": T0,
        "digits": ((1.0, "1", "rfc4733"), (5.2, "4", "rfc4733"), (5.6, "2", "inband")),
        "end_reason": "bye",
    }
    base.update(kw)
    return CallFacts(**base)  # type: ignore[arg-type]


FLOW = {
    "call_id": "c1@pbx",
    "flow": "main",
    "digest": "abc123",
    "outcome": "queue",
    "path": [
        {"flow": "main", "node": "welcome", "type": "say", "at": "2023-11-14T22:13:20+00:00"},
        {"flow": "main", "node": "menu", "type": "menu", "at": "2023-11-14T22:13:22.500000+00:00"},
        {"flow": "main", "node": "billing", "type": "queue", "at": "2023-11-14T22:13:26+00:00"},
    ],
}
STAY = {
    "queue": "billing",
    "enqueued_at": T0 + 6.0,
    "answered_at": T0 + 18.5,
    "left_at": T0 + 60.0,
    "outcome": "answered",
    "agent": "alice",
}


def test_flow_queue_and_agent_are_joined() -> None:
    meta = build_metadata(_facts(), path="/r/c1.wav", duration=60.0, flow=FLOW, queue_stays=[STAY])
    assert (meta.flow, meta.flow_version, meta.flow_outcome) == ("main", "abc123", "queue")
    assert [(s["node"], s["at"]) for s in meta.flow_path] == [
        ("welcome", 0.0),
        ("menu", 2.5),
        ("billing", 6.0),
    ]
    assert (meta.queue, meta.wait, meta.agent, meta.disposition) == (
        "billing",
        12.5,
        "alice",
        "agent",
    )
    assert meta.queue_stays[0]["answered_at"] == 18.5
    assert (meta.started_at, meta.ended_at, meta.status) == (T0, T0 + 60.0, "complete")


def test_digits_inside_a_pause_are_masked() -> None:
    pauses = [PauseSpan(5.0, 6.0, "pci", "flow")]
    meta = build_metadata(_facts(), path="p", duration=10.0, pauses=pauses)
    assert [(d["digit"], d["masked"]) for d in meta.dtmf] == [
        ("1", False),
        ("*", True),
        ("*", True),
    ]
    # An open span (resume never came) runs to the end of the recording.
    masked = mask_digits([(9.9, "7", "rfc4733")], [PauseSpan(9.0, None)], end=10.0)
    assert masked[0]["digit"] == "*"
    open_meta = build_metadata(_facts(), path="p", duration=10.0, pauses=[PauseSpan(5.0, None)])
    assert open_meta.pauses[0]["end"] == 10.0


def test_dispositions() -> None:
    assert disposition_of(None, []) == "ended"
    assert disposition_of("voicemail", []) == "voicemail"
    assert disposition_of("abandoned", [{**STAY, "answered_at": None, "agent": None}]) == (
        "abandoned"
    )
    assert disposition_of(None, [{"queue": "q", "outcome": "abandoned"}]) == "abandoned"
    assert disposition_of("caller_hangup", [STAY]) == "agent"
    assert disposition_of("caller_hangup", [STAY], recovered=True) == "recovered"
    abandoned = build_metadata(
        _facts(),
        path="p",
        duration=30.0,
        queue_stays=[{**STAY, "answered_at": None, "agent": None, "outcome": "abandoned"}],
    )
    assert abandoned.wait == 54.0 and abandoned.agent is None  # waited until it left


def test_context_is_what_the_text_record_takes() -> None:
    meta = build_metadata(
        _facts(),
        path="/r/c1.wav",
        duration=60.0,
        flow=FLOW,
        queue_stays=[STAY],
        pauses=[PauseSpan(5.0, 6.0)],
    )
    record = build_record(
        "c1@pbx", {}, duration=60.0, backend="none", context=transcription_context(meta)
    )
    assert record.metadata.agent == "alice" and record.metadata.outcome == "agent"
    assert [s.node for s in record.ivr_path] == ["welcome", "menu", "billing"]
    assert [(d.digit, d.masked) for d in record.dtmf] == [("1", False), ("*", True), ("*", True)]
    assert record.queue[0].wait_seconds == 12.5
    assert record.metadata.extra["flow_version"] == "abc123"
