"""Per-call recording metadata, built from what the engine's parts know (pure).

When a call ends the recorder holds: the SIP facts (:class:`CallFacts`: who,
whom, when, the digits heard), the flow driver's record of the run (flow,
version digest, path of nodes, outcome), the ACD's queue stays (queue, wait,
agent, outcome) and the secure-pause spans. :func:`build_metadata` joins
them into one :class:`RecordingMeta`; nothing here reads a clock or a file.

Times: ``started_at``/``ended_at`` are Unix seconds; everything inside the
recording (path steps, digits, pauses, queue times) is in seconds from the
recording's start, so a player or a transcript can point at the audio.

Digits pressed inside a pause span are masked (``*``, ``masked: true``): a
card number never reaches the metadata, whatever the caller typed.

Disposition (one word for "how did this call end"):

``recovered``  the engine died during the call (set by the start-up repair);
``agent``      an agent answered (a queue stay with an agent);
``abandoned``  the caller hung up while waiting in a queue;
``voicemail``, ``transfer``, ``caller_hangup``, ``hangup``, ``error``,
``overflow``, ``no_agents`` ...  the flow's own end reason otherwise;
``ended``      no flow ran (the greeting application).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "CallFacts",
    "PauseSpan",
    "RecordingMeta",
    "build_metadata",
    "disposition_of",
    "in_pause",
    "mask_digits",
    "transcription_context",
]


@dataclass(frozen=True)
class PauseSpan:
    """A secure-pause stretch of the recording, seconds from its start (``end`` None: open)."""

    start: float
    end: float | None
    reason: str = "pci"
    by: str = "api"
    """Who paused: ``flow``, ``agent`` or ``api``."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class CallFacts:
    """The SIP side of a recorded call."""

    call_id: str
    caller: str
    called: str
    caller_name: str = ""
    direction: str = "inbound"
    started_at: float = 0.0
    """Unix time the recording started (the answer)."""
    digits: tuple[tuple[float, str, str], ...] = ()
    """``(seconds from the recording start, digit, source)``."""
    end_reason: str = ""
    """Why the SIP call ended (``bye``, ``local-hangup``, ``shutdown`` ...)."""


@dataclass
class RecordingMeta:
    """Everything stored about one recording (one row of the recordings table)."""

    call_id: str
    path: str
    status: str
    """``recording`` (in progress), ``complete``, ``recovered`` or ``deleted``."""
    started_at: float
    ended_at: float | None = None
    duration: float = 0.0
    caller: str = ""
    called: str = ""
    caller_name: str = ""
    direction: str = "inbound"
    flow: str | None = None
    flow_version: str | None = None
    flow_path: list[dict[str, Any]] = field(default_factory=list)
    """``{flow, node, type, at}`` with ``at`` in recording seconds."""
    flow_outcome: str | None = None
    queue: str | None = None
    """The last queue the caller waited in."""
    wait: float | None = None
    """Seconds waited in queues in total (until answered or left)."""
    agent: str | None = None
    queue_stays: list[dict[str, Any]] = field(default_factory=list)
    disposition: str = ""
    end_reason: str = ""
    pauses: list[dict[str, Any]] = field(default_factory=list)
    dtmf: list[dict[str, Any]] = field(default_factory=list)
    voicemail: dict[str, Any] | None = None
    """The message the caller left in the flow (mailbox, audio, seconds), if any."""
    legal_hold: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def in_pause(at: float, pauses: Iterable[PauseSpan], end: float | None = None) -> bool:
    """Whether the time ``at`` (recording seconds) lies inside a pause span; an open
    span runs to ``end`` (or forever)."""
    for span in pauses:
        stop = span.end if span.end is not None else (end if end is not None else float("inf"))
        if span.start <= at <= stop:
            return True
    return False


def mask_digits(
    digits: Iterable[tuple[float, str, str]], pauses: Sequence[PauseSpan], end: float | None
) -> list[dict[str, Any]]:
    """``{at, digit, source, masked}`` per digit; inside a pause: ``*`` and masked."""
    out = []
    for at, digit, source in digits:
        masked = in_pause(at, pauses, end)
        out.append(
            {
                "at": round(at, 3),
                "digit": "*" if masked else digit,
                "source": source,
                "masked": masked,
            }
        )
    return out


def _offset(iso: str | None, started_at: float) -> float | None:
    if not iso:
        return None
    try:
        moment = datetime.fromisoformat(iso)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return round(moment.timestamp() - started_at, 3)


def disposition_of(
    flow_outcome: str | None, stays: Sequence[Mapping[str, Any]], *, recovered: bool = False
) -> str:
    """One word for how the call ended (see the module docstring)."""
    if recovered:
        return "recovered"
    if any(stay.get("agent") and stay.get("answered_at") is not None for stay in stays):
        return "agent"
    if flow_outcome is None:
        if stays and stays[-1].get("outcome") == "abandoned":
            return "abandoned"
        return "ended"
    if flow_outcome == "queue":  # the flow's Hangup after a queue that was answered
        return "agent"
    return flow_outcome


def build_metadata(
    facts: CallFacts,
    *,
    path: str,
    duration: float,
    flow: Mapping[str, Any] | None = None,
    queue_stays: Sequence[Mapping[str, Any]] = (),
    pauses: Sequence[PauseSpan] = (),
    status: str = "complete",
) -> RecordingMeta:
    """The metadata of one finished (or recovered) recording.

    ``flow`` is the flow driver's record (``engine.flowapp.FlowCallRecord.as_dict``:
    flow, digest, outcome, path with ISO ``at``); ``queue_stays`` the ACD's
    stays with Unix times (``queue``, ``enqueued_at``, ``answered_at``,
    ``left_at``, ``outcome``, ``agent``). Open pause spans end at ``duration``.
    """
    start = facts.started_at
    closed = [
        PauseSpan(p.start, duration if p.end is None else p.end, p.reason, p.by) for p in pauses
    ]
    flow_path = []
    if flow is not None:
        for step in flow.get("path") or []:
            flow_path.append(
                {
                    "flow": step.get("flow", ""),
                    "node": step.get("node", ""),
                    "type": step.get("type", ""),
                    "at": _offset(step.get("at"), start),
                }
            )
    stays = []
    wait_total = 0.0
    waited = False
    for stay in queue_stays:
        joined = stay.get("enqueued_at")
        until = stay.get("answered_at")
        if until is None:
            until = stay.get("left_at")
        if joined is not None and until is not None:
            wait_total += max(0.0, float(until) - float(joined))
            waited = True
        stays.append(
            {
                "queue": stay.get("queue", ""),
                "enqueued_at": _rel(joined, start),
                "answered_at": _rel(stay.get("answered_at"), start),
                "left_at": _rel(stay.get("left_at"), start),
                "outcome": stay.get("outcome", ""),
                "agent": stay.get("agent"),
            }
        )
    agents = [s["agent"] for s in stays if s.get("agent")]
    flow_outcome = None if flow is None else (flow.get("outcome") or None)
    return RecordingMeta(
        call_id=facts.call_id,
        path=path,
        status=status,
        started_at=start,
        ended_at=round(start + duration, 3),
        duration=round(duration, 3),
        caller=facts.caller,
        called=facts.called,
        caller_name=facts.caller_name,
        direction=facts.direction,
        flow=None if flow is None else flow.get("flow"),
        flow_version=None if flow is None else (flow.get("digest") or None),
        flow_path=flow_path,
        flow_outcome=flow_outcome,
        queue=stays[-1]["queue"] if stays else None,
        wait=round(wait_total, 3) if waited else None,
        agent=agents[-1] if agents else None,
        queue_stays=stays,
        disposition=disposition_of(flow_outcome, queue_stays, recovered=status == "recovered"),
        end_reason=facts.end_reason,
        pauses=[p.as_dict() for p in closed],
        dtmf=mask_digits(facts.digits, closed, duration),
        voicemail=None if flow is None else flow.get("voicemail"),
    )


def _rel(value: Any, start: float) -> float | None:
    return None if value is None else round(float(value) - start, 3)


def transcription_context(meta: RecordingMeta) -> dict[str, Any]:
    """The ``context`` the transcription job takes (recordings.textrecord.build_record):
    metadata, ivr_path, dtmf, pauses and queue, all times in recording seconds."""
    started = datetime.fromtimestamp(meta.started_at, UTC).isoformat()
    ended = None if meta.ended_at is None else datetime.fromtimestamp(meta.ended_at, UTC)
    return {
        "metadata": {
            "caller": meta.caller,
            "called": meta.called,
            "direction": meta.direction,
            "started_at": started,
            "ended_at": None if ended is None else ended.isoformat(),
            "recording": meta.path,
            "agent": meta.agent,
            "outcome": meta.disposition,
            "extra": {
                "flow": meta.flow,
                "flow_version": meta.flow_version,
                "queue": meta.queue,
                "wait": meta.wait,
                "status": meta.status,
            },
        },
        "ivr_path": [step for step in meta.flow_path if step.get("at") is not None],
        "dtmf": [{"at": d["at"], "digit": d["digit"], "source": d["source"]} for d in meta.dtmf],
        "pauses": [
            {"start": p["start"], "end": p["end"], "reason": p["reason"]} for p in meta.pauses
        ],
        "queue": [dict(stay) for stay in meta.queue_stays if stay.get("enqueued_at") is not None],
    }
