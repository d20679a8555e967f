"""The /flows/ HTTP API over a real registry, loader and SQLite file, on 127.0.0.1,
and ``ivr flows rollback --engine`` against it."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import ClientSession, web
from aiohttp.test_utils import TestServer

from engine.flowapi import flows_app
from ivr.loader import FlowSet, load_flowset
from ivr.registry import FlowRegistry
from ivr.versions import DB_NAME, VersionStore
from tests.test_ivr_registry import ROUTES, flow_text

T0 = 1_760_000_000.0
ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Api:
    url: str
    folder: Path
    registry: FlowRegistry[FlowSet]
    store: VersionStore
    http: ClientSession


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    folder = tmp_path / "flows"
    folder.mkdir()
    (folder / "main.yaml").write_text(flow_text("Version one."))
    (folder / "routes.yaml").write_text(ROUTES)
    store = VersionStore(tmp_path / "data" / DB_NAME)
    registry: FlowRegistry[FlowSet] = FlowRegistry(
        folder, store=store, load=load_flowset, staging=tmp_path / "data" / "staging"
    )
    await registry.start(now=T0)
    (folder / "main.yaml").write_text(flow_text("Version two."))
    await registry.publish(now=T0 + 60, source="watch")
    root = web.Application()
    root.add_subapp("/flows/", flows_app(registry, clock=lambda: T0 + 120))
    server = TestServer(root, host="127.0.0.1", port=0)
    await server.start_server()
    try:
        async with ClientSession() as http:
            yield Api(f"http://127.0.0.1:{server.port}", folder, registry, store, http)
    finally:
        await server.close()
        store.close()


async def _json(api: Api, method: str, path: str, **kw: object) -> tuple[int, dict]:
    async with api.http.request(method, api.url + path, **kw) as r:  # type: ignore[arg-type]
        assert r.content_type == "application/json", await r.text()
        return r.status, await r.json()


async def test_versions_list_and_one_version_with_its_diff(api: Api) -> None:
    status, body = await _json(api, "GET", "/flows/versions")
    assert status == 200 and body["live"] == 2
    assert [(v["id"], v["source"], v["live"]) for v in body["versions"]] == [
        (2, "watch", True),
        (1, "startup", False),
    ]
    assert body["versions"][0]["published"] == "2025-10-09T08:54:20Z"
    assert body["versions"][0]["changed"] == ["main.yaml"]
    status, body = await _json(api, "GET", "/flows/versions?limit=1")
    assert [v["id"] for v in body["versions"]] == [2]
    status, one = await _json(api, "GET", "/flows/versions/2")
    assert status == 200 and one["files"] == ["main.yaml", "routes.yaml"]
    assert "-    text: Version one.\n+    text: Version two.\n" in one["diff"]
    assert "contents" not in one
    status, one = await _json(api, "GET", "/flows/versions/1?files=1")
    assert one["contents"]["main.yaml"] == flow_text("Version one.")


async def test_status_shows_the_last_error_with_its_diagnostics(api: Api) -> None:
    status, body = await _json(api, "GET", "/flows/status")
    assert status == 200 and body["version"] == 2 and body["last_error"] is None
    (api.folder / "main.yaml").write_text(flow_text("X.").replace("next: bye", "next: byee"))
    await api.registry.publish(now=T0 + 90, source="watch")
    status, body = await _json(api, "GET", "/flows/status")
    assert body["version"] == 2
    (diag,) = body["last_error"]["diagnostics"]
    assert diag["file"] == str(api.folder / "main.yaml")
    assert (diag["line"], diag["column"]) == (13, 11)
    assert diag["hint"] == "did you mean 'bye'? nodes: bye, menu, one"


async def test_rollback_restores_and_publishes(api: Api) -> None:
    status, body = await _json(api, "POST", "/flows/rollback/1?author=alice")
    assert status == 200 and (body["status"], body["version"]) == ("published", 3)
    assert (api.folder / "main.yaml").read_text() == flow_text("Version one.")
    v3 = api.store.get(3)
    assert (v3.source, v3.author, v3.published_at) == ("rollback", "alice", T0 + 120)
    status, body = await _json(api, "POST", "/flows/rollback/3")
    assert status == 200 and body["status"] == "unchanged"


async def test_a_rollback_that_fails_validation_is_409_with_diagnostics(api: Api) -> None:
    bad = {"main.yaml": flow_text("Old.").replace("next: bye", "next: gone"), "routes.yaml": ROUTES}
    api.store.publish(bad, digest="older-rules", now=T0 + 100, source="cli")
    status, body = await _json(api, "POST", "/flows/rollback/3")
    assert status == 409 and body["live"] == 2
    assert body["error"].startswith("version 3 was not restored: the files to publish have 1")
    assert body["diagnostics"][0]["file"] == str(api.folder / "main.yaml")
    assert (api.folder / "main.yaml").read_text() == flow_text("Version two.")


@pytest.mark.parametrize(
    ("method", "path", "status", "error"),
    [
        ("GET", "/flows/versions/9", 404, "no flow version 9 (versions 1-2 exist)"),
        ("GET", "/flows/versions/abc", 400, "version id 'abc' is not a positive integer"),
        ("GET", "/flows/versions/0", 400, "version id '0' is not a positive integer"),
        ("GET", "/flows/versions?limit=x", 400, "limit 'x' is not a positive integer"),
        ("POST", "/flows/rollback/9", 404, "no flow version 9"),
        ("POST", "/flows/rollback/-1", 400, "version id '-1' is not a positive integer"),
        ("GET", "/flows/rollback/1", 405, "GET is not allowed on /flows/rollback/1; use POST"),
        ("DELETE", "/flows/versions/1", 405, "DELETE is not allowed on /flows/versions/1"),
        ("GET", "/flows/nope", 404, "no such endpoint /flows/nope"),
    ],
)
async def test_bad_calls_get_clear_json_errors(
    api: Api, method: str, path: str, status: int, error: str
) -> None:
    got, body = await _json(api, method, path)
    assert got == status and body["error"].startswith(error), body


async def test_validate_one_flow(api: Api) -> None:
    ok_text = flow_text("Candidate.")
    status, body = await _json(api, "POST", "/flows/validate", data=ok_text.encode())
    assert status == 200 and body == {"ok": True, "file": "main.yaml", "diagnostics": []}
    bad = flow_text("Candidate.").replace("timeout", "timeout").replace("next: bye", "next: nope")
    status, body = await _json(api, "POST", "/flows/validate", data=bad.encode())
    assert status == 400 and body["ok"] is False
    assert body["error"] == "1 error(s) in main.yaml; nothing was changed"
    (diag,) = body["diagnostics"]
    assert diag["text"].startswith(f"{api.folder}/main.yaml:13:11: error: node 'one' (say)")
    # A new flow is checked beside the live ones, as its own file.
    sales = "flow: sales\nstart: hi\nnodes:\n  hi:\n    type: say\n    text: Sales.\n"
    status, body = await _json(api, "POST", "/flows/validate", data=sales.encode())
    assert status == 200 and body["file"] == "sales.yaml"
    assert [d["severity"] for d in body["diagnostics"]] == ["warning"]  # not routed yet
    # Nothing was written or published.
    assert not (api.folder / "sales.yaml").exists()
    assert len(api.store.history()) == 2


@pytest.mark.parametrize(
    ("query", "data", "error"),
    [
        ("", b"", "empty body: send the YAML of one flow"),
        ("", b"  \n", "empty body"),
        ("", b"\xff\xfe flow", "the body is not UTF-8 text"),
        ("?file=../x.yaml", b"flow: x\n", "file '../x.yaml' must be a .yaml path inside"),
        ("?file=/etc/x.yaml", b"flow: x\n", "file '/etc/x.yaml' must be a .yaml path"),
        ("?file=x.txt", b"flow: x\n", "file 'x.txt' must be a .yaml path"),
    ],
)
async def test_validate_bad_requests(api: Api, query: str, data: bytes, error: str) -> None:
    status, body = await _json(api, "POST", "/flows/validate" + query, data=data)
    assert status == 400 and body["error"].startswith(error), body


async def test_an_unusable_database_is_503(api: Api) -> None:
    api.store.close()
    status, body = await _json(api, "GET", "/flows/versions")
    assert status == 503
    assert body["error"].startswith(f"flow version database {api.store.path}")


async def test_cli_rollback_through_a_running_engine(api: Api) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ivr",
        "flows",
        "rollback",
        "1",
        "--engine",
        api.url,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    assert out.decode() == f"version 1 restored by {api.url}: live version is now 3\n"
    assert api.store.get(3).author == "cli"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ivr", "flows", "rollback", "7", "--engine", api.url,
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 1
    assert err.decode().endswith(
        f"Error: {api.url}: no flow version 7 (versions 1-3 exist); list them with"
        " `ivr flows history`\n"
    )
