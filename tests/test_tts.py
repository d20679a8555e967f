"""TTS prompts: real speech from pyttsx3/espeak-ng, cached, off the event loop."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import numpy as np
import pytest

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


def _cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


async def test_a_pyttsx3_process_crashing_mid_prompt_costs_one_fallback(tmp_path: Path) -> None:
    """pyttsx3 runs in its own process (media/prompts/tts_child.py): when that
    process dies of a fault while it speaks (SIGSEGV, as libespeak-ng once did
    inside the engine), the prompt comes from the espeak-ng command, the reason
    is kept, and the next prompt gets pyttsx3 again in a new process."""
    tts = TtsRenderer(tmp_path)
    try:
        await tts.render("Thank you for calling.")
        child = tts._child
        assert child is not None and child.pid != os.getpid()
        assert tts.child_starts == 1 and tts.fallbacks == 0
        idle = _cpu_ticks(child.pid)
        long_text = " ".join(f"Option {n}: please hold for the next agent." for n in range(60))
        task = asyncio.ensure_future(tts.render(long_text))
        for _ in range(500):  # until it is busy on our prompt (~30 ms of CPU)
            await asyncio.sleep(0.01)
            if _cpu_ticks(child.pid) - idle >= 3:
                break
        else:
            raise AssertionError("the pyttsx3 process never started on the prompt")
        os.kill(child.pid, signal.SIGSEGV)
        audio = await task
        assert len(audio) / 8000 > 30  # all of it, from the espeak-ng command
        assert tts.fallbacks == 1
        assert list(tts.fallback_errors) == [
            "TtsError: the pyttsx3 process died (killed by SIGSEGV)"
        ]
        again = await tts.render("Your call is important to us.")
        assert len(again) > 8000
        assert tts.fallbacks == 1  # pyttsx3 again, in a new process
        assert tts.child_starts == 2
    finally:
        tts.close()
    assert tts._child is None  # close() ended the process


async def test_a_pyttsx3_process_found_dead_is_replaced_before_use(tmp_path: Path) -> None:
    tts = TtsRenderer(tmp_path)
    try:
        await tts.render("Thank you for calling.")
        child = tts._child
        assert child is not None
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
        await tts.render("Please stay on the line.")
        assert (tts.child_starts, tts.fallbacks) == (2, 0)
    finally:
        tts.close()


async def test_close_ends_the_pyttsx3_process(tmp_path: Path) -> None:
    tts = TtsRenderer(tmp_path)
    await tts.render("Goodbye.")
    child = tts._child
    assert child is not None and child.poll() is None
    tts.close()
    assert child.poll() == 0  # it saw its socket close and exited by itself


async def test_a_pyttsx3_that_cannot_load_is_reported_and_not_restarted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A host whose pyttsx3 cannot load (here shadowed by a package whose import
    fails as a missing libespeak-ng would) gets every prompt from the espeak-ng
    command, the reason in fallback_errors, and one pyttsx3 process, not one
    per prompt."""
    shadow = tmp_path / "shadow" / "pyttsx3"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text(
        'raise ImportError("libespeak-ng.so.1: cannot open shared object file")\n'
    )
    monkeypatch.setenv("PYTHONPATH", str(shadow.parent))  # the child inherits it
    tts = TtsRenderer(tmp_path / "cache")
    try:
        for text in ("Hello.", "Goodbye."):
            audio = await tts.render(text)
            assert 0.2 < len(audio) / 8000 < 3.0
        assert tts.fallbacks == 2 and tts.child_starts == 1
        assert all(
            "pyttsx3 could not start: ImportError: libespeak-ng.so.1" in e
            for e in tts.fallback_errors
        ), list(tts.fallback_errors)
    finally:
        tts.close()
