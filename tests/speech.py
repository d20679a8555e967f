"""Spoken test audio: espeak-ng sentences rendered to 8 kHz int16 (process-isolated CLI)."""

from __future__ import annotations

import io
import subprocess
import wave
from pathlib import Path

import numpy as np

from media.resample import resample

RATE = 8000


def say(text: str, *, voice: str = "en-us", speed: int = 150, rate: int = RATE) -> np.ndarray:
    """``text`` spoken by espeak-ng's ``voice``, as mono int16 at ``rate`` Hz."""
    wav = subprocess.run(
        ["espeak-ng", "-v", voice, "-s", str(speed), "--stdout", text],
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    with wave.open(io.BytesIO(wav)) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.int16)
        src = w.getframerate()
    return resample(pcm, src, rate)


def place(length_s: float, *parts: tuple[float, np.ndarray], rate: int = RATE) -> np.ndarray:
    """Silence of ``length_s`` seconds with each ``(start_s, pcm)`` laid in at its start."""
    out = np.zeros(int(length_s * rate), dtype=np.int16)
    for start, pcm in parts:
        i = int(start * rate)
        out[i : i + len(pcm)] = pcm[: len(out) - i]
    return out


def write_wav(path: Path, pcm: np.ndarray, rate: int = RATE) -> Path:
    """``pcm`` (mono, or ``(n, 2)`` stereo) as a 16-bit WAV at ``path``."""
    channels = 1 if pcm.ndim == 1 else pcm.shape[1]
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.ascontiguousarray(pcm, dtype="<i2").tobytes())
    return path


def words_of(text: str) -> list[str]:
    """Lower-case words without punctuation (for keyword checks)."""
    return "".join(c.lower() if c.isalnum() or c.isspace() else " " for c in text).split()
