"""Hot reload under load: flows edited while 100+ SIPp calls run through them.

An in-process engine serves a flow from a temp flows folder. SIPp places
``CALLS`` calls at ``RATE`` per second; each caller presses 1 at the menu
(RFC 4733), stays ~20 s on a second menu, presses 2 and waits for the
engine's BYE (tests/scenarios/uac_two_digits_wait_bye.xml). Once more than
100 calls are up, 20 edits are saved to ``main.yaml`` (plain writes, as an
editor does), mixing valid ones (each sends digit 1 to a node named after
the edit) and invalid ones (YAML syntax, unknown target, out-of-range value,
a menu with nowhere to go on no input). Then:

* SIPp: every call succeeded (0 failed): no call was dropped or broken;
* every call's recorded path (GET /calls/recent) is the path of the flow
  version it started on (the record's digest and version id), and that
  version was the live one when the call started (the registry's swap
  timeline);
* every valid edit went live (a swap with its node) and took calls;
  every invalid edit was refused with diagnostics and changed nothing;
* the version database holds exactly the start-up version plus the valid edits.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from engine.app import Engine
from ivr.registry import LiveFlows, PublishResult
from tests.conftest import engine_config
from tests.peers.sipp import Sipp

pytestmark = pytest.mark.peer

SCENARIO = Path(__file__).parent / "scenarios" / "uac_two_digits_wait_bye.xml"
CALLS = 190
RATE = 5.0  # calls/s; ~22 s per call -> ~110 calls up at once, 18 s to edit in
EDITS = 20
WAIT = 30.0  # guard against hangs, not a timing assertion

ROUTES = "routes:\n  - {number: ivr, flow: main}\ndefault: main\n"


def flow_yaml(k: int) -> str:
    """A valid flow whose digit 1 leads to node ``v{k}``."""
    return (
        "flow: main\n"
        "start: menu\n"
        "nodes:\n"
        "  menu:\n"
        "    type: menu\n"
        f"    prompt: Version {k}. Press one.\n"
        "    options:\n"
        f'      "1": v{k}\n'
        "    timeout: 20\n"
        "    no_input: bye\n"
        f"  v{k}:\n"
        "    type: say\n"
        f"    text: You are on version {k}.\n"
        "    next: hold\n"
        "  hold:\n"
        "    type: menu\n"
        "    prompt: Press two to finish.\n"
        "    options:\n"
        '      "2": bye\n'
        "    timeout: 40\n"
        "    no_input: bye\n"
        "  bye:\n"
        "    type: hangup\n"
    )


def invalid_yaml(k: int) -> str:
    kind = k % 4
    if kind == 0:
        return flow_yaml(k).replace("start: menu\n", "start: [menu\n")  # YAML syntax
    if kind == 1:
        return flow_yaml(k).replace(f'"1": v{k}', f'"1": w{k}')  # unknown target
    if kind == 2:
        return flow_yaml(k).replace("timeout: 40", "timeout: 400")  # out of range
    return flow_yaml(k).replace("    no_input: bye\n", "", 1)  # nowhere to go


def is_valid_edit(i: int) -> bool:
    return i % 3 != 2  # 14 valid, 6 invalid, interleaved


@dataclass
class Timeline:
    """Swaps and publish results as the registry reports them."""

    swaps: list[tuple[datetime, str, str, int]] = field(default_factory=list)
    """(wall time, digest, node digit 1 leads to, version id)."""
    results: asyncio.Queue[PublishResult] = field(default_factory=asyncio.Queue)
    swapped: asyncio.Queue[str] = field(default_factory=asyncio.Queue)

    def on_swap(self, live: LiveFlows[Any]) -> None:
        target = live.flowset.flows["main"].nodes["menu"].options["1"]
        self.swaps.append((datetime.now(UTC), live.digest, target, live.version))
        self.swapped.put_nowait(target)

    def live_at(self, when: datetime) -> tuple[str, int]:
        """(digest, version) live at ``when``."""
        live = ("", 0)
        for at, digest, _, version in self.swaps:
            if at <= when:
                live = (digest, version)
        return live


async def _wait_for(predicate: Any, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while not predicate():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def test_twenty_edits_under_100_calls_drop_nothing(tmp_path: Path) -> None:
    folder = tmp_path / "flows"
    folder.mkdir()
    (folder / "main.yaml").write_text(flow_yaml(0))
    (folder / "routes.yaml").write_text(ROUTES)
    engine = Engine(engine_config(tmp_path, flows_dir=folder, capture=False))
    await engine.start()
    try:
        assert engine.flow_reload is not None and engine.calls is not None
        registry = engine.flow_reload.registry
        timeline = Timeline()
        live = registry.live()
        assert live is not None and live.version == 1
        timeline.on_swap(live)
        await timeline.swapped.get()
        registry.subscribe(timeline.on_swap)
        registry.on_result(timeline.results.put_nowait)
        await asyncio.wait_for(engine.flow_reload.watcher.ready.wait(), WAIT)

        sipp = Sipp(
            SCENARIO,
            remote=f"{engine.sip.host}:{engine.sip.port}",
            service="ivr",
            calls=CALLS,
            rate=RATE,
            timeout=120,
        )
        handle = await sipp.start_async()
        calls = engine.calls
        await _wait_for(lambda: len(calls.legs) >= 100, "100 calls in progress")

        invites = engine.ua.counters
        peak = 0
        refused: list[PublishResult] = []
        valid_targets: list[str] = []
        for i in range(1, EDITS + 1):
            peak = max(peak, len(calls.legs))
            while not timeline.results.empty():  # only what this edit causes counts
                timeline.results.get_nowait()
            if is_valid_edit(i):
                (folder / "main.yaml").write_text(flow_yaml(i))
                while (target := await asyncio.wait_for(timeline.swapped.get(), WAIT)) != f"v{i}":
                    pass
                valid_targets.append(target)
                # Let new calls arrive on this version before the next edit.
                seen = invites.get(("in", "INVITE"), 0)
                await _wait_for(
                    lambda seen=seen: invites.get(("in", "INVITE"), 0) > seen, "a new call"
                )
            else:
                before = registry.live()
                (folder / "main.yaml").write_text(invalid_yaml(i))
                while (result := await asyncio.wait_for(timeline.results.get(), WAIT)).status != (
                    "invalid"
                ):
                    pass
                refused.append(result)
                assert registry.live() is before  # nothing changed for new calls
            peak = max(peak, len(calls.legs))

        result = await handle.wait(150)
        assert result.ok, result.summary()
        assert result.stats is not None
        assert result.stats.successful == CALLS and result.stats.failed == 0
        assert peak >= 100, peak

        assert engine.http is not None
        url = f"http://127.0.0.1:{engine.http.port}/calls/recent?limit=1000"
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            assert response.status == 200
            recent = await response.json()
        records = [item["flow"] for item in recent if "flow" in item]
        assert len(records) == CALLS

        target_of = {digest: target for _, digest, target, _ in timeline.swaps}
        calls_per_target: dict[str, int] = {}
        for record in records:
            target = target_of[record["digest"]]  # a version that really went live
            nodes = [step["node"] for step in record["path"]]
            assert nodes == ["menu", target, "hold", "bye"], record
            assert record["outcome"] == "hangup", record
            started = datetime.fromisoformat(record["started"])
            assert timeline.live_at(started) == (record["digest"], record["version"]), record
            calls_per_target[target] = calls_per_target.get(target, 0) + 1
        assert valid_targets == [f"v{i}" for i in range(1, EDITS + 1) if is_valid_edit(i)]
        for target in valid_targets:
            assert calls_per_target.get(target, 0) >= 1, (target, calls_per_target)

        assert len(refused) == EDITS - len(valid_targets)
        shape = re.compile(rf"{re.escape(str(folder))}/main\.yaml:\d+:\d+: (error|warning): .+")
        for r in refused:
            assert r.error is not None, r
            assert [d for d in r.error.diagnostics if d["severity"] == "error"], r
            assert all(shape.fullmatch(d["text"]) for d in r.error.diagnostics), r
        history = engine.flow_reload.store.history()
        assert len(history) == 1 + len(valid_targets)
        assert {v.source for v in history} == {"startup", "watch"}
        assert engine.calls.legs == {}
    finally:
        await engine.stop()
