"""Text-to-speech prompts rendered ahead of time, cached, never on the event loop.

pyttsx3 (driving libespeak-ng) is not thread-safe and loses output when
used back to back (../shared/SPEECH.md), and a fault in libespeak-ng ends
the process it runs in (:mod:`media.prompts.tts_child` says how the engine
died of one). So each :class:`TtsRenderer` runs pyttsx3 in ONE child process
(``python -m media.prompts.tts_child``, started on first use, niced), fed one
utterance at a time by a worker thread that only waits on the child's socket:
``save_to_file`` + ``runAndWait`` there, then a wait (bounded) for the
``finished-utterance`` event and for the WAV to be complete (RIFF size equal
to the file size, a non-empty data chunk inside it). If pyttsx3 raises,
reports an incomplete utterance, does not finish within ``pyttsx3_timeout``
(the child is killed) or its process dies, the ``espeak-ng -w`` command
(same voice) renders the prompt instead, and a warning is logged; the next
prompt starts a new child. While a timed-out utterance still occupies the
worker, new prompts go straight to the command.

Results are 8 kHz int16 mono arrays (read-only: they are shared), cached on
disk as ``<sha256(text|voice|rate)>.wav`` (written to a temporary name and
renamed, so a crash never leaves a half file under the final name) and in
memory (LRU). Concurrent requests for the same text share one synthesis.

libespeak-ng and pyttsx3's engine registry are process-wide: create one
renderer per process (the composition root does).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
from collections import OrderedDict, deque
from collections.abc import Iterable
from concurrent.futures import Future
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np
import structlog

from media.prompts.audio import AudioError, load_audio, wav_complete

__all__ = ["TtsError", "TtsRenderer"]

log = structlog.get_logger("media.prompts.tts")

#: Added to the engine's niceness for the pyttsx3 process: rendering can wait, media cannot.
TTS_NICE = 10


class TtsError(RuntimeError):
    """No audio could be produced for a prompt; the message says why."""


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
        # The pyttsx3 process and its socket: touched by the worker thread only.
        self._child: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None
        #: pyttsx3 processes started so far (a restart after a death or a timeout adds one).
        self.child_starts = 0

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
        """Stop the worker thread after the utterances already queued, and its
        pyttsx3 process; later :meth:`render` calls raise TtsError."""
        self._closed = True
        if self._thread is not None and self._thread.is_alive():
            self._jobs.put(None)
            self._thread.join(timeout=self.pyttsx3_timeout)
        if self._thread is None or not self._thread.is_alive():
            self._stop_child()  # the worker is done with it
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
        """One utterance in the pyttsx3 process (worker thread only)."""
        conn = self._ensure_child()
        try:
            conn.send((text, str(out), self.pyttsx3_timeout))
            if not conn.poll(self.pyttsx3_timeout):
                self._stop_child()
                raise TtsError(
                    f"pyttsx3 did not finish within {self.pyttsx3_timeout} s (its process was"
                    " stopped; the next prompt starts another)"
                )
            reply = conn.recv()
        except (EOFError, OSError):
            code = self._stop_child()
            raise TtsError(f"the pyttsx3 process died ({_exit_text(code)})") from None
        if reply is not None:
            raise TtsError(str(reply))

    def _ensure_child(self) -> Connection:
        if self._conn is not None and self._child is not None and self._child.poll() is None:
            return self._conn
        self._stop_child()
        ours, theirs = socket.socketpair()
        try:
            args = [sys.executable, "-m", "media.prompts.tts_child", str(theirs.fileno())]
            args += [self.voice or "", str(self.rate_wpm)]
            child = subprocess.Popen(
                args, pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, start_new_session=True
            )
        except OSError as exc:
            ours.close()
            raise TtsError(f"cannot start the pyttsx3 process: {exc}") from None
        finally:
            theirs.close()
        with contextlib.suppress(OSError):  # already gone: the first request says so
            own = os.getpriority(os.PRIO_PROCESS, 0)
            os.setpriority(os.PRIO_PROCESS, child.pid, min(19, own + TTS_NICE))
        self._child, self._conn = child, Connection(ours.detach())
        self.child_starts += 1
        return self._conn

    def _stop_child(self) -> int | None:
        """End the pyttsx3 process (closing its socket ends it; a kill if it
        does not go); its exit code, None if there was none."""
        conn, child = self._conn, self._child
        self._conn = self._child = None
        if conn is not None:
            conn.close()
        if child is None:
            return None
        try:
            return child.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            child.kill()
            return child.wait()


def _exit_text(code: int | None) -> str:
    if code is None:
        return "no exit status"
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
        return f"killed by signal {-code}"
    return f"exit code {code}"
