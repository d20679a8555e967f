"""SoundLibrary: names to files under ordered roots (the shipped prompts, then the
Asterisk core sounds), Asterisk's raw formats, misses that say where we looked,
and the LRU cache of decoded prompts."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from media.g711 import alaw_decode, ulaw_decode
from media.prompts.audio import AudioError, load_audio
from media.prompts.sounds import SoundLibrary, SoundNotFound
from tests.conftest import FLOWS

SOUNDS = Path("/usr/share/asterisk/sounds/en")
PROMPTS = FLOWS / "prompts"
#: sox options for Asterisk's .sln: headerless signed 16-bit little-endian.
SLN = ("-t", "raw", "-e", "signed-integer", "-b", "16", "-L")


def make_tone(path: Path, freq: int, seconds: str = "0.2", *fmt: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    options = list(fmt) or ["-b", "16"]
    subprocess.run(
        ["sox", "-n", "-r", "8000", "-c", "1", *options, str(path), "synth", seconds, "sine",
         str(freq)],
        check=True,
    )  # fmt: skip
    return path


def test_engine_roots_resolve_shipped_and_asterisk_sounds() -> None:
    library = SoundLibrary([PROMPTS, SOUNDS])
    assert library.path("sound:greeting") == PROMPTS / "greeting.wav"
    assert library.path("sound:vm-intro") == SOUNDS / "vm-intro.wav"
    assert library.path("digits/5") == SOUNDS / "digits" / "5.wav"  # scheme optional
    greeting = library.load("sound:greeting")
    assert np.array_equal(greeting.audio, load_audio(PROMPTS / "greeting.wav"))
    assert greeting.name == "greeting" and 2.5 < greeting.duration < 4.0
    for digit in range(10):
        prompt = library.load(f"sound:digits/{digit}")
        assert 0.2 < prompt.duration < 1.5, digit


def test_first_root_wins_then_extension_order(tmp_path: Path) -> None:
    own = tmp_path / "own"
    make_tone(own / "vm-intro.wav", 300)
    library = SoundLibrary([own, SOUNDS])
    assert library.path("sound:vm-intro") == own / "vm-intro.wav"  # overrides Asterisk's
    assert library.load("sound:vm-intro").duration == pytest.approx(0.2)
    # Within a root: .wav before .sln; an earlier root's .sln before a later root's .wav.
    make_tone(own / "both.sln", 500, "0.2", *SLN)
    make_tone(own / "both.wav", 600)
    make_tone(tmp_path / "later" / "only-sln.wav", 700)
    make_tone(own / "only-sln.sln", 800, "0.2", *SLN)
    library = SoundLibrary([own, tmp_path / "later"])
    assert library.path("sound:both") == own / "both.wav"
    assert library.path("sound:only-sln") == own / "only-sln.sln"


def test_asterisk_raw_formats(tmp_path: Path) -> None:
    root = tmp_path / "raw"
    sln = make_tone(root / "s.sln", 440, "0.3", *SLN)
    ulaw = make_tone(root / "u.ulaw", 440, "0.3", "-t", "ul")
    alaw = make_tone(root / "a.alaw", 440, "0.3", "-t", "al")
    library = SoundLibrary([root])
    expected_sln = np.frombuffer(sln.read_bytes(), "<i2")
    assert np.array_equal(library.load("sound:s").audio, expected_sln)
    assert np.array_equal(library.load("sound:u").audio, ulaw_decode(ulaw.read_bytes()))
    assert np.array_equal(library.load("sound:a").audio, alaw_decode(alaw.read_bytes()))
    assert len(library.load("sound:s").audio) == 2400
    (root / "e.ulaw").write_bytes(b"")
    with pytest.raises(AudioError) as info:
        library.load("sound:e")
    assert str(info.value) == f"{root / 'e.ulaw'}: empty: no audio samples"


def test_miss_lists_where_it_looked(tmp_path: Path) -> None:
    library = SoundLibrary([tmp_path, SOUNDS])
    with pytest.raises(SoundNotFound) as info:
        library.path("sound:digits/nope")
    assert str(info.value) == (
        "sound 'digits/nope' not found: looked for digits/nope{.wav,.WAV,.sln,.ulaw,.alaw} "
        f"under {tmp_path}, {SOUNDS}"
    )
    with pytest.raises(SoundNotFound) as none:
        SoundLibrary([]).load("sound:x")
    assert str(none.value) == (
        "sound 'x' not found: looked for x{.wav,.WAV,.sln,.ulaw,.alaw} under (no roots configured)"
    )
    assert not library.exists("sound:digits/nope") and library.exists("sound:digits/5")


@pytest.mark.parametrize(
    "ref",
    ["", "sound:", "sound:/etc/passwd", "sound:../secret", "sound:digits/../../x",
     "sound:digits//5", "sound:digits/./5", "sound:digits/", "sound:a\\b", "sound:a\nb"],
)  # fmt: skip
def test_invalid_names(ref: str) -> None:
    library = SoundLibrary([SOUNDS])
    with pytest.raises(SoundNotFound) as info:
        library.path(ref)
    assert str(info.value) == (
        f"invalid sound name {ref!r}: use a relative name such as sound:vm-intro or sound:digits/5"
    )
    assert not library.exists(ref)


def test_lru_cache_bound_and_counters(tmp_path: Path) -> None:
    for name, freq in (("a", 300), ("b", 400), ("c", 500)):
        make_tone(tmp_path / f"{name}.wav", freq)
    library = SoundLibrary([tmp_path], cache_size=2)
    a = library.load("sound:a")
    library.load("sound:b")
    assert library.load("sound:a") is a  # hit: a becomes the most recent
    library.load("sound:c")  # evicts b, the least recently used
    assert library.cached() == ["a", "c"]
    assert (library.hits, library.misses) == (1, 3)
    assert library.load("a") is a and library.hits == 2  # same entry with or without scheme
    library.load("sound:b")  # read again from disk
    assert library.misses == 4 and library.cached() == ["a", "b"]


def test_broken_file_is_not_cached(tmp_path: Path) -> None:
    path = tmp_path / "late.wav"
    path.write_bytes(b"not yet a wav")
    library = SoundLibrary([tmp_path])
    with pytest.raises(AudioError) as info:
        library.load("sound:late")
    assert str(info.value).startswith(f"{path}: not a RIFF/WAVE file")
    assert library.cached() == []
    make_tone(path, 440)
    assert library.load("sound:late").duration == pytest.approx(0.2)


def test_cache_size_must_be_positive() -> None:
    with pytest.raises(ValueError) as info:
        SoundLibrary([SOUNDS], cache_size=0)
    assert str(info.value) == "SoundLibrary: cache_size must be at least 1, got 0"
