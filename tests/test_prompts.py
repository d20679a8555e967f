"""Prompt sources: WAV files of every common format (made by sox), Asterisk
sounds by name, tones, and the pre-encoded player with barge-in."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from media.g711 import PCMA, PCMU
from media.prompts.audio import AudioError, load_audio
from media.prompts.player import PlaybackFinished, Player, Prompt
from media.prompts.sounds import SoundLibrary, SoundNotFound
from media.prompts.tones import beep, dtmf_tone, silence, tone

SOUNDS = Path("/usr/share/asterisk/sounds/en")


def _peak_hz(audio: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(audio.astype(np.float64) * np.hanning(len(audio))))
    return float(np.fft.rfftfreq(len(audio), 1 / 8000)[int(np.argmax(spectrum))])


@pytest.mark.parametrize(
    "options",
    [
        ["-r", "8000", "-b", "16"],
        ["-r", "16000", "-b", "16"],
        ["-r", "22050", "-b", "16"],
        ["-r", "44100", "-b", "24"],
        ["-r", "48000", "-b", "32"],
        ["-r", "48000", "-e", "floating-point", "-b", "32"],
        ["-r", "8000", "-b", "8", "-e", "unsigned-integer"],
        ["-r", "8000", "-e", "a-law"],
        ["-r", "8000", "-e", "mu-law"],
        ["-r", "16000", "-b", "16", "-c", "2"],
    ],
    ids=lambda o: "-".join(o).replace("-", ""),
)
def test_any_wav_format_loads_as_8k(tmp_path: Path, options: list[str]) -> None:
    path = tmp_path / "tone.wav"
    subprocess.run(
        ["sox", "-n", *options, str(path), "synth", "1", "sine", "1000", "vol", "0.5"], check=True
    )
    audio = load_audio(path)
    assert audio.dtype == np.int16
    assert abs(len(audio) - 8000) <= 2
    assert abs(_peak_hz(audio) - 1000) < 10
    assert 0.3 * 32767 < np.abs(audio).max() < 0.6 * 32767


def test_broken_files_name_the_file_and_the_fault(tmp_path: Path) -> None:
    good = tmp_path / "good.wav"
    subprocess.run(
        ["sox", "-n", "-r", "8000", "-b", "16", str(good), "synth", "0.5", "sine", "440"],
        check=True,
    )
    data = good.read_bytes()
    cases = {
        "text.wav": (b"hello, not audio", "not a RIFF/WAVE file"),
        "nofmt.wav": (b"RIFF\x04\x00\x00\x00WAVE", "'fmt ' chunk"),
        "adpcm.wav": (data[:20] + b"\x02\x00" + data[22:], "unsupported WAV format tag 2"),
        "empty.wav": (data[:44], "no audio samples"),
    }
    for name, (content, message) in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(AudioError, match=message) as info:
            load_audio(path)
        assert str(path) in str(info.value)
    truncated = tmp_path / "truncated.wav"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(AudioError, match="truncated"):
        load_audio(truncated)
    with pytest.raises(AudioError, match="cannot read"):
        load_audio(tmp_path / "missing.wav")


def test_sound_library_resolves_names_and_explains_misses(tmp_path: Path) -> None:
    own = tmp_path / "prompts"
    own.mkdir()
    subprocess.run(
        [
            "sox",
            "-n",
            "-r",
            "8000",
            "-b",
            "16",
            str(own / "vm-intro.wav"),
            "synth",
            "0.2",
            "sine",
            "300",
        ],
        check=True,
    )
    library = SoundLibrary([own, SOUNDS])
    assert library.path("sound:vm-intro") == own / "vm-intro.wav"  # the project's own first
    assert library.path("sound:digits/5") == SOUNDS / "digits" / "5.wav"
    prompt = library.load("sound:agent-pass")
    assert prompt.duration > 0.5 and library.load("sound:agent-pass") is prompt
    with pytest.raises(SoundNotFound, match="nosuchprompt.*" + str(own)):
        library.path("sound:nosuchprompt")
    with pytest.raises(SoundNotFound, match="invalid sound name"):
        library.path("sound:../../etc/passwd")


def test_tones() -> None:
    assert _peak_hz(beep(250)) == pytest.approx(1000, abs=8)
    assert len(silence(20)) == 160 and not silence(20).any()
    low_high = np.abs(np.fft.rfft(dtmf_tone("5", 200).astype(float)))
    freqs = np.fft.rfftfreq(1600, 1 / 8000)
    top_two = sorted(freqs[np.argsort(low_high)[-2:]])
    assert top_two == pytest.approx([770, 1336], abs=6)
    # -10 dBm0 peak: 22775 * 10**(-10/20) ~ 7200
    assert np.abs(tone([1000], 100, -10)).max() == pytest.approx(7202, abs=40)


def test_player_frames_payloads_and_barge_in() -> None:
    player = Player()
    first = Prompt(tone([440], 50))  # 400 samples: 2 full frames + a padded one
    second = Prompt(tone([880], 40))
    player.enqueue(first, tag="a")
    player.enqueue(second, interruptible=False, tag="b")
    player.enqueue(Prompt(tone([660], 40)), tag="c")
    payload = player.next_payload(PCMU, 160)
    assert payload == PCMU.encode(first.audio[:160])
    assert player.interrupt() == 2  # "a" (playing) and "c" are cut, "b" is kept
    events = player.drain_events()
    assert events == [PlaybackFinished("a", True), PlaybackFinished("c", True)]
    frames = [player.next_payload(PCMU, 160), player.next_payload(PCMU, 160)]
    assert frames == second.payloads(PCMU, 160)
    assert player.drain_events() == [PlaybackFinished("b", False)]
    assert player.next_payload(PCMU, 160) is None and not player.is_playing
    last = first.payloads(PCMA, 160)[-1]
    assert len(last) == 160 and PCMA.decode(last)[80:].max() <= 8  # padded with silence
