"""Fixtures shared by the suite: an in-process engine on free ports."""

from __future__ import annotations

import asyncio
import collections
import gc
import random
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from engine.app import GREETING, Engine
from engine.config import EngineConfig
from engine.greeting import GreetingApplication
from media.prompts.audio import load_audio
from media.prompts.player import Prompt

ROOT = Path(__file__).resolve().parent.parent
FLOWS = ROOT / "flows"
TORTURE = ROOT.parent / "shared" / "testdata" / "sip-torture"


async def recordings_finished(engine: Engine, count: int = 1, timeout: float = 20) -> None:
    """Wait until ``count`` recordings are complete on disk and in the database (the
    recorder's storage process writes them after the call; reading the WAV before
    that can catch it short)."""
    recorder = engine.recorder
    assert recorder is not None, "the engine records no calls (capture off?)"
    deadline = time.monotonic() + timeout
    while recorder.finished < count:
        assert time.monotonic() < deadline, f"{recorder.finished} of {count} recordings finished"
        await asyncio.sleep(0.05)


def engine_config(tmp_path: Path, **overrides: object) -> EngineConfig:
    """An engine config on 127.0.0.1 with free SIP/HTTP ports and a random RTP range."""
    low = random.randrange(20000, 50000, 2)
    base = EngineConfig(
        sip_host="127.0.0.1",
        sip_port=0,
        http_host="127.0.0.1",
        http_port=0,
        rtp_low=low,
        rtp_high=low + 2000,
        data_dir=tmp_path / "data",
        flows_dir=FLOWS,
        transcribe_workers=0,  # no model-loading child processes unless a test asks for them
    )
    return base.__class__(**{**base.__dict__, **overrides})


def greeting_application() -> GreetingApplication:
    """The greeting application on the shipped greeting (whatever flows ship)."""
    return GreetingApplication(Prompt(load_audio(FLOWS / GREETING), name="greeting"))


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Engine]:
    """A started engine with the greeting application (not the shipped flows)."""
    eng = Engine(engine_config(tmp_path), application=greeting_application())
    await eng.start()
    try:
        yield eng
    finally:
        await eng.stop()


def engine_garbage_cycles() -> collections.Counter[str]:
    """Objects of the engine's packages that only a full collection would free
    (reference cycles), by type; collects, and leaves nothing saved behind.
    It sees the whole process: call ``gc.collect()`` before the calls under
    test, so that what earlier tests left does not count."""
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        gc.collect()
        return collections.Counter(
            f"{type(o).__module__}.{type(o).__qualname__}"
            for o in gc.garbage
            if type(o).__module__.split(".")[0] in ("media", "engine", "recordings", "ivr", "acd")
        )
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
