"""Prompt playback, frame by frame, sans I/O.

A :class:`Prompt` is audio cut into frames and encoded once per (codec, frame
size), then reused by every call that plays it: the send path of a playing
call is a list index, not a numpy call. The :class:`Player` of a call holds a
queue of prompts; the media tick asks it for the next payload, and a digit
can interrupt (barge-in) whatever is interruptible.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from media.g711 import Codec


@dataclass(frozen=True)
class PlaybackFinished:
    """A queued item ended: played out, or cut by :meth:`Player.interrupt`."""

    tag: object
    interrupted: bool


class Prompt:
    """8 kHz int16 audio with its encoded frames cached per (codec, frame size)."""

    def __init__(self, audio: np.ndarray, name: str = "") -> None:
        self.audio = np.ascontiguousarray(audio, dtype=np.int16)
        self.name = name
        self._encoded: dict[tuple[str, int], list[bytes]] = {}

    @property
    def duration(self) -> float:
        return len(self.audio) / 8000.0

    def frames(self, samples: int) -> list[np.ndarray]:
        """The audio cut into ``samples``-long frames, the last one padded with silence."""
        n = -(-len(self.audio) // samples)
        padded = np.zeros(n * samples, dtype=np.int16)
        padded[: len(self.audio)] = self.audio
        return list(padded.reshape(n, samples))

    def payloads(self, codec: Codec, samples: int) -> list[bytes]:
        """Encoded frames for ``codec`` (computed once, one numpy call)."""
        key = (codec.name, samples)
        cached = self._encoded.get(key)
        if cached is None:
            n = -(-len(self.audio) // samples)
            padded = np.zeros(n * samples, dtype=np.int16)
            padded[: len(self.audio)] = self.audio
            blob = codec.encode(padded)
            cached = [blob[i * samples : (i + 1) * samples] for i in range(n)]
            self._encoded[key] = cached
        return cached


@dataclass
class _Item:
    prompt: Prompt
    interruptible: bool
    tag: object
    position: int = 0


@dataclass
class Player:
    """The playback queue of one call."""

    _queue: deque[_Item] = field(default_factory=deque)
    _events: list[PlaybackFinished] = field(default_factory=list)

    def enqueue(
        self, audio: Prompt | np.ndarray, *, interruptible: bool = True, tag: object = None
    ) -> None:
        """Queue audio after whatever is playing."""
        prompt = audio if isinstance(audio, Prompt) else Prompt(audio)
        self._queue.append(_Item(prompt, interruptible, tag))

    @property
    def is_playing(self) -> bool:
        return bool(self._queue)

    def next_payload(self, codec: Codec, samples: int) -> bytes | None:
        """The next encoded frame, or None when nothing is queued."""
        while self._queue:
            item = self._queue[0]
            frames = item.prompt.payloads(codec, samples)
            if item.position < len(frames):
                payload = frames[item.position]
                item.position += 1
                if item.position == len(frames):
                    self._finish(interrupted=False)
                return payload
            self._finish(interrupted=False)  # empty prompt
        return None

    def next_frame(self, samples: int) -> np.ndarray | None:
        """The next PCM frame, or None when nothing is queued."""
        while self._queue:
            item = self._queue[0]
            frames = item.prompt.frames(samples)
            if item.position < len(frames):
                frame = frames[item.position]
                item.position += 1
                if item.position == len(frames):
                    self._finish(interrupted=False)
                return frame
            self._finish(interrupted=False)
        return None

    def _finish(self, *, interrupted: bool) -> None:
        item = self._queue.popleft()
        self._events.append(PlaybackFinished(item.tag, interrupted))

    def interrupt(self) -> int:
        """Barge-in: drop every interruptible item; returns how many were cut."""
        kept: deque[_Item] = deque()
        cut = 0
        for item in self._queue:
            if item.interruptible:
                self._events.append(PlaybackFinished(item.tag, True))
                cut += 1
            else:
                kept.append(item)
        self._queue = kept
        return cut

    def clear(self) -> None:
        """Drop everything, interruptible or not."""
        for item in self._queue:
            self._events.append(PlaybackFinished(item.tag, True))
        self._queue.clear()

    def drain_events(self) -> list[PlaybackFinished]:
        """Events since the last call."""
        if not self._events:
            return []
        events, self._events = self._events, []
        return events
