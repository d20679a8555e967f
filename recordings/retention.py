"""How long recordings are kept (pure): retention days per queue and legal holds.

The policy is written beside the queues, in ``flows/queues.yaml``
(``retention: {days: N}`` per queue and under ``defaults:``, read by
:mod:`recordings.retention_config`), and can be overridden by a text that
fits an environment variable (``CALLCORE_RETENTION``)::

    365; billing=90; support=30; vip=0

The first bare number is the default for every recording (also calls that
never reached a queue); ``QUEUE=DAYS`` overrides it for calls whose last
queue was QUEUE. ``0`` means keep for ever. An empty text keeps everything.

:func:`decide` says what to do with one recording at ``now``: keep it (with
the time it expires, or None), or delete it. A recording under legal hold,
one still being recorded, or one already deleted is never deleted.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from recordings.metadata import RecordingMeta

__all__ = [
    "DAY",
    "Decision",
    "RetentionError",
    "RetentionPolicy",
    "decide",
    "override_policy",
    "parse_retention",
    "parse_retention_parts",
]

DAY = 86400.0
_QUEUE = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")


class RetentionError(ValueError):
    """A retention text that cannot be read; the message names the part and the fix."""


@dataclass(frozen=True)
class RetentionPolicy:
    """Days to keep: ``default`` for all, ``queues`` per queue; 0 or None: for ever."""

    default: int = 0
    queues: Mapping[str, int] = field(default_factory=dict)

    def days_for(self, queue: str | None) -> int:
        """The days a recording of ``queue`` is kept (0: for ever)."""
        if queue is not None and queue in self.queues:
            return self.queues[queue]
        return self.default


@dataclass(frozen=True)
class Decision:
    """What to do with one recording."""

    delete: bool
    reason: str
    expires_at: float | None
    """Unix time the recording may be deleted (None: never)."""


def parse_retention(text: str) -> RetentionPolicy:
    """The policy written in ``text`` (see the module docstring)."""
    default, queues = parse_retention_parts(text)
    return RetentionPolicy(default or 0, queues)


def override_policy(base: RetentionPolicy, text: str) -> RetentionPolicy:
    """``base`` (from queues.yaml) with what ``text`` (``CALLCORE_RETENTION``) gives over it:
    its bare number replaces the default, each ``QUEUE=DAYS`` that queue's days."""
    default, queues = parse_retention_parts(text)
    return RetentionPolicy(base.default if default is None else default, {**base.queues, **queues})


def parse_retention_parts(text: str) -> tuple[int | None, dict[str, int]]:
    """The default (None when ``text`` gives none) and the per-queue days of ``text``."""
    default: int | None = None
    queues: dict[str, int] = {}
    seen_default = False
    for raw in re.split(r"[;,]", text):
        part = raw.strip()
        if not part:
            continue
        name, sep, value = part.partition("=")
        name, value = name.strip(), value.strip()
        days_text = value if sep else name
        if not days_text.isdigit():
            raise RetentionError(
                f"retention {part!r}: days must be a whole number >= 0"
                " (write e.g. '365; billing=90', 0 = keep for ever)"
            )
        days = int(days_text)
        if not sep:
            if seen_default:
                raise RetentionError(f"retention {part!r}: a second default (give one bare number)")
            default, seen_default = days, True
        elif not _QUEUE.match(name):
            raise RetentionError(f"retention {part!r}: {name!r} is not a queue name")
        elif name in queues:
            raise RetentionError(f"retention {part!r}: queue {name!r} is given twice")
        else:
            queues[name] = days
    return default, queues


def decide(meta: RecordingMeta, policy: RetentionPolicy, now: float) -> Decision:
    """Keep or delete ``meta``'s recording at Unix time ``now``."""
    if meta.status == "deleted":
        return Decision(False, "already deleted", None)
    if meta.legal_hold:
        return Decision(False, "legal hold", None)
    if meta.status == "recording":
        return Decision(False, "still being recorded", None)
    days = policy.days_for(meta.queue)
    if days <= 0:
        return Decision(False, "kept for ever", None)
    expires = meta.started_at + days * DAY
    if now >= expires:
        scope = f"queue {meta.queue}" if meta.queue in policy.queues else "default"
        return Decision(True, f"older than {days} days ({scope})", expires)
    return Decision(False, "within retention", expires)
