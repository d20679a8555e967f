"""``ivr flows history/show/rollback`` offline, on a real SQLite file and flows folder."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from engine.reload import FlowReload
from ivr.cli import cli
from ivr.loader import FlowSet, load_flowset
from ivr.registry import FlowRegistry
from ivr.versions import DB_NAME, VersionStore
from tests.conftest import engine_config
from tests.test_ivr_registry import ROUTES, SALES, flow_text

T0 = 1_760_000_000.0
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
async def folders(tmp_path: Path) -> tuple[Path, Path]:
    """Three published versions: v1 (CRLF main), v2 (text), v3 (adds sales)."""
    folder, data = tmp_path / "flows", tmp_path / "data"
    folder.mkdir()
    (folder / "main.yaml").write_bytes(flow_text("Version one.").replace("\n", "\r\n").encode())
    (folder / "routes.yaml").write_text(ROUTES)
    (folder / "main.test.yaml").write_text("cases: []\n")
    with VersionStore(data / DB_NAME) as store:
        reg: FlowRegistry[FlowSet] = FlowRegistry(
            folder, store=store, load=load_flowset, staging=data / "staging"
        )
        await reg.start(now=T0)
        (folder / "main.yaml").write_text(flow_text("Version two."))
        await reg.publish(now=T0 + 60, source="watch")
        (folder / "sales.yaml").write_text(SALES)
        (folder / "routes.yaml").write_text("routes:\n  - {number: '7', flow: sales}\n" + ROUTES)
        await reg.publish(now=T0 + 120, source="api")
    return folder, data


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--log-level", "error", *args], obj={})
    return result.exit_code, result.stdout, result.stderr


def test_history_table(folders: tuple[Path, Path]) -> None:
    _, data = folders
    code, out, _ = run("flows", "history", "--data", str(data))
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "VERSION  PUBLISHED (UTC)       DIGEST        SOURCE   FILES CHANGED"
    assert lines[1].startswith("3        2025-10-09T08:55:20Z  ")
    assert lines[1].endswith("  api      routes.yaml, sales.yaml")
    assert lines[3].endswith("  startup  main.yaml, routes.yaml")
    assert len(lines) == 4
    with VersionStore(data / DB_NAME) as store:
        assert lines[2].split()[2] == store.get(2).digest[:12]
    code, out, _ = run("flows", "history", "--data", str(data), "--limit", "1")
    assert len(out.splitlines()) == 2


def test_show_diff_and_file(folders: tuple[Path, Path]) -> None:
    _, data = folders
    code, out, _ = run("flows", "show", "2", "--diff", "--data", str(data))
    assert code == 0
    assert out.startswith("version    2\npublished  2025-10-09T08:54:20Z\nsource     watch\n")
    assert "changed    main.yaml\nfiles\n  main.yaml  (" in out
    # v1 was CRLF: every line changes (Click's test runner shows \r\n as \n).
    assert "\n-    text: Version one.\n" in out and "\n+    text: Version two.\n" in out
    with VersionStore(data / DB_NAME) as store:
        assert "\n-    text: Version one.\r\n" in store.get(2).diff
    result = CliRunner().invoke(
        cli, ["flows", "show", "1", "--file", "main.yaml", "--data", str(data)]
    )
    assert result.exit_code == 0
    assert result.stdout_bytes == flow_text("Version one.").replace("\n", "\r\n").encode()
    code, _, err = run("flows", "show", "1", "--file", "nope.yaml", "--data", str(data))
    assert code == 1
    assert "version 1 has no file 'nope.yaml'; it has main.yaml, routes.yaml" in err
    code, _, err = run("flows", "show", "9", "--data", str(data))
    assert code == 1 and "no flow version 9 (versions 1-3 exist)" in err


def test_offline_rollback_restores_bytes_records_and_backs_up(folders: tuple[Path, Path]) -> None:
    folder, data = folders
    draft = flow_text("Draft.").replace("next: bye", "next: nowhere")
    (folder / "main.yaml").write_text(draft)  # an edit nobody published
    code, out, _ = run("flows", "rollback", "1", "--data", str(data), "--flows", str(folder))
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0] == f"version 1 restored into {folder}: published as version 4"
    assert lines[1] == "  written: main.yaml, routes.yaml"
    assert lines[2] == "  removed: sales.yaml"
    assert lines[3].startswith("  unpublished edits saved under ") and lines[3].endswith(
        ": main.yaml"
    )
    backup = Path(lines[3].split(" under ", 1)[1].rsplit(":", 1)[0])
    assert (backup / "main.yaml").read_text() == draft
    assert (folder / "main.yaml").read_bytes() == flow_text("Version one.").replace(
        "\n", "\r\n"
    ).encode()
    assert (folder / "routes.yaml").read_text() == ROUTES
    assert not (folder / "sales.yaml").exists()
    assert (folder / "main.test.yaml").read_text() == "cases: []\n"  # not a flow file
    with VersionStore(data / DB_NAME) as store:
        v4 = store.get(4)
        assert v4.source == "rollback" and v4.digest == store.get(1).digest
        assert dict(v4.files) == dict(store.get(1).files)
    # The folder now loads to exactly version 4's digest: an engine's watcher republishes nothing.
    assert load_flowset(folder).digest == v4.digest
    code, out, _ = run("flows", "rollback", "1", "--data", str(data), "--flows", str(folder))
    assert code == 0 and "already the latest (version 4)" in out


def test_offline_rollback_of_a_version_that_no_longer_validates(
    folders: tuple[Path, Path],
) -> None:
    folder, data = folders
    with VersionStore(data / DB_NAME) as store:
        bad = {
            "main.yaml": flow_text("Old.").replace("next: bye", "next: gone"),
            "routes.yaml": ROUTES,
        }
        store.publish(bad, digest="older-rules", now=T0 + 200, source="cli")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    code, _, err = run("flows", "rollback", "4", "--data", str(data), "--flows", str(folder))
    assert code == 1
    assert err.startswith(f"{folder}/main.yaml:13:11: error: node 'one' (say): target 'gone'")
    assert err.endswith("Error: version 4 does not validate any more; nothing was changed\n")
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    with VersionStore(data / DB_NAME) as store:
        assert len(store.history()) == 4


def test_missing_database_and_folder(tmp_path: Path) -> None:
    code, _, err = run("flows", "history", "--data", str(tmp_path / "none"))
    assert code == 1
    assert f"no flow version database at {tmp_path / 'none' / DB_NAME}" in err
    (tmp_path / "data").mkdir()
    VersionStore(tmp_path / "data" / DB_NAME).close()
    code, out, _ = run("flows", "history", "--data", str(tmp_path / "data"))
    assert code == 0 and out == f"no flow version published yet in {tmp_path / 'data' / DB_NAME}\n"
    code, _, err = run(
        "flows", "rollback", "1", "--data", str(tmp_path / "data"), "--flows", str(tmp_path / "x")
    )
    assert code == 1 and f"flows folder {tmp_path / 'x'} does not exist" in err


def test_a_corrupt_database_is_named(tmp_path: Path) -> None:
    (tmp_path / DB_NAME).write_bytes(b"garbage" * 200)
    code, _, err = run("flows", "history", "--data", str(tmp_path))
    assert code == 1
    assert f"flow version database {tmp_path / DB_NAME} is damaged" in err


async def test_an_engine_picks_up_an_offline_rollback_through_its_watcher(
    folders: tuple[Path, Path], tmp_path: Path
) -> None:
    folder, data = folders
    reload = FlowReload(engine_config(tmp_path, flows_dir=folder, data_dir=data))
    swapped: asyncio.Queue[int] = asyncio.Queue()
    try:
        await reload.start()
        live = reload.registry.live()
        assert live is not None and live.version == 3
        reload.registry.subscribe(lambda live: swapped.put_nowait(live.version))
        await asyncio.wait_for(reload.watcher.ready.wait(), 15)
        code, out, _ = run("flows", "rollback", "2", "--data", str(data), "--flows", str(folder))
        assert code == 0 and "published as version 4" in out
        assert await asyncio.wait_for(swapped.get(), 15) == 4
        assert reload.registry.current().digest == reload.store.get(2).digest
        assert [v.source for v in reload.store.history()] == ["rollback", "api", "watch", "startup"]
    finally:
        await reload.stop()


def test_serve_refuses_a_corrupt_database(folders: tuple[Path, Path], tmp_path: Path) -> None:
    folder, _ = folders
    data = tmp_path / "broken"
    data.mkdir()
    (data / DB_NAME).write_bytes(b"not sqlite " * 100)
    proc = subprocess.run(
        [sys.executable, "-m", "ivr", "serve", "--data", str(data), "--flows", str(folder),
         "--sip", "127.0.0.1:0", "--http", "127.0.0.1:0"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert f"Error: cannot start: flow version database {data / DB_NAME} is damaged" in proc.stderr
    assert (data / DB_NAME).read_bytes() == b"not sqlite " * 100
