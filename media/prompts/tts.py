"""Text-to-speech prompts rendered ahead of time, cached, never on the event loop.

pyttsx3 (driving libespeak-ng) is not thread-safe and loses output when
used back to back (../shared/SPEECH.md). So each :class:`TtsRenderer` runs
it on ONE dedicated worker thread fed by a queue, one utterance at a time:
``save_to_file`` + ``runAndWait``, then a wait (bounded) for the
``finished-utterance`` event and for the WAV to be complete (RIFF size equal
to the file size, a non-empty data chunk inside it). If pyttsx3 raises,
reports an incomplete utterance, or does not finish within
``pyttsx3_timeout``, the ``espeak-ng -w`` command (process-isolated, same
voice) renders the prompt instead, and a warning is logged. While a
timed-out utterance still occupies the worker, new prompts go straight to
the command.

Results are 8 kHz int16 mono arrays (read-only: they are shared), cached on
disk as ``<sha256(text|voice|rate)>.wav`` (written to a temporary name and
renamed, so a crash never leaves a half file under the final name) and in
memory (LRU). Concurrent requests for the same text share one synthesis.

libespeak-ng and pyttsx3's engine registry are process-wide: create one
renderer per process (the composition root does).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import queue
import shutil
import struct
import subprocess
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Iterable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from media.prompts.audio import AudioError, load_audio

__all__ = ["TtsError", "TtsRenderer", "wav_complete"]

log = structlog.get_logger("media.prompts.tts")

#: How long the worker waits for pyttsx3 to finish writing a completed utterance.
WRITE_GRACE = 5.0


class TtsError(RuntimeError):
    """No audio could be produced for a prompt; the message says why."""


def wav_complete(path: Path) -> bool:
    """Whether ``path`` is a fully written WAV: the RIFF size matches the file
    size and a data chunk with at least one sample lies inside the file."""
    try:
        data = path.read_bytes()
    except OSError:
        return False
    if len(data) < 44 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return False
    if struct.unpack_from("<I", data, 4)[0] + 8 != len(data):
        return False
    pos = 12
    while pos + 8 <= len(data):
        cid, size = struct.unpack_from("<4sI", data, pos)
        if cid == b"data":
            return 0 < size <= len(data) - pos - 8
        pos += 8 + size + (size & 1)
    return False


_Job = tuple[str, Path, "Future[None]"]


class TtsRenderer:
    """Renders prompt text to 8 kHz int16 audio (see the module docstring).

    ``voice`` is an espeak-ng voice id as pyttsx3 lists it (``gmw/en-us``),
    None for the default; ``rate_wpm`` the speaking rate in words per minute.
    ``use_pyttsx3=False`` renders with the ``espeak-ng`` command only.
    Counters: ``syntheses`` (prompts actually synthesized: cache hits and
    coalesced requests do not count) and ``fallbacks`` (of those, how many
    the ``espeak-ng`` command rendered after pyttsx3 failed or timed out),
    with ``fallback_errors``: why pyttsx3 failed, the last few.
    """

    def __init__(
        self,
        cache_dir: Path,
        *,
        voice: str | None = None,
        rate_wpm: int = 160,
        use_pyttsx3: bool = True,
        pyttsx3_timeout: float = 20.0,
        command_timeout: float = 30.0,
        memory_items: int = 512,
    ) -> None:
        if not 80 <= rate_wpm <= 450:
            raise ValueError(f"TtsRenderer: rate_wpm {rate_wpm} is not in 80-450")
        self.cache_dir = Path(cache_dir)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self.voice = voice
        self.rate_wpm = rate_wpm
        self.use_pyttsx3 = use_pyttsx3
        self.pyttsx3_timeout = pyttsx3_timeout
        self.command_timeout = command_timeout
        self.memory_items = memory_items
        self.syntheses = 0
        self.fallbacks = 0
        self.fallback_errors: deque[str] = deque(maxlen=8)
        self._memory: OrderedDict[str, np.ndarray] = OrderedDict()
        self._pending: dict[str, asyncio.Future[np.ndarray]] = {}
        self._jobs: queue.Queue[_Job | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._busy_abandoned = 0  # timed-out utterances still running on the worker
        self._closed = False
        self._engine: Any = None  # pyttsx3 engine, touched only by the worker thread

    # ------------------------------------------------------------ public API
    def key(self, text: str) -> str:
        """The cache key: sha256 of ``text|voice|rate`` in hex."""
        raw = f"{text}|{self.voice or ''}|{self.rate_wpm}".encode()
        return hashlib.sha256(raw).hexdigest()

    def cached_path(self, text: str) -> Path:
        """Where the rendered WAV of ``text`` is (or will be) on disk."""
        return self.cache_dir / f"{self.key(text)}.wav"

    async def render(self, text: str) -> np.ndarray:
        """``text`` spoken, as read-only 8 kHz int16 mono samples.

        From memory, else from the disk cache, else synthesized on the worker
        thread (the event loop keeps running). Raises :class:`TtsError` for
        empty text, a closed renderer, or when no engine produced audio.
        """
        if self._closed:
            raise TtsError("TtsRenderer is closed")
        if not text.strip():
            raise TtsError("cannot speak an empty prompt")
        key = self.key(text)
        hit = self._memory.get(key)
        if hit is not None:
            self._memory.move_to_end(key)
            return hit
        pending = self._pending.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        fut: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        self._pending[key] = fut
        try:
            audio = await self._load_or_synthesize(text, key)
        except BaseException as exc:
            fut.set_exception(exc)
            fut.exception()  # retrieved: the other waiters re-raise it themselves
            raise
        else:
            self._remember(key, audio)
            fut.set_result(audio)
            return audio
        finally:
            del self._pending[key]

    async def render_many(self, texts: Iterable[str]) -> dict[str, np.ndarray]:
        """Render several prompts (e.g. every prompt of a flow before it goes
        live); duplicates are rendered once. Raises the first TtsError."""
        unique = list(dict.fromkeys(texts))
        results = await asyncio.gather(*(self.render(t) for t in unique))
        return dict(zip(unique, results, strict=True))

    def close(self) -> None:
        """Stop the worker thread after the utterances already queued; later
        :meth:`render` calls raise TtsError."""
        self._closed = True
        if self._thread is not None and self._thread.is_alive():
            self._jobs.put(None)
            self._thread.join(timeout=self.pyttsx3_timeout)
        self._thread = None

    # ------------------------------------------------------------- internals
    def _remember(self, key: str, audio: np.ndarray) -> None:
        self._memory[key] = audio
        if len(self._memory) > self.memory_items:
            self._memory.popitem(last=False)

    async def _load_or_synthesize(self, text: str, key: str) -> np.ndarray:
        path = self.cache_dir / f"{key}.wav"
        if not await asyncio.to_thread(wav_complete, path):
            await self._synthesize(text, path)
        try:
            audio = await asyncio.to_thread(load_audio, path)
        except AudioError as exc:
            path.unlink(missing_ok=True)
            raise TtsError(f"speech for {text[:40]!r} is unreadable: {exc}") from None
        audio.flags.writeable = False
        return audio

    def _temp_path(self, path: Path, how: str) -> Path:
        return path.with_name(f"{path.stem}.{how}.{os.getpid()}.{id(self):x}.tmp")

    async def _synthesize(self, text: str, path: Path) -> None:
        self.syntheses += 1
        if self.use_pyttsx3 and not self._busy_abandoned:
            tmp = self._temp_path(path, "pyttsx3")
            try:
                await self._pyttsx3(text, tmp)
            except Exception as exc:
                tmp.unlink(missing_ok=True)
                error = f"{type(exc).__name__}: {exc}"
                self.fallback_errors.append(error)
                log.warning(
                    "tts.pyttsx3_failed",
                    error=error,
                    text=text[:40],
                    fallback="espeak-ng",
                )
                self.fallbacks += 1
            else:
                tmp.replace(path)
                return
        tmp = self._temp_path(path, "espeak")
        try:
            await self._espeak_command(text, tmp)
            tmp.replace(path)
        finally:
            tmp.unlink(missing_ok=True)

    async def _pyttsx3(self, text: str, out: Path) -> None:
        done: Future[None] = Future()
        self._ensure_thread()
        self._jobs.put((text, out, done))
        try:
            await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(done)), self.pyttsx3_timeout)
        except TimeoutError:
            if not done.cancel():  # already running: the worker is busy with it
                self._busy_abandoned += 1
                loop = asyncio.get_running_loop()
                done.add_done_callback(lambda _: self._abandoned_finished(loop, out))
            raise TtsError(f"pyttsx3 did not finish within {self.pyttsx3_timeout} s") from None

    def _abandoned_finished(self, loop: asyncio.AbstractEventLoop, out: Path) -> None:
        out.unlink(missing_ok=True)  # runs on the worker thread
        if not loop.is_closed():
            loop.call_soon_threadsafe(self._unbusy)

    def _unbusy(self) -> None:
        self._busy_abandoned -= 1

    async def _espeak_command(self, text: str, out: Path) -> None:
        exe = shutil.which("espeak-ng")
        if exe is None:
            raise TtsError("espeak-ng is not installed (Debian package espeak-ng)")
        args = [exe, "-s", str(self.rate_wpm), "-w", str(out)]
        if self.voice:
            args += ["-v", self.voice]
        proc = await asyncio.create_subprocess_exec(
            *args, "--", text, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        try:
            _, err = await asyncio.wait_for(proc.communicate(), self.command_timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise TtsError(f"espeak-ng did not finish within {self.command_timeout} s") from None
        if proc.returncode != 0 or not wav_complete(out):
            detail = err.decode(errors="replace").strip() or "no complete WAV written"
            raise TtsError(f"espeak-ng failed (exit {proc.returncode}): {detail}")

    # ------------------------------------------------------------ the worker
    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._worker, name="tts", daemon=True)
            self._thread.start()

    def _worker(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            text, out, done = job
            if not done.set_running_or_notify_cancel():
                continue  # its caller gave up before we started
            try:
                self._speak(text, out)
            except Exception as exc:
                done.set_exception(exc)
            else:
                done.set_result(None)

    def _speak(self, text: str, out: Path) -> None:
        """One utterance with pyttsx3 (worker thread only)."""
        import pyttsx3  # imported here: loading libespeak-ng is the worker's business

        if self._engine is None:
            engine = pyttsx3.init()
            engine.setProperty("rate", self.rate_wpm)
            if self.voice:
                engine.setProperty("voice", self.voice)
            self._engine = engine
        outcome: list[bool] = []
        finished = threading.Event()

        def on_end(name: str, completed: bool) -> None:
            outcome.append(completed)
            finished.set()

        token = self._engine.connect("finished-utterance", on_end)
        try:
            self._engine.save_to_file(text, str(out))
            self._engine.runAndWait()
            if not finished.wait(self.pyttsx3_timeout):
                raise TtsError("pyttsx3 sent no finished-utterance event")
        finally:
            self._engine.disconnect(token)
        # The driver writes the file, then reports completed=True; back to back it
        # may also report a stale completed=False (its stop flag from the previous
        # loop), before or after. The output file, new for every attempt, decides.
        deadline = time.monotonic() + WRITE_GRACE
        while not wav_complete(out):
            if time.monotonic() > deadline:
                what = "wrote no complete WAV" if any(outcome) else "did not complete"
                raise TtsError(f"pyttsx3 {what} for {text[:40]!r}")
            time.sleep(0.01)
