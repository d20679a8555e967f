"""The pyttsx3 process: renders utterances for :class:`media.prompts.tts.TtsRenderer`.

pyttsx3 drives libespeak-ng through ctypes inside whatever process imports
it, so a fault in that C code ends the process. In the engine that was every
live call: under ``bench/media_load.py`` the engine died of a SIGSEGV in
libc's ``memcpy`` on one of its threads while pyttsx3 was rendering the
flows' prompts (its espeak driver copies each audio block espeak hands its
callback with ``ctypes.string_at``; the crash did not recur in 400 renders).
So pyttsx3 runs here, in a child process of its own;
the renderer restarts it when it dies and the ``espeak-ng`` command renders
that prompt meanwhile.

Run as ``python -m media.prompts.tts_child FD VOICE RATE``: ``FD`` is the
child's end of a socket pair, read with :class:`multiprocessing.connection.Connection`
(pickled messages). Each request is ``(text, path, timeout)``; the answer is
None when ``path`` holds a complete WAV, else the error text (also when
pyttsx3 could not be loaded: every request gets that reason). The child
exits when the engine's end closes (a kill -9 of the engine included).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from media.prompts.audio import wav_complete

#: How long to wait for pyttsx3 to finish writing a completed utterance.
WRITE_GRACE = 5.0


class SpeakError(RuntimeError):
    """pyttsx3 produced no complete WAV; the message says how it failed."""


def speak(engine: Any, text: str, out: str, timeout: float) -> None:
    """One utterance with ``engine`` (a pyttsx3 engine) into ``out``."""
    outcome: list[bool] = []
    finished = threading.Event()

    def on_end(name: str, completed: bool) -> None:
        outcome.append(completed)
        finished.set()

    token = engine.connect("finished-utterance", on_end)
    try:
        engine.save_to_file(text, out)
        engine.runAndWait()
        if not finished.wait(timeout):
            raise SpeakError("pyttsx3 sent no finished-utterance event")
    finally:
        engine.disconnect(token)
    # The driver writes the file, then reports completed=True; back to back it
    # may also report a stale completed=False (its stop flag from the previous
    # loop), before or after. The output file, new for every attempt, decides.
    deadline = time.monotonic() + WRITE_GRACE
    while not wav_complete(Path(out)):
        if time.monotonic() > deadline:
            what = "wrote no complete WAV" if any(outcome) else "did not complete"
            raise SpeakError(f"pyttsx3 {what} for {text[:40]!r}")
        time.sleep(0.01)


def serve(conn: Connection, voice: str, rate: int) -> None:
    """Answer requests on ``conn`` until it closes."""
    engine: Any = None
    broken: str | None = None
    try:
        import pyttsx3

        engine = pyttsx3.init()
        engine.setProperty("rate", rate)
        if voice:
            engine.setProperty("voice", voice)
    except Exception as exc:  # answered to every request: the renderer logs it and falls back
        broken = f"pyttsx3 could not start: {type(exc).__name__}: {exc}"
    while True:
        try:
            text, out, timeout = conn.recv()
        except (EOFError, OSError):
            return
        reply: str | None = broken
        if reply is None:
            try:
                speak(engine, text, out, timeout)
            except Exception as exc:
                reply = f"{type(exc).__name__}: {exc}"
        try:
            conn.send(reply)
        except OSError:
            return


def main(argv: list[str]) -> int:
    """Entry point: ``FD VOICE RATE`` (``VOICE`` empty for the default)."""
    if len(argv) != 3:
        print("usage: python -m media.prompts.tts_child FD VOICE RATE", file=sys.stderr)
        return 2
    # Its own session (the renderer starts it so): only the engine ends it, by closing the socket.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # pyttsx3's espeak driver prints a line per saved file; the engine's output is its log.
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (for the life of the process)
    serve(Connection(int(argv[0])), argv[1], int(argv[2]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
