"""The flow registry with the real loader, a real SQLite file and real files in tmp_path.

The prerender step is a recording coroutine standing in for TTS (the engine
test runs the real one): it checks that the old set is still live while the
new one is rendered.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from ivr.loader import FlowSet, load_flowset
from ivr.registry import FlowRegistry, NoFlowsPublished, ReloadMetrics
from ivr.versions import DB_NAME, UnknownVersion, VersionStore

T0 = 1_760_000_000.0


def flow_text(say: str, *, extra_node: str = "") -> str:
    return (
        "flow: main\n"
        "start: menu\n"
        "nodes:\n"
        "  menu:\n"
        "    type: menu\n"
        "    prompt: Press one.\n"
        "    options:\n"
        '      "1": one\n'
        "    no_input: bye\n"
        "  one:\n"
        "    type: say\n"
        f"    text: {say}\n"
        "    next: bye\n"
        "  bye:\n"
        "    type: hangup\n" + extra_node
    )


SALES = "flow: sales\nstart: hi\nnodes:\n  hi:\n    type: say\n    text: Sales.\n"
ROUTES = "default: main\n"


@dataclass
class Prerender:
    """Records what was rendered and what was live at that moment."""

    registry: FlowRegistry[FlowSet] | None = None
    rendered: list[str] = field(default_factory=list)
    live_during: list[int | None] = field(default_factory=list)
    fail: bool = False

    async def __call__(self, flowset: FlowSet) -> None:
        assert self.registry is not None
        live = self.registry.live()
        self.live_during.append(live.version if live else None)
        assert live is None or live.flowset is not flowset  # not swapped in yet
        await asyncio.sleep(0)  # a real render yields to the loop
        if self.fail:
            raise RuntimeError("espeak-ng: not found")
        self.rendered.append(flowset.digest)


@dataclass
class Setup:
    folder: Path
    data: Path
    store: VersionStore
    registry: FlowRegistry[FlowSet]
    prerender: Prerender


def make(folder: Path, data: Path) -> Setup:
    store = VersionStore(data / DB_NAME)
    prerender = Prerender()
    registry: FlowRegistry[FlowSet] = FlowRegistry(
        folder,
        store=store,
        load=load_flowset,
        prerender=prerender,
        staging=data / "flows-staging",
        metrics=ReloadMetrics(),
    )
    prerender.registry = registry
    return Setup(folder, data, store, registry, prerender)


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    folder = tmp_path / "flows"
    folder.mkdir()
    (folder / "main.yaml").write_text(flow_text("Version one."))
    (folder / "routes.yaml").write_text(ROUTES)
    (folder / "main.test.yaml").write_text("cases: []\n")  # not part of the set
    (folder / "prompts").mkdir()
    s = make(folder, tmp_path / "data")
    try:
        yield s
    finally:
        s.store.close()


def files_of(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


async def test_start_publishes_version_1(setup: Setup) -> None:
    reg = setup.registry
    with pytest.raises(NoFlowsPublished, match="no valid flow set is published from"):
        reg.current()
    result = await reg.start(now=T0)
    assert (result.status, result.version) == ("published", 1)
    assert result.changed == ("main.yaml", "routes.yaml")
    live = reg.live()
    assert live is not None and live.version == 1 and live.source == "startup"
    assert reg.current() is live.flowset
    assert set(reg.current().flows) == {"main"}
    status = reg.status()
    assert status["version"] == 1 and status["last_error"] is None
    assert status["digest"] == reg.current().digest
    stored = setup.store.get(1)
    assert dict(stored.files) == {"main.yaml": flow_text("Version one."), "routes.yaml": ROUTES}
    assert setup.prerender.rendered == [reg.current().digest]


async def test_a_snapshot_taken_before_a_publish_stays_the_old_object(setup: Setup) -> None:
    reg = setup.registry
    await reg.start(now=T0)
    snapshot = reg.current()
    old_text = snapshot.flows["main"].nodes["one"].text  # type: ignore[union-attr]
    (setup.folder / "main.yaml").write_text(flow_text("Version two."))
    result = await reg.publish(now=T0 + 1, source="watch")
    assert (result.status, result.version, result.changed) == ("published", 2, ("main.yaml",))
    assert reg.current() is not snapshot
    assert snapshot.flows["main"].nodes["one"].text == old_text == "Version one."  # type: ignore[union-attr]
    assert reg.current().flows["main"].nodes["one"].text == "Version two."  # type: ignore[union-attr]
    # The new set was rendered while version 1 was still live.
    assert setup.prerender.live_during == [None, 1]


async def test_current_during_a_slow_publish_is_the_old_set(setup: Setup) -> None:
    reg = setup.registry
    await reg.start(now=T0)
    before = reg.current()
    gate = asyncio.Event()
    entered = asyncio.Event()

    async def slow(flowset: FlowSet) -> None:
        entered.set()
        await gate.wait()

    reg.prerender = slow  # a render that takes its time
    (setup.folder / "main.yaml").write_text(flow_text("Version two."))
    task = asyncio.create_task(reg.publish(now=T0 + 1, source="watch"))
    await entered.wait()
    assert reg.current() is before  # calls starting now still get version 1
    gate.set()
    result = await task
    assert result.version == 2 and reg.current() is not before


async def test_an_invalid_edit_is_refused_and_the_old_set_keeps_serving(setup: Setup) -> None:
    reg = setup.registry
    await reg.start(now=T0)
    before = reg.current()
    (setup.folder / "main.yaml").write_text(
        flow_text("Version two.").replace("next: bye", "next: byee")
    )
    with capture_logs() as logs:
        result = await reg.publish(now=T0 + 1, source="watch")
    assert result.status == "invalid" and result.version == 1
    assert reg.current() is before
    assert [v.id for v in setup.store.history()] == [1]
    err = reg.last_error
    assert err is not None and err.source == "watch"
    assert err.message == f"1 error(s) in {setup.folder}; the live version 1 keeps serving"
    expected = (
        f"{setup.folder}/main.yaml:13:11: error: node 'one' (say): target 'byee' is not a"
        " node of flow 'main' (fix: did you mean 'bye'? nodes: bye, menu, one)"
    )
    assert [d["text"] for d in err.diagnostics] == [expected]
    d = err.diagnostics[0]
    assert (d["line"], d["column"], d["severity"]) == (13, 11, "error")
    assert d["hint"] == "did you mean 'bye'? nodes: bye, menu, one"
    invalid_lines = [e for e in logs if e["event"] == "flows.invalid"]
    assert [e["diagnostic"] for e in invalid_lines] == [expected]
    assert reg.status()["last_error"]["diagnostics"][0]["text"] == expected
    # Fixing the file publishes and clears the error.
    (setup.folder / "main.yaml").write_text(flow_text("Version two."))
    result = await reg.publish(now=T0 + 2, source="watch")
    assert (result.status, result.version) == ("published", 2)
    assert reg.last_error is None


async def test_yaml_syntax_errors_are_refused_with_their_position(setup: Setup) -> None:
    reg = setup.registry
    await reg.start(now=T0)
    (setup.folder / "routes.yaml").write_text("default: [main\n")
    result = await reg.publish(now=T0 + 1, source="watch")
    assert result.status == "invalid" and result.error is not None
    (diag,) = result.error.diagnostics
    assert diag["file"] == str(setup.folder / "routes.yaml") and diag["line"] >= 1


async def test_unchanged_contents_are_not_republished(setup: Setup) -> None:
    reg = setup.registry
    await reg.start(now=T0)
    first = reg.current()
    result = await reg.publish(now=T0 + 1, source="watch")
    assert (result.status, result.version) == ("unchanged", 1)
    assert reg.current() is first
    assert len(setup.store.history()) == 1
    assert setup.prerender.rendered == [first.digest]  # not rendered again


async def test_rollback_restores_files_byte_exact_and_publishes(setup: Setup) -> None:
    reg = setup.registry
    folder = setup.folder
    # Version 1 has a CRLF file and no final newline in routes.yaml.
    (folder / "main.yaml").write_bytes(flow_text("Version one.").replace("\n", "\r\n").encode())
    (folder / "routes.yaml").write_bytes(b"default: main")
    await reg.start(now=T0)
    v1_bytes = files_of(folder)
    v1_digest = reg.current().digest
    (folder / "main.yaml").write_text(flow_text("Version two."))
    (folder / "sales.yaml").write_text(SALES)
    (folder / "routes.yaml").write_text(
        "routes:\n  - {number: '2000', flow: sales}\ndefault: main\n"
    )
    assert (await reg.publish(now=T0 + 1, source="watch")).version == 2
    assert set(reg.current().flows) == {"main", "sales"}
    result = await reg.rollback(1, now=T0 + 2)
    assert (result.status, result.version) == ("published", 3)
    assert set(result.changed) == {"main.yaml", "routes.yaml", "sales.yaml"}
    assert files_of(folder) == v1_bytes  # byte-exact; sales.yaml removed; tests kept
    assert reg.current().digest == v1_digest
    v3 = setup.store.get(3)
    assert v3.source == "rollback" and v3.digest == v1_digest
    assert dict(v3.files) == dict(setup.store.get(1).files)
    assert v3.files["main.yaml"].endswith("\r\n")
    # The folder, the database and the running set agree: publishing it again is a no-op.
    assert (await reg.publish(now=T0 + 3, source="watch")).status == "unchanged"


async def test_rollback_keeps_a_copy_of_unpublished_edits(setup: Setup) -> None:
    reg = setup.registry
    await reg.start(now=T0)
    (setup.folder / "main.yaml").write_text(flow_text("Version two."))
    await reg.publish(now=T0 + 1, source="watch")
    broken = flow_text("Draft.").replace("next: bye", "next: nowhere")
    (setup.folder / "main.yaml").write_text(broken)
    assert (await reg.publish(now=T0 + 2, source="watch")).status == "invalid"
    with capture_logs() as logs:
        result = await reg.rollback(1, now=T0 + 3)
    assert result.status == "published" and result.version == 3
    (saved,) = [e for e in logs if e["event"] == "flows.unpublished_edits_saved"]
    assert saved["files"] == ["main.yaml"]
    assert (Path(saved["backup"]) / "main.yaml").read_text() == broken
    assert reg.last_error is None


async def test_a_rollback_that_no_longer_validates_changes_nothing(setup: Setup) -> None:
    reg = setup.registry
    await reg.start(now=T0)
    before = files_of(setup.folder)
    live = reg.current()
    # A stored version the loader refuses today (e.g. written under older rules).
    bad = {"main.yaml": flow_text("Old.").replace("    no_input: bye\n", ""), "routes.yaml": ROUTES}
    setup.store.publish(bad, digest="old-rules", now=T0 + 1, source="cli")
    result = await reg.rollback(2, now=T0 + 2)
    assert result.status == "invalid" and result.version == 1
    assert files_of(setup.folder) == before
    assert reg.current() is live
    assert result.error is not None
    (diag,) = result.error.diagnostics
    # Shown against the real flows folder, not the staging copy.
    assert diag["file"] == str(setup.folder / "main.yaml")
    assert "no `no_input:`" in diag["message"]
    assert result.error.message == (
        "the files to publish have 1 error(s); nothing was written and the live"
        " version 1 keeps serving"
    )
    assert not list((setup.data / "flows-staging").glob("candidate*"))


async def test_rollback_to_an_unknown_version(setup: Setup) -> None:
    await setup.registry.start(now=T0)
    with pytest.raises(UnknownVersion, match="no flow version 9 \\(versions 1-1 exist\\)"):
        await setup.registry.rollback(9, now=T0)


async def test_a_restart_reloads_history_and_republishes_nothing(setup: Setup) -> None:
    await setup.registry.start(now=T0)
    (setup.folder / "main.yaml").write_text(flow_text("Version two."))
    await setup.registry.publish(now=T0 + 1, source="watch")
    setup.store.close()
    again = make(setup.folder, setup.data)
    try:
        result = await again.registry.start(now=T0 + 10)
        assert (result.status, result.version) == ("published", 2)
        assert [v.id for v in again.store.history()] == [2, 1]
        live = again.registry.live()
        assert live is not None and live.version == 2
        (setup.folder / "main.yaml").write_text(flow_text("Version three."))
        assert (await again.registry.publish(now=T0 + 11, source="watch")).version == 3
    finally:
        again.store.close()


async def test_an_invalid_folder_at_start_serves_the_last_stored_version(setup: Setup) -> None:
    await setup.registry.start(now=T0)
    setup.store.close()
    (setup.folder / "routes.yaml").write_text("default: nosuchflow\n")
    again = make(setup.folder, setup.data)
    try:
        result = await again.registry.start(now=T0 + 10)
        assert (result.status, result.version) == ("unchanged", 1)
        flowset = again.registry.current()
        assert flowset.digest == again.store.get(1).digest
        assert (flowset.folder / "prompts").resolve() == (setup.folder / "prompts").resolve()
        status = again.registry.status()
        assert status["version"] == 1
        (error,) = [d for d in status["last_error"]["diagnostics"] if d["severity"] == "error"]
        assert error["text"].endswith(
            "routes.yaml:1:10: error: default: there is no flow 'nosuchflow' (fix: flows: main)"
        )
        (setup.folder / "routes.yaml").write_text(ROUTES)
        result = await again.registry.publish(now=T0 + 11, source="watch")
        assert (result.status, result.version) == ("unchanged", 1)
        assert again.registry.last_error is None
    finally:
        again.store.close()


async def test_a_prerender_failure_refuses_the_version(setup: Setup) -> None:
    reg = setup.registry
    await reg.start(now=T0)
    before = reg.current()
    setup.prerender.fail = True
    (setup.folder / "main.yaml").write_text(flow_text("Version two."))
    result = await reg.publish(now=T0 + 1, source="watch")
    assert result.status == "invalid" and result.error is not None
    assert result.error.message.startswith("prompts could not be rendered (espeak-ng: not found)")
    assert reg.current() is before and len(setup.store.history()) == 1


async def test_a_locked_database_refuses_and_keeps_serving(setup: Setup) -> None:
    reg = setup.registry
    await reg.start(now=T0)
    before = reg.current()
    setup.store.timeout = 0.2
    setup.store._db.execute("PRAGMA busy_timeout=200")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys\n"
            f"db = sqlite3.connect({str(setup.data / DB_NAME)!r}, isolation_level=None)\n"
            "db.execute('BEGIN EXCLUSIVE')\n"
            "print('locked', flush=True)\n"
            "sys.stdin.readline()\n",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        (setup.folder / "main.yaml").write_text(flow_text("Version two."))
        result = await reg.publish(now=T0 + 1, source="watch")
    finally:
        assert holder.stdin is not None
        holder.stdin.write("\n")
        holder.stdin.close()
        holder.wait(10)
    assert result.status == "invalid" and result.error is not None
    assert "is locked by another process" in result.error.message
    assert reg.current() is before
    result = await reg.publish(now=T0 + 2, source="watch")  # the lock is gone
    assert (result.status, result.version) == ("published", 2)


async def test_concurrent_publishes_run_one_at_a_time(setup: Setup) -> None:
    reg = setup.registry
    await reg.start(now=T0)
    (setup.folder / "main.yaml").write_text(flow_text("Version two."))
    results = await asyncio.gather(
        *(reg.publish(now=T0 + i, source="api") for i in range(1, 6)),
        reg.rollback(1, now=T0 + 6),
    )
    statuses = [(r.status, r.version) for r in results]
    assert statuses[0] == ("published", 2)
    assert statuses[1:5] == [("unchanged", 2)] * 4
    assert statuses[5] == ("published", 3)
    assert [v.source for v in setup.store.history()] == ["rollback", "api", "startup"]


async def test_metrics_and_validate(setup: Setup) -> None:
    reg = setup.registry
    await reg.start(now=T0)
    (setup.folder / "main.yaml").write_text(flow_text("Version two."))
    saved = (setup.folder / "main.yaml").stat().st_mtime
    result = await reg.publish(now=T0 + 1, source="watch", saved_at=saved)
    assert result.reload_seconds is not None and result.reload_seconds >= 0
    assert result.swap_seconds is not None and result.validation_seconds > 0
    m = reg.metrics

    def sample(name: str, labels: dict[str, str] | None = None) -> Any:
        for metric in (
            m.reload_seconds.collect()
            + m.validation_seconds.collect()
            + (m.publishes.collect() + m.version.collect())
        ):
            for s in metric.samples:
                if s.name == name and (labels is None or s.labels == labels):
                    return s.value
        raise AssertionError(name)

    assert sample("callcore_flow_reload_seconds_count") == 1
    assert sample("callcore_flow_validation_seconds_count") == 2
    assert sample("callcore_flow_publishes_total", {"outcome": "published"}) == 2
    assert sample("callcore_flow_version") == 2
    # validate(): nothing changes, errors point at the real folder.
    assert await reg.validate({"main.yaml": flow_text("Candidate.")}) == ()
    diags = await reg.validate({"main.yaml": flow_text("X.").replace("next: bye", "next: b")})
    assert [str(d.file) for d in diags] == [str(setup.folder / "main.yaml")]
    assert reg.current().flows["main"].nodes["one"].text == "Version two."  # type: ignore[union-attr]
    assert list((setup.data / "flows-staging").iterdir()) == []
