"""A real softphone (baresip) calls the engine.

It must hear the greeting (its decoded-audio dump correlates with the
prompt), and the digits it sends (RFC 4733) are the digits the engine reports.
"""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from engine.app import Engine
from media.prompts.audio import load_audio
from tests.peers.baresip import Baresip, read_wav
from tests.test_engine_sipp import _best_correlation

pytestmark = pytest.mark.peer


def _call(target: str) -> tuple[np.ndarray, int]:
    with Baresip(tone_hz=440, duration=30) as phone:
        phone.dial(target)
        phone.wait_for_event(lambda e: e.get("type") == "CALL_ESTABLISHED", 10)
        time.sleep(4.5)  # the greeting lasts 3.2 s
        phone.send_dtmf("4#")
        time.sleep(1.0)
        phone.hangup()
        phone.wait_for_event(lambda e: e.get("type") == "CALL_CLOSED", 10)
        time.sleep(0.5)
        received = phone.received_wav
        assert received is not None, phone.log
        pcm, rate = read_wav(received)
    return np.asarray(pcm), rate


async def test_baresip_hears_greeting_and_sends_digits(engine: Engine) -> None:
    target = f"sip:ivr@{engine.sip.host}:{engine.sip.port}"
    pcm, rate = await asyncio.to_thread(_call, target)
    assert engine.calls is not None
    calls = engine.calls.finished_calls
    assert len(calls) == 1
    assert [(d, s) for _, d, s in calls[0].digits] == [("4", "rfc4733"), ("#", "rfc4733")]
    assert rate == 8000
    greeting = load_audio(engine.config.flows_dir / "prompts" / "greeting.wav")
    assert _best_correlation(greeting, pcm) > 0.8
