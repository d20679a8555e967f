"""Real calls from SIPp into an in-process engine (see ../shared/PEERS.md).

* uac_pcap: the engine hears RFC 4733 digit "1", and the caller's audio it
  captured correlates with the audio inside SIPp's g711a.pcap;
* uac_cancel: CANCEL while the engine rings gets 200 + 487 and never a 200;
* in-band DTMF: a PCMU-only caller (no telephone-event) plays Asterisk speech
  with DTMF tones between the prompts: exactly those digits, no false ones;
* the same uac_pcap call over TCP.
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from engine.app import Engine
from media.g711 import alaw_decode
from media.prompts.audio import load_audio
from media.prompts.tones import dtmf_tone, silence
from tests.conftest import engine_config, greeting_application, recordings_finished
from tests.pcap import read_udp_payloads
from tests.peers.sipp import Sipp
from tests.rtp_pcap import rtp_packets, write_pcap

SCENARIOS = Path(__file__).parent / "scenarios"
SHARED_PEERS = Path(__file__).resolve().parents[2] / "shared" / "peers"
SOUNDS = Path("/usr/share/asterisk/sounds/en")

pytestmark = pytest.mark.peer


def _capture(engine: Engine) -> np.ndarray:
    files = sorted((engine.config.data_dir / "recordings").rglob("*.wav"))
    assert len(files) == 1, files
    with wave.open(str(files[0])) as w:
        assert w.getnchannels() == 2 and w.getframerate() == 8000
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    return data.reshape(-1, 2)


def _best_correlation(reference: np.ndarray, signal: np.ndarray) -> float:
    """Peak normalised cross-correlation of ``reference`` inside ``signal``."""
    ref = reference.astype(np.float64)
    sig = signal.astype(np.float64)
    n = len(ref) + len(sig)
    size = 1 << (n - 1).bit_length()
    corr = np.fft.irfft(np.fft.rfft(sig, size) * np.conj(np.fft.rfft(ref, size)), size)
    lag = int(np.argmax(corr[: len(sig)]))
    window = sig[lag : lag + len(ref)]
    if len(window) < len(ref):
        window = np.pad(window, (0, len(ref) - len(window)))
    denom = np.linalg.norm(ref) * np.linalg.norm(window)
    return float(np.dot(ref, window) / denom) if denom else 0.0


def _pcap_audio() -> np.ndarray:
    payloads = read_udp_payloads("/usr/share/sip-tester/g711a.pcap")
    return np.concatenate([alaw_decode(p[12:]) for _, p in payloads if (p[1] & 0x7F) == 8])


@pytest.mark.parametrize("transport", ["u1", "t1"])
async def test_uac_pcap_call_digit_and_capture(engine: Engine, transport: str) -> None:
    sipp = Sipp(
        "uac_pcap", remote=f"{engine.sip.host}:{engine.sip.port}", transport=transport, timeout=40
    )
    result = await sipp.run_async()
    assert result.ok, result.summary()
    assert engine.calls is not None
    calls = engine.calls.finished_calls
    assert len(calls) == 1
    assert [(d, s) for _, d, s in calls[0].digits] == [("1", "rfc4733")]
    await recordings_finished(engine)
    capture = _capture(engine)
    reference = _pcap_audio()
    # The left channel is what the caller sent: it must contain the pcap's speech.
    assert _best_correlation(reference[: 8000 * 5], capture[:, 0]) > 0.9
    # The right channel is what the engine sent: the greeting first.
    greeting = load_audio(engine.config.flows_dir / "prompts" / "greeting.wav")
    assert _best_correlation(greeting, capture[:, 1]) > 0.9


async def test_cancel_while_ringing_gets_487_never_200(tmp_path: Path) -> None:
    eng = Engine(engine_config(tmp_path, ring_seconds=5.0), application=greeting_application())
    await eng.start()
    try:
        sipp = Sipp(
            SHARED_PEERS / "uac_cancel.xml",
            remote=f"{eng.sip.host}:{eng.sip.port}",
            timeout=20,
            trace_msg=True,
        )
        result = await sipp.run_async()
        assert result.ok, result.summary()
        assert result.message_trace is not None
        trace = result.message_trace.read_text(errors="replace")
        assert "SIP/2.0 487" in trace
        invite_oks = [
            block
            for block in trace.split("----")
            if "SIP/2.0 200" in block and "INVITE" in block.split("CSeq:")[-1][:20]
        ]
        assert invite_oks == [], "a 200 OK to the INVITE was sent after CANCEL (ghost call)"
        assert eng.calls is not None and not eng.calls.legs
    finally:
        await eng.stop()


async def test_inband_dtmf_in_speech(engine: Engine, tmp_path: Path) -> None:
    speech = [
        load_audio(SOUNDS / f"{name}.wav") for name in ("vm-intro", "agent-pass", "vm-goodbye")
    ]
    pieces = [silence(500), speech[0], silence(300), dtmf_tone("2", 80), silence(200)]
    pieces += [dtmf_tone("5", 80, twist_db=4.0), silence(300), speech[1], silence(200)]
    pieces += [dtmf_tone("#", 80, level_dbm0=-20.0), silence(300), speech[2], silence(500)]
    audio = np.concatenate(pieces)
    run_dir = tmp_path / "sipp"
    run_dir.mkdir()
    write_pcap(run_dir / "inband.pcap", rtp_packets(audio, "PCMU"))
    duration_ms = len(audio) // 8 + 500
    sipp = Sipp(
        SCENARIOS / "uac_inband.xml",
        remote=f"{engine.sip.host}:{engine.sip.port}",
        pause_ms=duration_ms,
        timeout=60,
        run_dir=run_dir,
    )
    result = await sipp.run_async()
    assert result.ok, result.summary()
    assert engine.calls is not None
    digits = engine.calls.finished_calls[-1].digits
    assert [(d, s) for _, d, s in digits] == [("2", "inband"), ("5", "inband"), ("#", "inband")]


async def test_hold_unhold_and_info_dtmf(engine: Engine) -> None:
    sipp = Sipp(
        SCENARIOS / "uac_hold_info.xml",
        remote=f"{engine.sip.host}:{engine.sip.port}",
        timeout=30,
    )
    result = await sipp.run_async()
    assert result.ok, result.summary()
    assert engine.calls is not None
    digits = engine.calls.finished_calls[-1].digits
    assert [(d, s) for _, d, s in digits] == [("7", "info"), ("*", "info")]
