"""The text record of a call: one versioned JSON document, and its exports.

A record holds the call's metadata, how it was transcribed, the IVR path, the
DTMF events, pause spans (PCI: card numbers are not kept), queue timing, the
speaker-attributed segments with word timings, and summary figures computed
from them. Every time inside a record is in seconds from the start of the
recording (``at``, ``start``, ``end``); absolute times are ISO 8601 strings in
``metadata``.

Redaction: a DTMF digit pressed inside a pause span is kept as an event (so
the count and timing of key presses stay visible) with ``digit="*"`` and
``masked=True``; words overlapping a pause span are replaced by ``***``.

Everything here is pure: :func:`build_record` assembles a record from
transcriber output and call context, :func:`to_text`, :func:`to_webvtt` and
:func:`to_srt` render it, :func:`load_record` reads one back (and refuses a
``schema_version`` it does not know, saying which it knows).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from recordings.stt import Segment

__all__ = [
    "SCHEMA_VERSION",
    "CallMetadata",
    "DtmfEvent",
    "IvrStep",
    "PauseSpan",
    "QueueTiming",
    "RecordError",
    "SpeakerSegment",
    "Summary",
    "TextRecord",
    "TranscriptionInfo",
    "WordTiming",
    "build_record",
    "load_record",
    "to_srt",
    "to_text",
    "to_webvtt",
]

SCHEMA_VERSION: Literal[1] = 1
MASK = "***"


class RecordError(ValueError):
    """A text record that cannot be read or built, with what and where."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CallMetadata(_Model):
    """Who called whom, when, and which recording the transcript is of."""

    call_id: str
    caller: str = ""
    called: str = ""
    direction: str = "inbound"
    started_at: str | None = None
    """ISO 8601 start of the recording (UTC)."""
    ended_at: str | None = None
    duration: float = 0.0
    """Recording length in seconds."""
    recording: str = ""
    """Path of the audio the transcript was made from."""
    channels: int = 2
    rate: int = 8000
    speakers: list[str] = Field(default_factory=lambda: ["caller", "agent"])
    """Speaker of each channel, in channel order (left first)."""
    agent: str | None = None
    outcome: str | None = None
    extra: dict[str, Any] = Field(default_factory=dict)
    """Anything else the engine knew about the call (flow, version digest...)."""


class TranscriptionInfo(_Model):
    """How the text was produced."""

    backend: str
    created_at: str | None = None
    processing_seconds: float | None = None
    real_time_factor: float | None = None
    """Processing time / audio time."""


class IvrStep(_Model):
    """A flow node the call went through."""

    at: float
    flow: str = ""
    node: str
    type: str = ""


class DtmfEvent(_Model):
    """A key press; ``digit`` is ``*`` and ``masked`` true inside a pause span."""

    at: float
    digit: str
    source: str = ""
    masked: bool = False


class PauseSpan(_Model):
    """A stretch where recording/transcription is paused (e.g. card number entry)."""

    start: float
    end: float
    reason: str = "pci"


class QueueTiming(_Model):
    """A stay in an ACD queue."""

    queue: str
    enqueued_at: float
    answered_at: float | None = None
    left_at: float | None = None
    outcome: str = ""
    """answered, abandoned, overflowed..."""
    agent: str | None = None

    @property
    def wait_seconds(self) -> float | None:
        end = self.answered_at if self.answered_at is not None else self.left_at
        return None if end is None else round(end - self.enqueued_at, 3)


class WordTiming(_Model):
    start: float
    end: float
    text: str
    conf: float


class SpeakerSegment(_Model):
    """What one speaker said in one stretch, with its words."""

    speaker: str
    channel: int
    start: float
    end: float
    text: str
    confidence: float
    words: list[WordTiming] = Field(default_factory=list)


class SpeakerStats(_Model):
    segments: int
    words: int
    talk_seconds: float
    mean_confidence: float | None


class Summary(_Model):
    """Figures computed from the segments (QA and history views use them)."""

    duration: float
    speakers: dict[str, SpeakerStats]
    silence_seconds: float
    """Recording time in which no one spoke."""
    overlap_seconds: float
    """Time in which two speakers spoke at once (talk-over)."""
    first_speaker: str | None
    words: int
    mean_confidence: float | None
    dtmf_count: int
    masked_dtmf: int
    queue_wait_seconds: float | None
    """Total wait over the queue stays."""


class TextRecord(_Model):
    """The transcript of one call, versioned by ``schema_version``."""

    schema_version: Literal[1] = SCHEMA_VERSION
    call_id: str
    metadata: CallMetadata
    transcription: TranscriptionInfo
    ivr_path: list[IvrStep] = Field(default_factory=list)
    dtmf: list[DtmfEvent] = Field(default_factory=list)
    pauses: list[PauseSpan] = Field(default_factory=list)
    queue: list[QueueTiming] = Field(default_factory=list)
    segments: list[SpeakerSegment] = Field(default_factory=list)
    summary: Summary

    def to_json(self) -> str:
        """The record as indented JSON (UTF-8 text, non-ASCII kept)."""
        return json.dumps(self.model_dump(mode="json"), indent=2, ensure_ascii=False) + "\n"


# -- building ---------------------------------------------------------------------------------


def _offset(value: Any, started: datetime | None, what: str) -> float:
    """Seconds from the recording start: a number as is, an ISO time minus ``started``."""
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and started is not None:
        try:
            at = datetime.fromisoformat(value)
        except ValueError:
            raise RecordError(f"{what}: {value!r} is not a number or an ISO time") from None
        return round((at - started).total_seconds(), 3)
    raise RecordError(
        f"{what}: {value!r} must be seconds from the recording start"
        " (or an ISO time, with metadata.started_at set)"
    )


def _in_pause(start: float, end: float, pauses: Sequence[PauseSpan]) -> bool:
    return any((start < p.end and end > p.start) or p.start <= start <= p.end for p in pauses)


def _mask_segment(seg: SpeakerSegment, pauses: Sequence[PauseSpan]) -> SpeakerSegment:
    if not pauses or not _in_pause(seg.start, seg.end, pauses):
        return seg
    words = [
        w.model_copy(update={"text": MASK}) if _in_pause(w.start, w.end, pauses) else w
        for w in seg.words
    ]
    if not words:  # no word timings: the whole segment goes
        return seg.model_copy(update={"text": MASK})
    if all(w.text != MASK for w in words):
        return seg
    return seg.model_copy(update={"words": words, "text": " ".join(w.text for w in words)})


def _union(intervals: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for s, e in sorted(intervals):
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


def _length(intervals: Iterable[tuple[float, float]]) -> float:
    return sum(e - s for s, e in intervals)


def _overlap(a: list[tuple[float, float]], b: list[tuple[float, float]]) -> float:
    total, i, j = 0.0, 0, 0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if hi > lo:
            total += hi - lo
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return total


def summarize(
    segments: Sequence[SpeakerSegment],
    speakers: Sequence[str],
    duration: float,
    dtmf: Sequence[DtmfEvent] = (),
    queue: Sequence[QueueTiming] = (),
) -> Summary:
    """The summary figures of ``segments`` over a recording of ``duration`` seconds."""
    stats: dict[str, SpeakerStats] = {}
    spans: dict[str, list[tuple[float, float]]] = {}
    for name in speakers:
        own = [s for s in segments if s.speaker == name]
        spans[name] = _union((s.start, s.end) for s in own)
        confs = [w.conf for s in own for w in s.words]
        stats[name] = SpeakerStats(
            segments=len(own),
            words=sum(len(s.words) for s in own),
            talk_seconds=round(_length(spans[name]), 3),
            mean_confidence=round(sum(confs) / len(confs), 3) if confs else None,
        )
    names = list(speakers)
    overlap = sum(
        _overlap(spans[names[i]], spans[names[j]])
        for i in range(len(names))
        for j in range(i + 1, len(names))
    )
    speech = _length(_union((s.start, s.end) for s in segments))
    all_confs = [w.conf for s in segments for w in s.words]
    waits = [q.wait_seconds for q in queue if q.wait_seconds is not None]
    return Summary(
        duration=round(duration, 3),
        speakers=stats,
        silence_seconds=round(max(0.0, duration - speech), 3),
        overlap_seconds=round(overlap, 3),
        first_speaker=min(segments, key=lambda s: (s.start, s.channel)).speaker
        if segments
        else None,
        words=sum(len(s.words) for s in segments),
        mean_confidence=round(sum(all_confs) / len(all_confs), 3) if all_confs else None,
        dtmf_count=len(dtmf),
        masked_dtmf=sum(1 for d in dtmf if d.masked),
        queue_wait_seconds=round(sum(waits), 3) if waits else None,
    )


def build_record(
    call_id: str,
    channels: Mapping[str, Sequence[Segment]],
    *,
    duration: float,
    backend: str,
    speakers: Sequence[str] = ("caller", "agent"),
    context: Mapping[str, Any] | None = None,
    created_at: str | None = None,
    processing_seconds: float | None = None,
) -> TextRecord:
    """Assemble the text record of ``call_id``.

    ``channels`` maps a speaker name (one of ``speakers``, in channel order) to
    the segments its channel gave. ``context`` is what the engine knows about
    the call: ``metadata`` (CallMetadata fields), ``ivr_path`` (``at``, ``flow``,
    ``node``, ``type``), ``dtmf`` (``at``, ``digit``, ``source``), ``pauses``
    (``start``, ``end`` - None: still open, ends with the recording - ``reason``),
    ``queue`` (QueueTiming fields). Times may be seconds from the recording start or ISO times (then
    ``metadata.started_at`` is needed). Raises RecordError naming the bad field.
    """
    ctx = dict(context or {})
    meta_in = dict(ctx.get("metadata") or {})
    meta_in.update(call_id=call_id, duration=round(duration, 3), speakers=list(speakers))
    meta_in.setdefault("channels", len(channels))
    try:
        meta = CallMetadata.model_validate(meta_in)
        started = datetime.fromisoformat(meta.started_at) if meta.started_at else None
        pauses = sorted(
            (
                PauseSpan.model_validate({**p, "end": duration} if p.get("end") is None else p)
                for p in ctx.get("pauses") or []
            ),
            key=lambda p: p.start,
        )
        ivr = [
            IvrStep.model_validate({**s, "at": _offset(s.get("at"), started, f"ivr_path[{i}].at")})
            for i, s in enumerate(ctx.get("ivr_path") or [])
        ]
        dtmf = []
        for i, d in enumerate(ctx.get("dtmf") or []):
            at = _offset(d.get("at"), started, f"dtmf[{i}].at")
            masked = _in_pause(at, at, pauses)
            dtmf.append(
                DtmfEvent.model_validate(
                    {**d, "at": at, "digit": "*" if masked else d.get("digit"), "masked": masked}
                )
            )
        queue = []
        for i, q in enumerate(ctx.get("queue") or []):
            item = dict(q)
            for key in ("enqueued_at", "answered_at", "left_at"):
                if item.get(key) is not None:
                    item[key] = _offset(item[key], started, f"queue[{i}].{key}")
            queue.append(QueueTiming.model_validate(item))
    except ValidationError as exc:
        raise RecordError(f"call {call_id}: bad call context: {_first_error(exc)}") from None
    index = {name: i for i, name in enumerate(speakers)}
    segments: list[SpeakerSegment] = []
    for name, segs in channels.items():
        if name not in index:
            raise RecordError(f"call {call_id}: channel {name!r} is not one of {list(speakers)}")
        for s in segs:
            seg = SpeakerSegment(
                speaker=name,
                channel=index[name],
                start=round(s.start, 3),
                end=round(s.end, 3),
                text=s.text,
                confidence=round(s.confidence, 3),
                words=[
                    WordTiming(
                        start=round(w.start, 3),
                        end=round(w.end, 3),
                        text=w.text,
                        conf=round(w.conf, 3),
                    )
                    for w in s.words
                ],
            )
            segments.append(_mask_segment(seg, pauses))
    segments.sort(key=lambda s: (s.start, s.channel, s.end))
    rtf = (
        round(processing_seconds / duration, 4)
        if processing_seconds is not None and duration > 0
        else None
    )
    return TextRecord(
        call_id=call_id,
        metadata=meta,
        transcription=TranscriptionInfo(
            backend=backend,
            created_at=created_at,
            processing_seconds=None if processing_seconds is None else round(processing_seconds, 3),
            real_time_factor=rtf,
        ),
        ivr_path=sorted(ivr, key=lambda s: s.at),
        dtmf=sorted(dtmf, key=lambda d: d.at),
        pauses=pauses,
        queue=queue,
        segments=segments,
        summary=summarize(segments, speakers, duration, dtmf, queue),
    )


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    return f"{where}: {err['msg']}" if where else str(err["msg"])


def load_record(source: str | Path) -> TextRecord:
    """Read a record from JSON text or a ``.json`` path; RecordError says what is wrong."""
    where = str(source) if isinstance(source, Path) else "text record"
    try:
        text = source.read_text(encoding="utf-8") if isinstance(source, Path) else source
        data = json.loads(text)
    except (OSError, json.JSONDecodeError) as exc:
        raise RecordError(f"{where}: not readable JSON ({exc})") from None
    if not isinstance(data, dict):
        raise RecordError(f"{where}: a text record is a JSON object")
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        raise RecordError(
            f"{where}: schema_version {version!r} is not supported (this version reads"
            f" {SCHEMA_VERSION}); re-run `ivr transcribe` on the recording or upgrade callcore"
        )
    try:
        return TextRecord.model_validate(data)
    except ValidationError as exc:
        raise RecordError(f"{where}: {_first_error(exc)}") from None


# -- exports ------------------------------------------------------------------------------------


def _clock(seconds: float, sep: str) -> str:
    ms = max(0, round(seconds * 1000))
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def _short(seconds: float) -> str:
    tenths = max(0, round(seconds * 10))
    m, rem = divmod(tenths, 600)
    return f"{m:02d}:{rem // 10:02d}.{rem % 10}"


def to_text(record: TextRecord) -> str:
    """A plain-text transcript: header lines, then one ``[mm:ss.s] speaker: text`` per segment."""
    meta = record.metadata
    lines = [f"Call {record.call_id}"]
    if meta.started_at:
        lines.append(f"Started: {meta.started_at}")
    lines.append(f"Duration: {_short(meta.duration)}")
    if meta.caller or meta.called:
        lines.append(f"From: {meta.caller or '-'}  To: {meta.called or '-'}")
    if record.ivr_path:
        lines.append("IVR: " + " > ".join(_step(s) for s in record.ivr_path))
    if record.dtmf:
        keys = ", ".join(
            f"{_short(d.at)} {'[masked]' if d.masked else d.digit}" for d in record.dtmf
        )
        lines.append(f"DTMF: {keys}")
    for p in record.pauses:
        lines.append(f"Paused ({p.reason}): {_short(p.start)}-{_short(p.end)}")
    for q in record.queue:
        wait = q.wait_seconds
        text = f"Queue {q.queue}: entered {_short(q.enqueued_at)}"
        if wait is not None:
            text += f", waited {wait:.1f} s"
        if q.outcome:
            text += f", {q.outcome}"
        if q.agent:
            text += f" by {q.agent}"
        lines.append(text)
    lines.append("")
    for seg in record.segments:
        lines.append(f"[{_short(seg.start)}] {seg.speaker}: {seg.text}")
    return "\n".join(lines) + "\n"


def _step(step: IvrStep) -> str:
    return f"{step.flow}/{step.node}" if step.flow else step.node


def _vtt_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_webvtt(record: TextRecord) -> str:
    """WebVTT captions, one cue per segment, the speaker as a ``<v>`` voice span."""
    out = ["WEBVTT", ""]
    for i, seg in enumerate(record.segments, 1):
        out.append(str(i))
        out.append(f"{_clock(seg.start, '.')} --> {_clock(seg.end, '.')}")
        out.append(f"<v {_vtt_escape(seg.speaker)}>{_vtt_escape(seg.text)}")
        out.append("")
    return "\n".join(out)


def to_srt(record: TextRecord) -> str:
    """SubRip captions, one numbered cue per segment, ``speaker: text``."""
    out: list[str] = []
    for i, seg in enumerate(record.segments, 1):
        out.append(str(i))
        out.append(f"{_clock(seg.start, ',')} --> {_clock(seg.end, ',')}")
        out.append(f"{seg.speaker}: {seg.text}")
        out.append("")
    return "\n".join(out)
