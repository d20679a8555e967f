"""Prompt sources and playback; everything is 8 kHz int16 mono numpy audio.

- audio: ``load_audio(path)`` reads WAV of any common format, AudioError.
- sounds: ``SoundLibrary(roots)`` resolves ``sound:NAME``, SoundNotFound.
- tones: ``tone``, ``silence``, ``dtmf_tone``, ringback/busy/beep (dBm0 levels).
- tts: ``TtsRenderer(cache_dir)`` with ``await render(text)``, TtsError.
- player: ``Prompt`` (frames pre-encoded once) and the per-call ``Player``.
"""

from media.prompts.audio import AudioError, load_audio
from media.prompts.player import PlaybackFinished, Player, Prompt
from media.prompts.sounds import SoundLibrary, SoundNotFound
from media.prompts.tones import beep, busy, dtmf_tone, ringback, silence, tone
from media.prompts.tts import TtsError, TtsRenderer

__all__ = [
    "AudioError",
    "PlaybackFinished",
    "Player",
    "Prompt",
    "SoundLibrary",
    "SoundNotFound",
    "TtsError",
    "TtsRenderer",
    "beep",
    "busy",
    "dtmf_tone",
    "load_audio",
    "ringback",
    "silence",
    "tone",
]
