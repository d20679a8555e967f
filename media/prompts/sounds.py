"""``sound:NAME`` prompts: Asterisk core sounds and the project's own, by name."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

from media.prompts.audio import AudioError, load_audio
from media.prompts.player import Prompt

SCHEME = "sound:"
EXTENSIONS = (".wav", ".WAV")


class SoundNotFound(LookupError):
    """No file for a sound name; the message lists where we looked."""


class SoundLibrary:
    """Resolves ``sound:vm-intro`` / ``sound:digits/5`` under ordered roots.

    Decoded prompts are kept in an LRU cache of ``cache_size`` entries, so a
    prompt played by many calls is read and encoded once.
    """

    def __init__(self, roots: Sequence[Path], cache_size: int = 512) -> None:
        self.roots = [Path(r) for r in roots]
        self.cache_size = cache_size
        self._cache: OrderedDict[str, Prompt] = OrderedDict()

    @staticmethod
    def name_of(ref: str) -> str:
        name = ref[len(SCHEME) :] if ref.startswith(SCHEME) else ref
        if not name or name.startswith("/") or ".." in Path(name).parts:
            raise SoundNotFound(
                f"invalid sound name {ref!r}: use e.g. sound:vm-intro or sound:digits/5"
            )
        return name

    def path(self, ref: str) -> Path:
        """The file a sound name resolves to; raises :class:`SoundNotFound`."""
        name = self.name_of(ref)
        for root in self.roots:
            for ext in EXTENSIONS:
                candidate = root / f"{name}{ext}"
                if candidate.is_file():
                    return candidate
        looked = ", ".join(str(r) for r in self.roots)
        raise SoundNotFound(f"sound {name!r} not found as {name}.wav under: {looked}")

    def exists(self, ref: str) -> bool:
        try:
            self.path(ref)
        except SoundNotFound:
            return False
        return True

    def load(self, ref: str) -> Prompt:
        """The decoded prompt (cached); raises SoundNotFound or AudioError."""
        name = self.name_of(ref)
        cached = self._cache.get(name)
        if cached is not None:
            self._cache.move_to_end(name)
            return cached
        path = self.path(ref)
        try:
            prompt = Prompt(load_audio(path), name=name)
        except AudioError:
            raise
        self._cache[name] = prompt
        if len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return prompt
