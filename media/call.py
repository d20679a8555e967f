"""One call as an application (the greeting, later the IVR runtime) sees it.

A :class:`Call` is the asyncio face of a SIP dialog plus its media session:
``await call.play(prompt)``, ``await call.get_digit(timeout)``,
``call.hangup()``. It holds no protocol logic; signalling goes through the
:class:`CallControl` the engine passes in.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from media.prompts.player import PlaybackFinished, Prompt
from media.session import MediaSession
from media.sip.events import CallRef


class CallControl(Protocol):
    """What a call may ask of the engine's signalling side."""

    def hangup_call(self, ref: CallRef) -> None: ...

    def refer_call(self, ref: CallRef, target_uri: str) -> bool: ...


@dataclass
class CallInfo:
    """Who called whom, and when (loop time and wall time)."""

    call_id: str
    caller: str
    callee: str
    remote_addr: tuple[str, int]
    transport: str
    started: float
    started_wall: float
    digits: list[tuple[float, str, str]] = field(default_factory=list)
    """(loop time, digit, source) of every digit heard (``*`` inside a secure pause)."""
    caller_name: str = ""
    """The display name of the From header (empty when none)."""


class CallHungUp(Exception):
    """The call ended while the application was waiting on it."""


class Call:
    """The application's handle on one answered call."""

    def __init__(
        self,
        ref: CallRef,
        info: CallInfo,
        session: MediaSession,
        control: CallControl,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.ref = ref
        self.info = info
        self.session = session
        self._control = control
        self._loop = loop
        self._digits: asyncio.Queue[str] = asyncio.Queue()
        self._playing: dict[int, asyncio.Future[bool]] = {}
        self._next_tag = 0
        self.ended = asyncio.Event()
        self.end_reason = ""
        self._refer: asyncio.Queue[int] | None = None

    # Called by the engine (media callbacks run on the loop thread).
    def digit_received(self, digit: str, source: str) -> None:
        # Inside a secure pause the digit is kept out of the call's log (PCI).
        logged = "*" if self.session.capture_paused else digit
        self.info.digits.append((self._loop.time(), logged, source))
        self.session.player.interrupt()  # barge-in: interruptible prompts stop on a key
        self._digits.put_nowait(digit)

    def playback_finished(self, event: PlaybackFinished) -> None:
        tag = event.tag
        fut = self._playing.pop(tag, None) if isinstance(tag, int) else None
        if fut is not None and not fut.done():
            fut.set_result(not event.interrupted)

    def refer_status(self, status: int) -> None:
        """A transfer's progress: the REFER's final status, then each NOTIFY's."""
        if self._refer is not None:
            self._refer.put_nowait(status)

    def mark_ended(self, reason: str) -> None:
        self.end_reason = reason
        self.ended.set()
        for fut in self._playing.values():
            if not fut.done():
                fut.set_exception(CallHungUp(reason))
        self._playing.clear()

    # The application's API.
    async def play(
        self,
        audio: Prompt | np.ndarray | Sequence[Prompt | np.ndarray],
        *,
        interruptible: bool = True,
    ) -> bool:
        """Play audio to the caller; True if it played to the end, False if a digit cut it."""
        if self.ended.is_set():
            raise CallHungUp(self.end_reason)
        items = [audio] if isinstance(audio, Prompt | np.ndarray) else list(audio)
        fut: asyncio.Future[bool] = self._loop.create_future()
        for i, item in enumerate(items):
            self._next_tag += 1
            last = i == len(items) - 1
            tag = self._next_tag
            self.session.player.enqueue(item, interruptible=interruptible, tag=tag)
            if last:
                self._playing[tag] = fut
        return await fut

    async def get_digit(self, timeout: float | None = None) -> str | None:
        """The next digit, or None after ``timeout`` seconds; raises CallHungUp on hang-up."""
        if not self._digits.empty():
            return self._digits.get_nowait()
        getter = asyncio.ensure_future(self._digits.get())
        ended = asyncio.ensure_future(self.ended.wait())
        try:
            done, _ = await asyncio.wait(
                {getter, ended}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            ended.cancel()
            if not getter.done():
                getter.cancel()
        if getter in done:
            return getter.result()
        if self.ended.is_set():
            raise CallHungUp(self.end_reason)
        return None

    async def transfer(self, target_uri: str, *, timeout: float = 32.0) -> tuple[bool, int | None]:
        """Blind transfer (REFER) to ``target_uri``: ``(accepted, status)``.

        A refused REFER, or a NOTIFY reporting a final failure (sipfrag 3xx-6xx),
        gives ``(False, status)``; a NOTIFY with a 2xx gives ``(True, status)``.
        When the REFER was accepted (2xx) but no final NOTIFY came within
        ``timeout`` seconds, or the peer hung up first (it usually sends BYE once
        the transfer is under way), the transfer counts as done. ``(False, None)``
        when the REFER could not be sent (the dialog is not confirmed) or no
        answer came at all. Raises CallHungUp if the call ends before the
        REFER was accepted.
        """
        if self.ended.is_set():
            raise CallHungUp(self.end_reason)
        statuses: asyncio.Queue[int] = asyncio.Queue()
        self._refer = statuses
        try:
            if not self._control.refer_call(self.ref, target_uri):
                return False, None
            deadline = self._loop.time() + timeout
            accepted: int | None = None
            while True:
                remaining = deadline - self._loop.time()
                if remaining <= 0:
                    return accepted is not None, accepted
                getter = asyncio.ensure_future(statuses.get())
                ended = asyncio.ensure_future(self.ended.wait())
                try:
                    done, _ = await asyncio.wait(
                        {getter, ended}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
                    )
                finally:
                    ended.cancel()
                    if not getter.done():
                        getter.cancel()
                if getter in done:
                    status = getter.result()
                    if accepted is None:  # the REFER's own answer
                        if not 200 <= status < 300:
                            return False, status
                        accepted = status
                    elif 200 <= status < 300:
                        return True, status
                    elif status >= 300:
                        return False, status
                elif self.ended.is_set():
                    if accepted is None:
                        raise CallHungUp(self.end_reason)
                    return True, accepted
        finally:
            self._refer = None

    def flush_digits(self) -> None:
        """Forget digits typed ahead."""
        while not self._digits.empty():
            self._digits.get_nowait()

    def hangup(self) -> None:
        """Send BYE (idempotent)."""
        if not self.ended.is_set():
            self._control.hangup_call(self.ref)
