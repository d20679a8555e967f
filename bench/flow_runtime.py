"""Flow runtime and prompt prerender speed on the shipped flows.

    .venv/bin/python bench/flow_runtime.py [--flows flows] [--repeat 200] [--no-tts]

Prints:

* load: ``load_flowset`` of the folder (parse, validate, compile expressions);
* runs: every case of ``<flows>/tests/*.test.yaml`` run ``--repeat`` times
  through :class:`ivr.runtime.FlowRun` with the scripted caller (what the
  engine does per call, minus the audio): runs per second, microseconds per
  run and per node visited, on one core;
* prerender (unless ``--no-tts``): every static text of the flow set
  rendered with espeak-ng into an empty cache (cold), then again (warm: what
  a reload of unchanged prompts costs), and the cost of a cached lookup.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.flowprompts import PromptLibrary, prerender  # noqa: E402
from ivr.actions import SayText  # noqa: E402
from ivr.flowtests import discover, load_cases, run_case  # noqa: E402
from ivr.loader import load_flowset  # noqa: E402
from ivr.prompts import static_speech  # noqa: E402
from media.prompts.sounds import SoundLibrary  # noqa: E402
from media.prompts.tts import TtsRenderer  # noqa: E402

SOUNDS = Path("/usr/share/asterisk/sounds/en")


def bench_runs(folder: Path, repeat: int) -> None:
    sounds = SoundLibrary([folder / "prompts", SOUNDS])
    t0 = time.perf_counter()
    flowset = load_flowset(folder, sounds=sounds)
    load_ms = (time.perf_counter() - t0) * 1000
    cases = [c for path in discover(folder) for c in load_cases(path)]
    if not cases:
        raise SystemExit(f"no cases under {folder}/tests")
    print(f"load_flowset {folder}: {load_ms:.1f} ms ({len(flowset.flows)} flows)")
    for case in cases:  # warm up (compiled expressions, zoneinfo)
        assert run_case(flowset, case).passed, case.id
    samples = []
    nodes = 0
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(repeat // 5 or 1):
            for case in cases:
                result = run_case(flowset, case)
                assert result.result is not None
                nodes += len(result.result.path)
        samples.append(time.perf_counter() - t0)
    runs = (repeat // 5 or 1) * len(cases)
    per_run = statistics.median(samples) / runs
    visits_per_run = nodes / (runs * 5)
    print(
        f"runs: {len(cases)} cases x {repeat}: median {1 / per_run:,.0f} runs/s,"
        f" {per_run * 1e6:.0f} us/run, {visits_per_run:.1f} nodes/run,"
        f" {per_run / visits_per_run * 1e6:.1f} us/node (incl. checks)"
    )


async def bench_prerender(folder: Path) -> None:
    flowset = load_flowset(folder)
    texts = static_speech(flowset.flows.values())
    with tempfile.TemporaryDirectory() as tmp:
        tts = TtsRenderer(Path(tmp) / "tts", use_pyttsx3=False)
        lib = PromptLibrary(flows_dir=folder, sounds=SoundLibrary([SOUNDS]), tts=tts)
        try:
            cold = await prerender(flowset, lib, progress_every=0)
            lib2 = PromptLibrary(flows_dir=folder, sounds=SoundLibrary([SOUNDS]), tts=tts)
            warm = await prerender(flowset, lib2, progress_every=0)
            item = texts[0]
            t0 = time.perf_counter()
            for _ in range(10_000):
                await lib.speech(SayText(item.text, item.language, item.voice))
            lookup_us = (time.perf_counter() - t0) / 10_000 * 1e6
        finally:
            lib.close()
    print(
        f"prerender {len(texts)} texts + {cold.files} files: cold {cold.seconds:.2f} s"
        f" (espeak-ng, {cold.seconds / max(1, len(texts)) * 1000:.0f} ms/text),"
        f" warm {warm.seconds * 1000:.0f} ms (a new library: TTS disk cache, voice check),"
        f" errors {len(cold.errors)}; cached lookup {lookup_us:.2f} us"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flows", type=Path, default=ROOT / "flows")
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--no-tts", action="store_true")
    args = parser.parse_args()
    bench_runs(args.flows, args.repeat)
    if not args.no_tts:
        asyncio.run(bench_prerender(args.flows))


if __name__ == "__main__":
    main()
