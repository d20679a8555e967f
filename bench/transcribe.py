"""Offline transcription: word error rate on human telephone prompts, and throughput.

WER: the Asterisk core sounds (8 kHz, human-recorded; Debian packages
asterisk-core-sounds-en-wav and asterisk-core-sounds-en) against their
published text (/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz,
"name: text" lines; "[tone]" entries are left out). Prompts are decoded in
batches (laid one after another with 1.5 s of silence, ~25 s per batch: Whisper
pays a 30 s window per call) and each word goes back to the prompt its middle
falls in; ``--no-batch`` decodes each prompt alone. Text on both sides is
normalised before the word-level edit distance: lower case, punctuation out,
numbers spelled out, # = pound, * = star, contractions expanded (you're = you
are), spelled letters joined (m i s d n = misdn), and two words written as one
on the other side merged (file name = filename). silence/N prompts (text
describes silence) are left out.

Throughput: stereo "calls" made of prompts (caller left, IVR right, taking
turns) queued in a real job queue and transcribed by the project's worker
processes (recordings.worker, niced, 1 model thread each) on ``--workers``
processes: audio hours transcribed per wall-clock hour, and the real-time
factor of one process.

    .venv/bin/python bench/transcribe.py [--backend default|vosk|both]
        [--vosk-model DIR] [--limit N] [--calls 8] [--call-seconds 120]
        [--workers 2|1,2] [--no-batch] [--throughput-only] [--json out.json]

The vosk backend needs an English vosk model folder (``--vosk-model`` or
CALLCORE_VOSK_MODEL); none can be installed from a registry here, so without
one it is reported as not measured.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from recordings.audio import read_wav
from recordings.jobs import JobQueue
from recordings.stt import Transcriber, open_transcriber
from recordings.worker import TranscriptionWorkers, WorkerConfig

SOUNDS = Path("/usr/share/asterisk/sounds/en")
TEXT = Path("/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz")
RATE = 8000
GAP = 1.5
BATCH_SECONDS = 25.0


@dataclass
class Prompt:
    name: str
    text: str
    pcm: np.ndarray

    @property
    def seconds(self) -> float:
        return len(self.pcm) / RATE


# -- text normalisation and WER ------------------------------------------------------------

_ONES = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
_TENS = ["_", "_", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]


def spell(n: int) -> str:
    """An integer 0..999,999 in words (``105`` -> ``one hundred five``)."""
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])
    if n < 1000:
        rest = n % 100
        return _ONES[n // 100] + " hundred" + ("" if rest == 0 else " " + spell(rest))
    rest = n % 1000
    return spell(n // 1000) + " thousand" + ("" if rest == 0 else " " + spell(rest))


_ORDINAL = {"1st": "first", "2nd": "second", "3rd": "third", "5th": "fifth", "8th": "eighth"}


def normalise(text: str) -> list[str]:
    """Comparable words: lower case, symbols and numbers spelled, punctuation removed."""
    t = text.lower().replace("#", " pound ").replace("*", " star ").replace("%", " percent ")
    t = re.sub(r"(\d),(\d{3})", r"\1\2", t)
    t = re.sub(r"\b(\d+)(st|nd|rd|th)\b", lambda m: _ORDINAL.get(m.group(0), m.group(1)), t)
    t = re.sub(
        r"\d+",
        lambda m: (
            " " + spell(int(m.group(0))) + " "
            if len(m.group(0)) < 7
            else " ".join(spell(int(d)) for d in m.group(0))
        ),
        t,
    )
    t = t.replace("-", " ").replace("'", "")
    t = re.sub(r"[^a-z ]", " ", t)
    return t.split()


_CONTRACTIONS = {
    "im": "i am",
    "youre": "you are",
    "thats": "that is",
    "dont": "do not",
    "cant": "can not",
    "cannot": "can not",
    "youd": "you would",
    "youll": "you will",
    "youve": "you have",
    "ive": "i have",
    "isnt": "is not",
    "wont": "will not",
    "theyre": "they are",
    "whats": "what is",
    "didnt": "did not",
    "doesnt": "does not",
}


def _expand(words: list[str]) -> list[str]:
    out: list[str] = []
    for w in words:
        out.extend(_CONTRACTIONS.get(w, w).split())
    return out


def _join_letters(words: list[str]) -> list[str]:
    """Spelled letters are one token (``m i s d n`` = ``misdn``): runs of 3+ single
    letters, or of 2 when neither is the word ``a`` or ``i``."""
    out: list[str] = []
    i = 0
    while i < len(words):
        j = i
        while j < len(words) and len(words[j]) == 1:
            j += 1
        run = words[i:j]
        if len(run) >= 3 or (len(run) == 2 and not set(run) & {"a", "i"}):
            out.append("".join(run))
            i = j
        else:
            out.append(words[i])
            i += 1
    return out


def _merge_compounds(words: list[str], other: set[str]) -> list[str]:
    """Adjacent words whose concatenation is one word of the other side are merged
    (``file name`` = ``filename``, ``re record`` = ``rerecord``)."""
    out: list[str] = []
    i = 0
    while i < len(words):
        if i + 1 < len(words) and words[i] + words[i + 1] in other:
            out.append(words[i] + words[i + 1])
            i += 2
        else:
            out.append(words[i])
            i += 1
    return out


def align(ref: list[str], hyp: list[str]) -> tuple[list[str], list[str]]:
    """Both sides in comparable form: contractions expanded, spelled letters joined,
    compounds written apart on one side and together on the other merged."""
    r, h = _join_letters(_expand(ref)), _join_letters(_expand(hyp))
    return _merge_compounds(r, set(h)), _merge_compounds(h, set(r))


def edits(ref: list[str], hyp: list[str]) -> int:
    """Word-level Levenshtein distance (substitutions + deletions + insertions)."""
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1]


# -- data -----------------------------------------------------------------------------------


def load_prompts(limit: int | None) -> list[Prompt]:
    if not TEXT.is_file() or not SOUNDS.is_dir():
        sys.exit(
            f"missing {TEXT} or {SOUNDS}: apt-get install asterisk-core-sounds-en-wav"
            " asterisk-core-sounds-en"
        )
    prompts: list[Prompt] = []
    with gzip.open(TEXT, "rt", encoding="utf-8", errors="replace") as fh:
        for line in fh:
            name, sep, text = line.partition(":")
            text = text.strip()
            if not sep or line.startswith(";") or not text or text.startswith("["):
                continue
            wav = SOUNDS / f"{name.strip()}.wav"
            if not wav.is_file() or not normalise(text) or name.startswith("silence/"):
                continue  # silence/N's text describes the file ("one second of silence")
            audio = read_wav(wav)
            if audio.rate != RATE:
                continue
            prompts.append(Prompt(name.strip(), text, audio.channel(0)))
    prompts.sort(key=lambda p: p.name)
    return prompts[:limit] if limit else prompts


# -- WER ------------------------------------------------------------------------------------


def decode(t: Transcriber, prompts: list[Prompt], batch: bool) -> tuple[list[list[str]], float]:
    """Hypothesis words per prompt and the decoding seconds."""
    hyps: list[list[str]] = [[] for _ in prompts]
    spent = 0.0
    groups: list[list[int]] = []
    if batch:
        cur: list[int] = []
        length = 0.0
        for i, p in enumerate(prompts):
            if cur and length + p.seconds > BATCH_SECONDS:
                groups.append(cur)
                cur, length = [], 0.0
            cur.append(i)
            length += p.seconds + GAP
        if cur:
            groups.append(cur)
    else:
        groups = [[i] for i in range(len(prompts))]
    gap = np.zeros(int(GAP * RATE), dtype=np.int16)
    for group in tqdm(
        groups,
        desc=f"  decoding ({'batched' if batch else 'one by one'})",
        unit="batch",
        file=sys.stderr,
    ):
        pieces, spans, at = [], [], GAP / 2
        for i in group:
            pieces += [gap[: len(gap) // 2] if not pieces else gap, prompts[i].pcm]
            spans.append((at, at + prompts[i].seconds))
            at += prompts[i].seconds + GAP
        audio = np.concatenate([*pieces, gap[: len(gap) // 2]])
        started = time.perf_counter()
        segments = t.transcribe(audio, RATE)
        spent += time.perf_counter() - started
        for seg in segments:
            words = seg.words or []
            for w in words:
                mid = (w.start + w.end) / 2
                k = min(range(len(group)), key=lambda k: _distance(mid, spans[k]))
                hyps[group[k]].append(w.text)
    return [normalise(" ".join(h)) for h in hyps], spent


def _distance(x: float, span: tuple[float, float]) -> float:
    lo, hi = span
    return 0.0 if lo <= x <= hi else min(abs(x - lo), abs(x - hi))


def wer_report(name: str, t: Transcriber, prompts: list[Prompt], batch: bool) -> dict[str, Any]:
    hyps, spent = decode(t, prompts, batch)
    audio = sum(p.seconds for p in prompts)
    pairs = [align(normalise(p.text), h) for p, h in zip(prompts, hyps, strict=True)]
    refs = [r for r, _ in pairs]
    hyps = [h for _, h in pairs]
    e_all = sum(edits(r, h) for r, h in zip(refs, hyps, strict=True))
    n_all = sum(len(r) for r in refs)
    long = [(r, h) for r, h in zip(refs, hyps, strict=True) if len(r) >= 3]
    e_long = sum(edits(r, h) for r, h in long)
    n_long = sum(len(r) for r, _ in long)
    worst = sorted(
        (
            (edits(r, h) / len(r), p.name, " ".join(h))
            for p, r, h in zip(prompts, refs, hyps, strict=True)
        ),
        reverse=True,
    )[:5]
    mistakes = [
        {"prompt": p.name, "edits": edits(r, h), "ref": " ".join(r), "hyp": " ".join(h)}
        for p, r, h in zip(prompts, refs, hyps, strict=True)
        if r != h
    ]
    return {
        "backend": name,
        "mistakes": mistakes,
        "prompts": len(prompts),
        "audio_seconds": round(audio, 1),
        "wer_all": round(e_all / n_all, 4),
        "words_all": n_all,
        "prompts_3plus": len(long),
        "wer_3plus": round(e_long / n_long, 4) if n_long else None,
        "decode_seconds": round(spent, 1),
        "rtf": round(spent / audio, 4),
        "worst": [{"prompt": n, "wer": round(w, 2), "heard": h} for w, n, h in worst],
    }


# -- throughput ------------------------------------------------------------------------------


def make_calls(prompts: list[Prompt], folder: Path, calls: int, seconds: float) -> list[Path]:
    """Stereo WAVs of ``seconds``: caller and IVR take turns saying prompts, 0.6 s apart."""
    from tests.speech import write_wav

    rng = np.random.default_rng(7)
    out = []
    for c in range(calls):
        left = np.zeros(int(seconds * RATE), dtype=np.int16)
        right = np.zeros_like(left)
        at, side = 0.5, 0
        while True:
            p = prompts[int(rng.integers(len(prompts)))]
            n = len(p.pcm)
            i = int(at * RATE)
            if i + n > len(left):
                break
            (left if side == 0 else right)[i : i + n] = p.pcm
            at += p.seconds + 0.6
            side ^= 1
        out.append(write_wav(folder / f"call-{c:03d}.wav", np.stack((left, right), axis=1)))
    return out


def throughput(
    backend: str, model: Path | None, wavs: list[Path], workers: int, data: Path
) -> dict[str, Any]:
    cfg = WorkerConfig(
        data_dir=data, backend=backend, model_dir=model, cpu_threads=1, poll=0.1, history=None
    )
    queue = JobQueue(cfg.db_path)
    pool = TranscriptionWorkers(cfg, processes=workers, name=f"bench-{backend}").start()
    try:
        started = time.time()
        ids = [queue.enqueue(w, w.stem, now=started) for w in wavs]
        bar = tqdm(total=len(ids), desc=f"  {workers} workers", unit="call", file=sys.stderr)
        done = 0
        while done < len(ids):
            time.sleep(0.2)
            counts = queue.counts()
            now_done = counts["done"] + counts["failed"]
            bar.update(now_done - done)
            done = now_done
        wall = time.time() - started
        bar.close()
    finally:
        pool.stop()
    failed = queue.jobs("failed")
    audio = sum(read_wav(w).duration for w in wavs)
    return {
        "backend": backend,
        "workers": workers,
        "calls": len(wavs),
        "audio_seconds": round(audio, 1),
        "wall_seconds": round(wall, 1),
        "audio_hours_per_hour": round(audio / wall, 1),
        "failed": [j.last_error for j in failed],
    }


def _print_throughput(tp: dict[str, Any]) -> None:
    print(
        f"throughput: {tp['audio_hours_per_hour']} audio hours per hour on"
        f" {tp['workers']} worker processes ({tp['calls']} stereo calls,"
        f" {tp['audio_seconds']} s of call time in {tp['wall_seconds']} s);"
        f" failed jobs: {len(tp['failed'])}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--backend", choices=("default", "vosk", "both"), default="both")
    ap.add_argument("--vosk-model", type=Path, default=os.environ.get("CALLCORE_VOSK_MODEL"))
    ap.add_argument("--limit", type=int, default=None, help="first N prompts only")
    ap.add_argument("--calls", type=int, default=8, help="stereo calls for the throughput run")
    ap.add_argument("--call-seconds", type=float, default=120.0)
    ap.add_argument("--workers", default="2", help="worker processes, or a list to compare (1,2)")
    ap.add_argument("--no-batch", action="store_true", help="decode each prompt alone")
    ap.add_argument(
        "--throughput-only",
        action="store_true",
        help="speed only (e.g. vosk with the Korean test model, where WER would mean nothing)",
    )
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    os.environ.setdefault("CALLCORE_LOG_LEVEL", "warning")  # workers: errors only
    prompts = load_prompts(args.limit)
    print(
        f"{len(prompts)} prompts with text, {sum(p.seconds for p in prompts) / 60:.1f} min"
        f" of 8 kHz human speech; {os.cpu_count()} cores"
    )
    backends = ["default", "vosk"] if args.backend == "both" else [args.backend]
    results: dict[str, list[Any]] = {"wer": [], "throughput": [], "not_measured": []}
    with tempfile.TemporaryDirectory(prefix="bench-stt-") as tmp:
        wavs = make_calls(prompts, Path(tmp), args.calls, args.call_seconds)
        for backend in backends:
            model = args.vosk_model if backend == "vosk" else None
            if backend == "vosk" and model is None:
                msg = (
                    "vosk: not measured (no English vosk model here; pass --vosk-model DIR"
                    " or set CALLCORE_VOSK_MODEL)"
                )
                print(msg)
                results["not_measured"].append(msg)
                continue
            t = open_transcriber(backend, model, cpu_threads=2)
            print(f"\n== {t.name}")
            if args.throughput_only:
                print("WER: not measured (--throughput-only)")
            else:
                w = wer_report(t.name, t, prompts, batch=not args.no_batch)
                results["wer"].append(w)
                print(
                    f"WER {100 * w['wer_all']:.1f} % over {w['prompts']} prompts"
                    f" ({w['words_all']} words); {100 * (w['wer_3plus'] or 0):.1f} % over"
                    f" {w['prompts_3plus']} prompts of 3+ words; decode RTF {w['rtf']}"
                    f" (one process, 2 threads)"
                )
                for item in w["worst"]:
                    print(f"  worst: {item['prompt']} ({item['wer']}): {item['heard']!r}")
            del t
            for n in [int(x) for x in str(args.workers).split(",")]:
                folder = Path(tmp) / f"data-{backend}-{n}"
                tp = throughput(backend, model, wavs, n, folder)
                results["throughput"].append(tp)
                _print_throughput(tp)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
