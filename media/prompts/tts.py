"""Text-to-speech prompts rendered ahead of time, cached, never on the event loop.

pyttsx3 (driving espeak-ng) is not thread-safe and is known to lose output
when used back to back (../shared/SPEECH.md): here it runs on ONE dedicated
worker thread fed by a queue, each synthesis waits for the WAV to be complete
(RIFF sizes consistent and data present), and a failure or time-out falls
back to the ``espeak-ng -w`` command, which is process-isolated. Results are
8 kHz int16 audio, cached on disk by sha256(text|voice|rate) and in memory;
concurrent requests for the same text share one synthesis.
"""

from __future__ import annotations

import asyncio
import hashlib
import queue
import shutil
import struct
import subprocess
import tempfile
import threading
from collections.abc import Iterable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from media.prompts.audio import AudioError, load_audio

log = structlog.get_logger("media.prompts.tts")

SYNTH_TIMEOUT = 20.0


class TtsError(RuntimeError):
    """Neither pyttsx3 nor espeak-ng produced audio; the message says why."""


def _wav_complete(path: Path) -> bool:
    """A WAV whose RIFF size matches the file and that holds some samples."""
    try:
        data = path.read_bytes()
    except OSError:
        return False
    if len(data) < 48 or data[:4] != b"RIFF":
        return False
    (riff_size,) = struct.unpack_from("<I", data, 4)
    return riff_size + 8 == len(data) and len(data) > 1044


class TtsRenderer:
    """Renders prompt text to 8 kHz audio (see module docstring).

    ``render`` is a coroutine; the synthesis itself runs on the worker thread.
    ``syntheses`` counts real syntheses (cache hits do not count).
    """

    def __init__(
        self,
        cache_dir: Path,
        *,
        voice: str | None = None,
        rate_wpm: int = 160,
        use_pyttsx3: bool = True,
    ) -> None:
        self.cache_dir = Path(cache_dir)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self.voice = voice
        self.rate_wpm = rate_wpm
        self.use_pyttsx3 = use_pyttsx3
        self.syntheses = 0
        self.fallbacks = 0
        self._memory: dict[str, np.ndarray] = {}
        self._pending: dict[str, asyncio.Future[np.ndarray]] = {}
        self._jobs: queue.Queue[tuple[str, Path, Future[None]] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._engine: Any = None

    def key(self, text: str) -> str:
        raw = f"{text}|{self.voice or ''}|{self.rate_wpm}".encode()
        return hashlib.sha256(raw).hexdigest()

    def cached_path(self, text: str) -> Path:
        return self.cache_dir / f"{self.key(text)}.wav"

    async def render(self, text: str) -> np.ndarray:
        """The prompt for ``text`` as 8 kHz int16 audio."""
        if not text.strip():
            raise TtsError("cannot speak an empty prompt")
        key = self.key(text)
        hit = self._memory.get(key)
        if hit is not None:
            return hit
        pending = self._pending.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[np.ndarray] = loop.create_future()
        self._pending[key] = fut
        try:
            audio = await self._load_or_synthesize(text, key)
            self._memory[key] = audio
            fut.set_result(audio)
            return audio
        except BaseException as exc:
            fut.set_exception(exc)
            fut.exception()  # mark retrieved: other waiters re-raise it themselves
            raise
        finally:
            del self._pending[key]

    async def render_many(self, texts: Iterable[str]) -> dict[str, np.ndarray]:
        """Render several prompts (e.g. all prompts of a flow before publishing it)."""
        unique = list(dict.fromkeys(texts))
        results = await asyncio.gather(*(self.render(t) for t in unique))
        return dict(zip(unique, results, strict=True))

    async def _load_or_synthesize(self, text: str, key: str) -> np.ndarray:
        path = self.cache_dir / f"{key}.wav"
        if not _wav_complete(path):
            await self._synthesize(text, path)
        try:
            return await asyncio.to_thread(load_audio, path)
        except AudioError as exc:
            path.unlink(missing_ok=True)
            raise TtsError(f"speech for {text[:40]!r} is unreadable: {exc}") from None

    async def _synthesize(self, text: str, path: Path) -> None:
        self.syntheses += 1
        tmp = path.with_suffix(".tmp.wav")
        tmp.unlink(missing_ok=True)
        done: Future[None] = Future()
        if self.use_pyttsx3:
            self._ensure_thread()
            self._jobs.put((text, tmp, done))
            try:
                await asyncio.wait_for(asyncio.wrap_future(done), SYNTH_TIMEOUT)
            except Exception as exc:  # pyttsx3 failed or hung: espeak-ng in a process
                log.warning("tts.pyttsx3_failed", error=str(exc) or type(exc).__name__)
                self.fallbacks += 1
                await self._espeak_cli(text, tmp)
        else:
            await self._espeak_cli(text, tmp)
        tmp.replace(path)

    async def _espeak_cli(self, text: str, out: Path) -> None:
        exe = shutil.which("espeak-ng")
        if exe is None:
            raise TtsError("espeak-ng is not installed (apt-get install espeak-ng)")
        args = [exe, "-s", str(self.rate_wpm), "-w", str(out)]
        if self.voice:
            args += ["-v", self.voice]
        proc = await asyncio.create_subprocess_exec(
            *args, "--", text, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        _, err = await asyncio.wait_for(proc.communicate(), SYNTH_TIMEOUT)
        if proc.returncode != 0 or not _wav_complete(out):
            raise TtsError(f"espeak-ng failed ({proc.returncode}): {err.decode(errors='replace')}")

    # ---------------------------------------------------------- the worker
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
            try:
                self._speak(text, out)
                done.set_result(None)
            except Exception as exc:
                done.set_exception(exc)

    def _speak(self, text: str, out: Path) -> None:
        import pyttsx3

        if self._engine is None:
            self._engine = pyttsx3.init()
            self._engine.setProperty("rate", self.rate_wpm)
            if self.voice:
                self._engine.setProperty("voice", self.voice)
        finished = threading.Event()

        def on_end(name: str, completed: bool) -> None:
            finished.set()

        token = self._engine.connect("finished-utterance", on_end)
        try:
            self._engine.save_to_file(text, str(out))
            self._engine.runAndWait()
            finished.wait(SYNTH_TIMEOUT)
        finally:
            self._engine.disconnect(token)
        # runAndWait can return before espeak's thread wrote the file: wait for it.
        for _ in range(200):
            if _wav_complete(out):
                return
            threading.Event().wait(0.025)
        raise TtsError(f"pyttsx3 wrote no complete WAV for {text[:40]!r}")

    def close(self) -> None:
        """Stop the worker thread."""
        if self._thread is not None and self._thread.is_alive():
            self._jobs.put(None)
            self._thread.join(timeout=5)
        self._thread = None


def tempdir() -> Path:
    """A fresh folder for a throw-away cache (tests, ``ivr simulate``)."""
    return Path(tempfile.mkdtemp(prefix="tts-"))
