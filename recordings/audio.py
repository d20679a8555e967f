"""Reading call recordings: 16-bit (or 8-bit) PCM WAV, mono or stereo.

Errors name the file and what is wrong with it, and say how to fix it, so a
batch over many recordings can report a bad file and go on with the others.
"""

from __future__ import annotations

import struct
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["Audio", "WavError", "read_wav"]


class WavError(ValueError):
    """A recording that cannot be read, with the file named in the message."""


@dataclass(frozen=True)
class Audio:
    """Samples of a recording: ``pcm`` is int16 shaped ``(frames, channels)``."""

    pcm: np.ndarray
    rate: int
    path: Path

    @property
    def channels(self) -> int:
        return int(self.pcm.shape[1])

    @property
    def duration(self) -> float:
        return self.pcm.shape[0] / self.rate if self.rate else 0.0

    def channel(self, index: int) -> np.ndarray:
        """One channel as a contiguous mono int16 array."""
        return np.ascontiguousarray(self.pcm[:, index])


_FIX = "convert it with `sox IN.wav -b 16 -e signed-integer OUT.wav` (any rate, 1 or 2 channels)"


def read_wav(path: Path | str) -> Audio:
    """Read ``path`` (PCM WAV, 8 or 16 bit, 1 or 2 channels) as int16.

    A file cut short (the writer crashed mid-block) is read up to its last
    whole frame. Raises :class:`WavError` naming the file otherwise.
    """
    p = Path(path)
    try:
        with wave.open(str(p), "rb") as w:
            channels, width, rate, frames = (
                w.getnchannels(),
                w.getsampwidth(),
                w.getframerate(),
                w.getnframes(),
            )
            raw = w.readframes(frames)
    except FileNotFoundError:
        raise WavError(f"{p}: no such file") from None
    except IsADirectoryError:
        raise WavError(f"{p}: is a folder, not a WAV file") from None
    except PermissionError:
        raise WavError(f"{p}: permission denied; make the file readable") from None
    except (wave.Error, EOFError, struct.error, RuntimeError, ValueError, OSError) as exc:
        # the stdlib parser raises bare RuntimeError/ValueError on some damaged headers
        detail = str(exc) or type(exc).__name__
        raise WavError(f"{p}: not a readable PCM WAV file ({detail}); {_FIX}") from None
    if channels not in (1, 2):
        raise WavError(f"{p}: {channels} channels; recordings have 1 or 2 ({_FIX})")
    if width not in (1, 2):
        raise WavError(f"{p}: {8 * width}-bit samples; expected 8 or 16-bit PCM ({_FIX})")
    if rate < 4000:
        raise WavError(f"{p}: sample rate {rate} Hz is not audio; {_FIX}")
    usable = len(raw) - len(raw) % (channels * width)
    if width == 2:
        pcm = np.frombuffer(raw[:usable], dtype="<i2").astype(np.int16)
    else:
        pcm = ((np.frombuffer(raw[:usable], dtype=np.uint8).astype(np.int16) - 128) << 8).astype(
            np.int16
        )
    return Audio(pcm.reshape(-1, channels), rate, p)
