"""TTS prompts: real speech from pyttsx3/espeak-ng, cached, off the event loop."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np

from media.prompts.tts import TtsRenderer

PHRASES = [f"Press {n} for option number {n}." for n in range(1, 11)]


def _band_energy_ratio(audio: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(audio.astype(np.float64))) ** 2
    freqs = np.fft.rfftfreq(len(audio), 1 / 8000)
    band = spectrum[(freqs >= 300) & (freqs <= 3400)].sum()
    return float(band / spectrum.sum())


async def test_renders_speech_and_caches(tmp_path: Path) -> None:
    tts = TtsRenderer(tmp_path)
    try:
        text = "Welcome to customer support. Please hold."
        audio = await tts.render(text)
        assert audio.dtype == np.int16
        seconds = len(audio) / 8000
        assert 1.5 < seconds < 6.0, seconds  # seven words at 160 words a minute
        assert np.sqrt(np.mean(audio.astype(np.float64) ** 2)) > 500
        assert _band_energy_ratio(audio) > 0.6
        again = await tts.render(text)
        assert again is audio and tts.syntheses == 1
        assert tts.fallbacks == 0  # pyttsx3 itself produced it
    finally:
        tts.close()
    # A second renderer on the same folder reads from disk, synthesizing nothing.
    other = TtsRenderer(tmp_path)
    try:
        assert np.array_equal(await other.render(text), audio)
        assert other.syntheses == 0
    finally:
        other.close()


async def test_concurrent_prompts_all_rendered_and_loop_keeps_running(tmp_path: Path) -> None:
    tts = TtsRenderer(tmp_path)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.005)
            ticks += 1

    task = asyncio.ensure_future(ticker())
    try:
        results = await tts.render_many(PHRASES + PHRASES[:3])
    finally:
        task.cancel()
        tts.close()
    assert set(results) == set(PHRASES)
    assert tts.syntheses == len(PHRASES)  # duplicates coalesced
    lengths = [len(results[p]) for p in PHRASES]
    assert all(n > 8000 for n in lengths)
    assert len({a.tobytes() for a in results.values()}) == len(PHRASES)
    assert ticks > 0  # the event loop ran while speech was synthesized
    assert tts.fallbacks == 0, list(tts.fallback_errors)


async def test_espeak_fallback_path(tmp_path: Path) -> None:
    tts = TtsRenderer(tmp_path, use_pyttsx3=False)
    audio = await tts.render("Goodbye.")
    assert 0.3 < len(audio) / 8000 < 3.0
    assert tts.syntheses == 1


async def test_a_pyttsx3_failure_falls_back_and_says_why(tmp_path: Path) -> None:
    tts = TtsRenderer(tmp_path, pyttsx3_timeout=1e-6)  # no engine answers that fast
    try:
        audio = await tts.render("Please hold.")
        assert 0.3 < len(audio) / 8000 < 3.0  # the espeak-ng command rendered it
        assert tts.fallbacks == 1
        assert len(tts.fallback_errors) == 1
        assert "TtsError: pyttsx3 did not finish within" in tts.fallback_errors[0]
    finally:
        tts.close()
