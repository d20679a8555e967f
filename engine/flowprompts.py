"""Audio for flow prompts: speech, files under the flows folder, ``sound:NAME``.

:func:`prerender` renders every static text of a flow set with the TTS
renderer and loads every audio file it names, before the flow set takes
calls; a call then finds its prompt with a dict lookup. Texts that depend on
call variables (Jinja templates) are rendered when a call reaches them: the
renderer works on its own thread and the disk loads run in threads, so the
event loop never waits on them. Results are :class:`~media.prompts.Prompt`
objects, encoded once per codec and frame size and shared by every call.

Voices: a text's voice, else (for a text in another language than the
renderer's) the language code as espeak-ng voice (``es``, ``ja``), each
rendered by its own command-line renderer; everything else by the engine's
main renderer.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from ivr.actions import PlayFile, PromptItem, SayText, Silence, Tone
from ivr.model import Flow
from ivr.prompts import play_refs, static_speech
from media.prompts.audio import AudioError, load_audio
from media.prompts.player import Prompt
from media.prompts.sounds import SCHEME, SoundLibrary, SoundNotFound
from media.prompts.tones import beep, silence
from media.prompts.tts import TtsError, TtsRenderer

__all__ = ["PrerenderReport", "PromptError", "PromptLibrary", "espeak_voices", "prerender"]

log = structlog.get_logger("engine.flowprompts")


def espeak_voices() -> frozenset[str]:
    """Lower-cased language codes (and their first subtag), voice names and
    files of ``espeak-ng --voices``; empty when espeak-ng cannot be run."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        return frozenset()
    try:
        out = subprocess.run(
            [exe, "--voices"], capture_output=True, text=True, timeout=10, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return frozenset()
    known: set[str] = set()
    for line in out.splitlines()[1:]:
        cols = line.split()
        if len(cols) >= 5:
            lang, name, file = cols[1].lower(), cols[3].lower(), cols[4].lower()
            known.update((lang, lang.split("-", 1)[0], name, file))
    return frozenset(known)


class PromptError(LookupError):
    """A prompt part that cannot be played; the message says which and why."""


@dataclass
class PrerenderReport:
    """What :func:`prerender` did: counts, failures (``(part, error)``), duration."""

    speech: int = 0
    files: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when every prompt could be prepared."""
        return not self.errors


class PromptLibrary:
    """Prompts of flows, cached (see the module docstring).

    ``tts`` renders texts in ``language`` without an explicit voice;
    ``voice_renderer`` makes the renderer of another voice (default: the
    ``espeak-ng`` command, same cache folder). ``dynamic_items`` bounds the
    cache of texts rendered at call time.
    """

    def __init__(
        self,
        *,
        flows_dir: Path,
        sounds: SoundLibrary,
        tts: TtsRenderer | None,
        language: str = "en",
        voice_renderer: Callable[[str], TtsRenderer] | None = None,
        dynamic_items: int = 256,
    ) -> None:
        self.flows_dir = Path(flows_dir)
        self.sounds = sounds
        self.tts = tts
        self.language = language
        self._voice_renderer = voice_renderer
        self.dynamic_items = dynamic_items
        self._voices: dict[str, TtsRenderer] = {}
        self._static: dict[tuple[str, str | None], Prompt] = {}
        self._dynamic: OrderedDict[tuple[str, str | None], Prompt] = OrderedDict()
        self._files: dict[str, tuple[Prompt, tuple[int, int] | None]] = {}
        self._file_lock = asyncio.Lock()
        self._tones: dict[object, Prompt] = {}
        self._known_voices: frozenset[str] | None = None

    def close(self) -> None:
        """Stop every TTS renderer's worker (later speech raises PromptError)."""
        for renderer in (self.tts, *self._voices.values()):
            if renderer is not None:
                renderer.close()

    # ----------------------------------------------------------------- speech
    def _voice_of(self, item: SayText) -> str | None:
        if item.voice:
            return item.voice
        return None if item.language == self.language else item.language

    async def _check_voice(self, voice: str) -> None:
        """espeak-ng speaks an unknown voice with its default one, silently: refuse it."""
        if self._known_voices is None:
            self._known_voices = await asyncio.to_thread(espeak_voices)
        known = self._known_voices
        if known and voice.split("+", 1)[0].lower() not in known:
            raise PromptError(
                f"unknown TTS voice {voice!r}: use a language code (en, es), a voice name or"
                " file as `espeak-ng --voices` lists them (gmw/en-us, roa/es)"
            )

    async def renderer(self, voice: str | None) -> TtsRenderer:
        """The renderer of ``voice`` (None: the main one); PromptError for an unknown voice."""
        if self.tts is None:
            raise PromptError("no TTS renderer is configured: say texts cannot be spoken")
        if voice is None or voice == self.tts.voice:
            return self.tts
        found = self._voices.get(voice)
        if found is None:
            await self._check_voice(voice)
            make = self._voice_renderer or (
                lambda v: TtsRenderer(
                    self.tts.cache_dir,  # type: ignore[union-attr]
                    voice=v,
                    rate_wpm=self.tts.rate_wpm,  # type: ignore[union-attr]
                    use_pyttsx3=False,
                )
            )
            found = self._voices[voice] = make(voice)
        return found

    async def speech(self, item: SayText, *, static: bool = False) -> Prompt:
        """``item`` spoken; cached (``static``: kept for good, else in the LRU)."""
        voice = self._voice_of(item)
        key = (item.text, voice)
        hit = self._static.get(key)
        if hit is None:
            hit = self._dynamic.get(key)
            if hit is not None:
                self._dynamic.move_to_end(key)
        if hit is not None:
            if static:
                self._static[key] = hit
            return hit
        try:
            audio = await (await self.renderer(voice)).render(item.text)
        except TtsError as exc:
            raise PromptError(f"cannot speak {item.text[:60]!r} (voice {voice}): {exc}") from None
        prompt = Prompt(audio, name=f"say:{item.text[:40]}")
        if static:
            self._static[key] = prompt
        else:
            self._dynamic[key] = prompt
            if len(self._dynamic) > self.dynamic_items:
                self._dynamic.popitem(last=False)
        return prompt

    # ------------------------------------------------------------------ files
    def _key(self, ref: str, folder: Path | None) -> str:
        """``sound:NAME`` as is; a file as its absolute path (inside ``folder``)."""
        if ref.startswith(SCHEME):
            return ref
        root = (folder or self.flows_dir).resolve()
        path = (root / ref).resolve()
        if not path.is_relative_to(root):
            raise PromptError(f"play {ref!r}: the file must be inside the flows folder {root}")
        return str(path)

    @staticmethod
    def _stat(key: str) -> tuple[int, int] | None:
        if key.startswith(SCHEME):
            return None
        try:
            st = Path(key).stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def _load(self, ref: str, key: str) -> tuple[Prompt, tuple[int, int] | None]:
        """Read and decode a file (in a worker thread)."""
        if key.startswith(SCHEME):
            try:
                return self.sounds.load(key), None
            except (SoundNotFound, AudioError) as exc:
                raise PromptError(f"play {ref!r}: {exc}") from None
        stamp = self._stat(key)
        try:
            audio = load_audio(key)
        except AudioError as exc:
            raise PromptError(f"play {ref!r}: {exc}") from None
        return Prompt(audio, name=ref), stamp

    async def file(
        self, ref: str, *, folder: Path | None = None, reload_changed: bool = False
    ) -> Prompt:
        """The audio of ``ref``: ``sound:NAME``, or a path relative to ``folder``
        (the flow set's folder; default ``flows_dir``) that must stay inside it.

        Loaded once; ``reload_changed`` re-reads a file whose size or
        modification time changed (prerender of a new flow set does).
        """
        key = self._key(ref, folder)
        cached = self._files.get(key)
        if cached is not None and not reload_changed:
            return cached[0]
        async with self._file_lock:  # SoundLibrary's cache is not thread-safe
            cached = self._files.get(key)
            if cached is not None:
                if not reload_changed:
                    return cached[0]
                stamp = await asyncio.to_thread(self._stat, key)
                if stamp is None or stamp == cached[1]:
                    return cached[0]
            loaded = await asyncio.to_thread(self._load, ref, key)
            self._files[key] = loaded
            return loaded[0]

    # ------------------------------------------------------------------ parts
    def tone(self, item: Tone | Silence) -> Prompt:
        """A tone or a silence (built once per kind)."""
        key: object = item
        found = self._tones.get(key)
        if found is None:
            audio = beep() if isinstance(item, Tone) else silence(item.ms)
            found = self._tones[key] = Prompt(audio, name=repr(item))
        return found

    async def part(self, item: PromptItem, *, folder: Path | None = None) -> Prompt:
        """One resolved prompt part as audio; raises PromptError."""
        if isinstance(item, SayText):
            return await self.speech(item)
        if isinstance(item, PlayFile):
            return await self.file(item.ref, folder=folder)
        return self.tone(item)

    async def parts(
        self,
        items: Sequence[PromptItem],
        on_error: Callable[[PromptItem, str], None],
        *,
        folder: Path | None = None,
    ) -> list[Prompt]:
        """Every part that can be played, in order; the others are reported to
        ``on_error`` and skipped (a broken prompt never ends a call). Files are
        relative to ``folder`` (the flow set's)."""
        out: list[Prompt] = []
        for item in items:
            try:
                out.append(await self.part(item, folder=folder))
            except PromptError as exc:
                on_error(item, str(exc))
        return out


async def prerender(
    flows: Iterable[Flow] | object, library: PromptLibrary, *, progress_every: int = 25
) -> PrerenderReport:
    """Render every static text and load every audio file of ``flows`` (a
    flow set or its flows; files relative to the flow set's ``folder``) into
    ``library``; failures are listed, not raised.

    Call it before a flow set takes calls (at start-up, and for each
    reloaded version before it is published).
    """
    started = time.monotonic()
    inner = getattr(flows, "flows", None)
    folder = getattr(flows, "folder", None)
    flow_list: list[Flow] = list(inner.values() if inner is not None else flows)  # type: ignore[arg-type]
    texts = static_speech(flow_list)
    refs = play_refs(flow_list)
    report = PrerenderReport()
    total = len(texts) + len(refs)
    done = 0

    async def one_text(item: SayText) -> None:
        nonlocal done
        try:
            await library.speech(item, static=True)
            report.speech += 1
        except PromptError as exc:
            report.errors.append((f"say {item.text[:60]!r}", str(exc)))
        done += 1
        if progress_every and done % progress_every == 0:
            log.info("prompts.prerender_progress", done=done, total=total)

    async def one_file(ref: str) -> None:
        nonlocal done
        try:
            await library.file(ref, folder=folder, reload_changed=True)
            report.files += 1
        except PromptError as exc:
            report.errors.append((f"play {ref!r}", str(exc)))
        done += 1

    await asyncio.gather(*(one_text(t) for t in texts), *(one_file(r) for r in refs))
    report.seconds = time.monotonic() - started
    log.info(
        "prompts.prerendered",
        speech=report.speech,
        files=report.files,
        errors=len(report.errors),
        seconds=round(report.seconds, 3),
    )
    for what, error in report.errors:
        log.warning("prompts.prerender_failed", part=what, error=error)
    return report
