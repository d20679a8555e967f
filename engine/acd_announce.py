"""What a caller waiting in an ACD queue hears: announcements and the comfort tone.

:class:`Announcer` turns the router's announcement texts ("You are number 3
in line. Your wait is less than 2 minutes.", see :func:`acd.ewt.announcement_text`)
into audio with the engine's prompt library (its TTS and disk cache): each
sentence is rendered once and kept for good, the sentences of one
announcement are joined 250 ms apart, and the joined audio is kept in a
small LRU. :meth:`Announcer.prerender` renders every position sentence up
to ``positions`` and every "less than N minutes" sentence up to
``minutes`` for each queue's rounding before callers need them, so an
announcement starts the moment the router asks for it.

The same path speaks the callback offer and its confirmation (texts from
the flow's queue node, in the caller's language).

Between announcements callers hear :func:`comfort_tone`; the flows folder
carries no music.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import structlog

from acd.ewt import announcement_text
from acd.model import QueueConfig
from engine.flowprompts import PromptError, PromptLibrary
from ivr.actions import SayText
from media.prompts.player import Prompt
from media.prompts.tones import silence, tone

__all__ = ["Announcer", "PlayedAnnouncement", "comfort_tone", "sentences"]

log = structlog.get_logger("engine.acd")

GAP_MS = 250


def comfort_tone() -> np.ndarray:
    """The hold treatment between announcements: a soft two-note chime
    (523 Hz then 659 Hz, 300 ms each at -24 dBm0) every 4 seconds."""
    chime = np.concatenate((tone((523.25,), 300, -24.0), tone((659.25,), 300, -24.0)))
    return np.concatenate((chime, silence(4000 - 600)))


@dataclass(frozen=True)
class PlayedAnnouncement:
    """One position/EWT announcement as the caller heard it: when it started
    (router clock), the text, the figures, and its length in seconds."""

    at: float
    text: str
    position: int | None
    ewt: float | None
    seconds: float


def sentences(text: str) -> list[str]:
    """``"You are next in line. Your wait is ..."`` -> one item per sentence."""
    out = []
    for part in text.split(". "):
        part = part.strip()
        if part:
            out.append(part if part.endswith(".") else part + ".")
    return out


class Announcer:
    """Announcement texts as audio (see the module docstring); ``prompts``
    None: nothing can be spoken (announcements are then only logged)."""

    def __init__(
        self,
        prompts: PromptLibrary | None,
        *,
        language: str = "en",
        positions: int = 10,
        minutes: int = 15,
        cache: int = 256,
    ) -> None:
        self.prompts = prompts
        self.language = language
        self.positions = positions
        self.minutes = minutes
        self.cache = cache
        self._spoken: OrderedDict[str, Prompt] = OrderedDict()

    async def speak(
        self, text: str, language: str | None = None, *, static: bool = True
    ) -> Prompt | None:
        """``text`` as the caller hears it, in ``language`` (default: the
        announcer's); None when it cannot be spoken (logged). ``static``: the
        prompt library keeps the sentences for good (texts that vary per
        caller pass False: its LRU holds them)."""
        language = language or self.language
        key = text if language == self.language else f"{language}\x00{text}"
        hit = self._spoken.get(key)
        if hit is not None:
            self._spoken.move_to_end(key)
            return hit
        if self.prompts is None or not text:
            return None
        parts: list[np.ndarray] = []
        try:
            for sentence in sentences(text):
                if parts:
                    parts.append(silence(GAP_MS))
                said = await self.prompts.speech(SayText(sentence, language), static=static)
                parts.append(np.asarray(said.audio))
        except PromptError as exc:
            log.warning("acd.announce_unspeakable", text=text, error=str(exc))
            return None
        if not parts:
            return None
        prompt = Prompt(np.concatenate(parts), name=f"acd:{text[:40]}")
        self._spoken[key] = prompt
        if len(self._spoken) > self.cache:
            self._spoken.popitem(last=False)
        return prompt

    def texts(self, queues: Iterable[QueueConfig]) -> set[str]:
        """Every sentence :meth:`prerender` renders for ``queues``."""
        texts = {announcement_text(p, None) for p in range(1, self.positions + 1)}
        for queue in queues:
            if queue.announce is None:
                continue
            step = queue.announce.round_to
            for k in range(1, max(2, int(self.minutes * 60 / step) + 1)):
                texts.add(announcement_text(None, k * step - step / 2, step))
        return texts

    async def prerender(self, queues: Iterable[QueueConfig]) -> int:
        """Render :meth:`texts` now; returns how many."""
        if self.prompts is None:
            return 0
        texts = self.texts(queues)
        started = time.monotonic()
        for text in sorted(texts):
            await self.speak(text)
        log.info("acd.prerendered", texts=len(texts), seconds=round(time.monotonic() - started, 2))
        return len(texts)
