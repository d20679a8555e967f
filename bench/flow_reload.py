"""Flow hot-reload speed: validation, publish steps, file saved -> next call on the new version.

    .venv/bin/python bench/flow_reload.py [--nodes 500] [--runs 15] [--edits 20] [--no-calls]

Prints p50/p99 (and max) of:

1. validation: ``load_flowset`` of a generated ``--nodes`` flow (the one of
   bench/flow_validate.py: menus, says, sets, switches, gathers, lookups,
   hours, queues), ``--runs`` runs;
2. publish of that flow through :class:`ivr.registry.FlowRegistry` with the
   engine's real parts (espeak-ng prompts through PromptLibrary, SQLite
   version store in a temp dir), ``--edits`` edits of two kinds: one prompt
   text changed (one new TTS render) and one timeout changed (no render).
   Each publish is split into validation, prerender, recording and the swap
   itself; "validated -> swapped" is everything after validation;
3. (unless ``--no-calls``) end to end on an in-process engine with a small
   flow while SIPp places calls at ``--cps`` (each call ends at once: the
   flow is one hangup node): ``--edits`` edits saved to the flows folder;
   saved -> swapped (watcher debounce + publish) and saved -> first call
   that ran the new version (from GET /calls/recent), which adds the gap
   to the next call's arrival (1/cps on average).

Light load by design (one engine, a few calls per second): safe on the
shared machine. The first prerender of the big flow (every static text
rendered cold) is printed separately.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections import deque
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.flow_validate import write_folder  # noqa: E402
from engine.flowprompts import PromptLibrary, prerender  # noqa: E402
from ivr.loader import FlowSet, load_flowset  # noqa: E402
from ivr.registry import FlowRegistry, LiveFlows, PublishResult  # noqa: E402
from ivr.versions import DB_NAME, VersionStore  # noqa: E402
from media.prompts.sounds import SoundLibrary  # noqa: E402
from media.prompts.tts import TtsRenderer  # noqa: E402

SOUNDS = Path("/usr/share/asterisk/sounds/en")


def pct(values: Sequence[float], q: float) -> float:
    """The q-quantile (0..1) by linear interpolation."""
    data = sorted(values)
    if not data:
        return float("nan")
    pos = (len(data) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def line(name: str, seconds: Sequence[float]) -> str:
    ms = [s * 1000 for s in seconds]
    return (
        f"  {name:<34} n={len(ms):<3} p50 {pct(ms, 0.5):8.2f} ms  p99 {pct(ms, 0.99):8.2f} ms"
        f"  max {max(ms):8.2f} ms"
    )


def bench_validation(folder: Path, runs: int) -> list[float]:
    sounds = SoundLibrary([folder / "prompts", SOUNDS])
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        load_flowset(folder, sounds=sounds)
        times.append(time.perf_counter() - t0)
    return times


async def bench_publish(folder: Path, data: Path, edits: int) -> dict[str, list[float]]:
    sounds = SoundLibrary([folder / "prompts", SOUNDS])
    library = PromptLibrary(
        flows_dir=folder, sounds=sounds, tts=TtsRenderer(data / "tts", use_pyttsx3=False)
    )

    async def render(flowset: FlowSet) -> None:
        await prerender(flowset, library)

    store = VersionStore(data / DB_NAME)
    registry: FlowRegistry[FlowSet] = FlowRegistry(
        folder,
        store=store,
        load=lambda f: load_flowset(f, sounds=sounds),
        prerender=render,
        staging=data / "flows-staging",
    )
    t0 = time.perf_counter()
    first = await registry.start(now=time.time())
    assert first.status == "published", first
    print(
        f"  first publish (cold: every static prompt rendered): "
        f"{(time.perf_counter() - t0):.2f} s, prerender {first.prerender_seconds or 0:.2f} s"
    )
    out: dict[str, list[float]] = {}
    path = folder / "big.yaml"
    base = path.read_text()
    for k in range(edits):
        kind = "prompt" if k % 2 == 0 else "timeout"
        if kind == "prompt":
            text = base.replace("Menu 7: press", f"Menu 7, edit {k}: press", 1)
        else:
            text = base.replace("max_wait: 60", f"max_wait: {61 + k}", 1)
        path.write_text(text)
        saved = path.stat().st_mtime
        result: PublishResult = await registry.publish(
            now=time.time(), source="api", saved_at=saved
        )
        assert result.status == "published", result
        for name, value in (
            ("validation", result.validation_seconds),
            ("prerender", result.prerender_seconds),
            ("record", result.record_seconds),
            ("swap (assignment)", result.assign_seconds),
            ("publish total", result.swap_seconds),
        ):
            out.setdefault(f"{kind}: {name}", []).append(float(value or 0.0))
        after = (result.swap_seconds or 0) - result.validation_seconds
        out.setdefault(f"{kind}: validated -> swapped", []).append(after)
    store.close()
    return out


SMALL_ROUTES = "default: main\n"


def small_flow(k: int) -> str:
    return f"flow: main\nstart: bye{k}\nnodes:\n  bye{k}:\n    type: hangup\n"


async def bench_calls(tmp: Path, edits: int, cps: float) -> dict[str, list[float]]:
    from engine.app import Engine
    from tests.conftest import engine_config
    from tests.peers.sipp import Sipp

    folder = tmp / "small"
    folder.mkdir()
    (folder / "main.yaml").write_text(small_flow(0))
    (folder / "routes.yaml").write_text(SMALL_ROUTES)
    engine = Engine(
        engine_config(tmp, data_dir=tmp / "engine-data", flows_dir=folder, capture=False)
    )
    await engine.start()
    out: dict[str, list[float]] = {"saved -> swapped (watcher)": [], "saved -> next call on it": []}
    try:
        assert engine.flow_reload is not None and engine.flow_app is not None
        reload = engine.flow_reload
        # Keep every call's record (the driver keeps the last 200 by default).
        engine.flow_app.recent = deque(maxlen=100_000)
        await asyncio.wait_for(reload.watcher.ready.wait(), 10)
        swaps: asyncio.Queue[tuple[float, str]] = asyncio.Queue()

        def on_swap(live: LiveFlows[Any]) -> None:
            swaps.put_nowait((time.time(), live.digest))

        reload.registry.subscribe(on_swap)
        scenario = ROOT / "tests" / "scenarios" / "uac_wait_bye.xml"
        calls = int(cps * (edits * 1.0 + 6))
        sipp = Sipp(
            scenario,
            remote=f"{engine.sip.host}:{engine.sip.port}",
            calls=calls,
            rate=cps,
            timeout=edits * 2 + 60,
        )
        handle = await sipp.start_async()
        await asyncio.sleep(2.0)
        saved_at: dict[str, float] = {}
        for k in range(1, edits + 1):
            t_saved = time.time()
            (folder / "main.yaml").write_text(small_flow(k))
            t_swap, digest = await asyncio.wait_for(swaps.get(), 10)
            saved_at[digest] = t_saved
            out["saved -> swapped (watcher)"].append(t_swap - t_saved)
            await asyncio.sleep(0.5 + (k % 3) * 0.1)  # calls arrive; edits not in step with them
        result = await handle.wait(edits * 2 + 90)
        if not result.ok:
            print(f"  SIPp: {result.summary()}")
        first_call: dict[str, float] = {}
        for record in engine.flow_app.recent:
            started = datetime.fromisoformat(record.started).timestamp()
            digest = record.digest
            if digest in saved_at and started < first_call.get(digest, float("inf")):
                first_call[digest] = started
        for digest, t_saved in saved_at.items():
            if digest in first_call:
                out["saved -> next call on it"].append(first_call[digest] - t_saved)
        stats = result.stats
        print(
            f"  SIPp: {stats.successful if stats else '?'} calls ok, "
            f"{stats.failed if stats else '?'} failed, {cps:g} calls/s; "
            f"{len(out['saved -> next call on it'])}/{edits} versions took a call"
        )
    finally:
        await engine.stop()
    return out


async def amain(args: argparse.Namespace) -> None:
    from engine.logs import configure_logging

    configure_logging("error", json=False)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        folder = write_folder(tmp / "flows", args.nodes)
        size = (folder / "big.yaml").stat().st_size
        print(f"flow_reload: generated flow of {args.nodes} nodes ({size / 1024:.0f} KiB YAML)")
        print("1. validation (load_flowset)")
        times = bench_validation(folder, args.runs)
        print(line("validation", times[1:] or times))
        print(f"2. publish through the registry ({args.edits} edits, real TTS and SQLite)")
        figures = await bench_publish(folder, tmp / "data", args.edits)
        for name, values in figures.items():
            print(line(name, values))
        if not args.no_calls:
            print(f"3. end to end: engine + SIPp at {args.cps:g} calls/s, {args.edits} edits")
            calls = await bench_calls(tmp, args.edits, args.cps)
            for name, values in calls.items():
                if values:
                    print(line(name, values))


def main() -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--nodes", type=int, default=500)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--edits", type=int, default=20)
    parser.add_argument("--cps", type=float, default=10.0)
    parser.add_argument("--no-calls", action="store_true", help="Skip the SIPp part")
    asyncio.run(amain(parser.parse_args()))


if __name__ == "__main__":
    main()
