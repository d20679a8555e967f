"""Prompt playback, frame by frame, sans I/O.

A :class:`Prompt` is 8 kHz int16 mono audio that is cut into frames and
encoded once per (codec, frame size), the last frame padded with silence;
every call that plays it reuses those frames, so the send path of a playing
call is a list index, not a numpy call (300+ calls on 2 cores).

The :class:`Player` of a call holds a queue of prompts. The media tick asks
it for the next frame (:meth:`Player.next_payload` for encoded G.711,
:meth:`Player.next_frame` for PCM); ``None`` means idle, and the caller sends
comfort silence or nothing. A key press calls :meth:`Player.interrupt`
(barge-in). Each queued item ends with one :class:`PlaybackFinished` event,
collected by :meth:`Player.drain_events`.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from media.g711 import Codec

__all__ = ["PlaybackFinished", "Player", "Prompt"]

RATE = 8000


@dataclass(frozen=True)
class PlaybackFinished:
    """A queued item ended: played out (``interrupted=False``) or cut by
    :meth:`Player.interrupt` / :meth:`Player.clear` (``interrupted=True``)."""

    tag: Any  # not `object`: mypyc (media/native.py) looks the name up in this module
    interrupted: bool


class Prompt:
    """8 kHz int16 mono audio with its frames cached per frame size and codec.

    The audio is copied into a read-only array; the frame lists are built on
    first use and shared by every player. Raises TypeError for samples that
    are not int16 and ValueError for audio that is not one-dimensional.
    """

    def __init__(self, audio: np.ndarray, name: str = "") -> None:
        if not isinstance(audio, np.ndarray) or audio.dtype != np.int16:
            kind = audio.dtype if isinstance(audio, np.ndarray) else type(audio).__name__
            raise TypeError(f"prompt {name!r}: audio must be an int16 numpy array, got {kind}")
        if audio.ndim != 1:
            raise ValueError(f"prompt {name!r}: audio must be mono (1-D), got shape {audio.shape}")
        self.audio = audio.copy()
        self.audio.flags.writeable = False
        self.name = name
        self._frames: dict[int, list[np.ndarray]] = {}
        self._payloads: dict[tuple[str, int], list[bytes]] = {}

    def __len__(self) -> int:
        return len(self.audio)

    def __repr__(self) -> str:
        return f"Prompt({self.name!r}, {self.duration:.3f} s)"

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return len(self.audio) / RATE

    def _padded(self, samples: int) -> np.ndarray:
        if samples <= 0:
            raise ValueError(f"frame size must be positive, got {samples} samples")
        count = -(-len(self.audio) // samples)
        padded = np.zeros(count * samples, dtype=np.int16)
        padded[: len(self.audio)] = self.audio
        return padded

    def frames(self, samples: int) -> list[np.ndarray]:
        """The audio as read-only ``samples``-long frames, the last one padded
        with silence (computed once per frame size)."""
        cached = self._frames.get(samples)
        if cached is None:
            padded = self._padded(samples)
            padded.flags.writeable = False
            cached = list(padded.reshape(-1, samples))
            self._frames[samples] = cached
        return cached

    def payloads(self, codec: Codec, samples: int) -> list[bytes]:
        """:meth:`frames` encoded with ``codec`` (one numpy call, computed once)."""
        key = (codec.name, samples)
        cached = self._payloads.get(key)
        if cached is None:
            blob = codec.encode(self._padded(samples))
            cached = [blob[i : i + samples] for i in range(0, len(blob), samples)]
            self._payloads[key] = cached
        return cached

    def window(self, start: int, samples: int) -> np.ndarray:
        """``samples`` samples from ``start``, padded with silence past the end."""
        out = np.zeros(samples, dtype=np.int16)
        part = self.audio[start : start + samples]
        out[: len(part)] = part
        return out


@dataclass(slots=True)
class _Item:
    prompt: Prompt
    interruptible: bool
    tag: Any  # as above
    offset: int = 0
    """Samples already handed out."""
    length: int = 0
    """``len(prompt)``, kept here: the send path asks for it 50 times a second."""
    coded_as: tuple[str, int] | None = None
    coded: list[bytes] | None = None
    """The prompt's frames for ``coded_as`` = (codec name, samples), looked up once."""

    def __post_init__(self) -> None:
        self.length = len(self.prompt)


class Player:
    """The playback queue of one call (sans I/O: no clock, no sockets).

    Frames are handed out in queue order; an item is finished (and its
    :class:`PlaybackFinished` queued) when its last frame is handed out.
    Playback position is kept in samples, so a frame-size change in the
    middle of a prompt (re-INVITE with a new ptime) continues where it was.
    """

    def __init__(self) -> None:
        self._queue: deque[_Item] = deque()
        self._events: list[PlaybackFinished] = []

    def enqueue(
        self, audio: Prompt | np.ndarray, *, interruptible: bool = True, tag: object = None
    ) -> None:
        """Queue ``audio`` (a :class:`Prompt`, or 8 kHz int16 mono samples)
        after whatever is queued. ``interruptible=False`` items survive
        :meth:`interrupt`; ``tag`` comes back in their PlaybackFinished."""
        prompt = audio if isinstance(audio, Prompt) else Prompt(audio)
        self._queue.append(_Item(prompt, interruptible, tag))

    @property
    def has_events(self) -> bool:
        """Whether :meth:`drain_events` has anything to hand out."""
        return bool(self._events)

    @property
    def is_playing(self) -> bool:
        """Whether anything is queued."""
        return bool(self._queue)

    def _current(self) -> _Item | None:
        """The item to play from, finishing empty ones on the way."""
        while self._queue:
            item = self._queue[0]
            if item.offset < item.length:
                return item
            self._finish(interrupted=False)
        return None

    def _advance(self, item: _Item, samples: int) -> None:
        item.offset += samples
        if item.offset >= item.length:
            self._finish(interrupted=False)

    def next_payload(self, codec: Codec, samples: int) -> bytes | None:
        """The next ``samples``-long frame encoded with ``codec``, None when idle.

        Whole prompts come from the prompt's pre-encoded frames, so this is
        equal to ``codec.encode(next_frame(samples))`` without the numpy work.
        (Written out rather than through ``_current``/``_advance``: it runs
        for every packet of every call.)
        """
        queue = self._queue
        while queue:
            item = queue[0]
            offset = item.offset
            if offset < item.length:
                break
            self._finish(interrupted=False)
        else:
            return None
        if offset % samples == 0:
            coded = item.coded
            if coded is None or item.coded_as != (codec.name, samples):
                coded = item.coded = item.prompt.payloads(codec, samples)
                item.coded_as = (codec.name, samples)
            payload = coded[offset // samples]
        else:  # the frame size changed mid-prompt: encode this window on the fly
            payload = codec.encode(item.prompt.window(offset, samples))
        offset += samples
        item.offset = offset
        if offset >= item.length:
            self._finish(interrupted=False)
        return payload

    def next_frame(self, samples: int) -> np.ndarray | None:
        """The next ``samples``-long PCM frame (read-only), None when idle."""
        item = self._current()
        if item is None:
            return None
        if item.offset % samples == 0:
            frame = item.prompt.frames(samples)[item.offset // samples]
        else:
            frame = item.prompt.window(item.offset, samples)
        self._advance(item, samples)
        return frame

    def _finish(self, *, interrupted: bool) -> None:
        item = self._queue.popleft()
        self._events.append(PlaybackFinished(item.tag, interrupted))

    def interrupt(self) -> int:
        """Barge-in: stop the current item if interruptible and drop every
        queued interruptible item; non-interruptible ones keep their place.
        Returns how many items were cut (each gets ``interrupted=True``)."""
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

    def clear(self) -> int:
        """Drop everything, interruptible or not; returns how many items were cut."""
        cut = len(self._queue)
        for item in self._queue:
            self._events.append(PlaybackFinished(item.tag, True))
        self._queue.clear()
        return cut

    def drain_events(self) -> list[PlaybackFinished]:
        """The PlaybackFinished events since the last call, in order."""
        if not self._events:
            return []
        events, self._events = self._events, []
        return events
