"""``sound:NAME`` prompts: the project's own and the Asterisk core sounds, by name.

A name is a relative path without extension (``vm-intro``, ``digits/5``).
It resolves to the first existing file among the roots, in root order, and
within a root in :data:`EXTENSIONS` order: a WAV file of any format
(media.prompts.audio), or Asterisk's headerless 8 kHz mono formats
``.sln`` (signed 16-bit little-endian), ``.ulaw`` and ``.alaw``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from media.g711 import alaw_decode, ulaw_decode
from media.prompts.audio import AudioError, load_audio
from media.prompts.player import Prompt

__all__ = ["EXTENSIONS", "SCHEME", "SoundLibrary", "SoundNotFound"]

SCHEME = "sound:"
EXTENSIONS = (".wav", ".WAV", ".sln", ".ulaw", ".alaw")


class SoundNotFound(LookupError):
    """A sound name that is invalid or has no file; the message lists where we looked."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def _load_raw(path: Path) -> np.ndarray:
    """Asterisk's headerless formats: 8 kHz mono, the encoding in the extension."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise AudioError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if path.suffix == ".sln":
        data = data[: len(data) - len(data) % 2]
        audio = np.frombuffer(data, "<i2").astype(np.int16)
    else:
        audio = (ulaw_decode if path.suffix == ".ulaw" else alaw_decode)(data)
    if audio.size == 0:
        raise AudioError(f"{path}: empty: no audio samples")
    return audio


class SoundLibrary:
    """Resolves ``sound:vm-intro`` / ``sound:digits/5`` under ordered roots.

    The engine passes ``[flows/prompts, /usr/share/asterisk/sounds/en]`` so
    the project's prompts override Asterisk's. Decoded prompts are kept in
    an LRU cache of at most ``cache_size`` entries, so a prompt played by
    many calls is read and encoded once; ``hits``/``misses`` count lookups.
    Loading reads the disk: call :meth:`load` ahead of time or from a thread
    when the event loop must not wait on it.
    """

    def __init__(self, roots: Sequence[Path | str], cache_size: int = 512) -> None:
        if cache_size < 1:
            raise ValueError(f"SoundLibrary: cache_size must be at least 1, got {cache_size}")
        self.roots = [Path(r) for r in roots]
        self.cache_size = cache_size
        self.hits = 0
        self.misses = 0
        self._cache: OrderedDict[str, Prompt] = OrderedDict()

    @staticmethod
    def name_of(ref: str) -> str:
        """``sound:digits/5`` or ``digits/5`` -> ``digits/5``; SoundNotFound if invalid.

        A valid name is a relative path of non-empty parts without ``..``,
        backslashes or control characters.
        """
        name = ref[len(SCHEME) :] if ref.startswith(SCHEME) else ref
        parts = name.split("/")
        if (
            not name
            or name.startswith("/")
            or any(p in ("", ".", "..") for p in parts)
            or "\\" in name
            or any(ord(c) < 32 for c in name)
        ):
            raise SoundNotFound(
                f"invalid sound name {ref!r}: use a relative name such as sound:vm-intro "
                "or sound:digits/5"
            )
        return name

    def path(self, ref: str) -> Path:
        """The file a sound name resolves to; raises :class:`SoundNotFound`
        listing the roots and extensions tried."""
        name = self.name_of(ref)
        for root in self.roots:
            for ext in EXTENSIONS:
                candidate = root / f"{name}{ext}"
                if candidate.is_file():
                    return candidate
        looked = ", ".join(str(r) for r in self.roots) or "(no roots configured)"
        raise SoundNotFound(
            f"sound {name!r} not found: looked for {name}{{{','.join(EXTENSIONS)}}} under {looked}"
        )

    def exists(self, ref: str) -> bool:
        """Whether ``ref`` names a file (False for invalid names too)."""
        try:
            self.path(ref)
        except SoundNotFound:
            return False
        return True

    def load(self, ref: str) -> Prompt:
        """The decoded prompt, from the cache when there.

        Raises :class:`SoundNotFound` (no such name) or AudioError (a file
        that does not decode; it is not cached, so a fixed file is re-read).
        """
        name = self.name_of(ref)
        cached = self._cache.get(name)
        if cached is not None:
            self.hits += 1
            self._cache.move_to_end(name)
            return cached
        self.misses += 1
        path = self.path(name)
        audio = load_audio(path) if path.suffix.lower() == ".wav" else _load_raw(path)
        prompt = Prompt(audio, name=name)
        self._cache[name] = prompt
        if len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return prompt

    def cached(self) -> list[str]:
        """Names in the cache, least recently used first."""
        return list(self._cache)
