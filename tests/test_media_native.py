"""The compiled build of the media loop's hot path (media.native) answers real
calls as the Python modules do, and a build that no longer matches its
sources is refused.

The build (mypyc, ~20 s here) goes to build/media-native/ (or
MEDIA_NATIVE_DIR) as `make media-native` does, and is made here only when it
is missing or stale. The suites run in subprocesses: a process loads the
media modules either compiled or as Python, never both.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from media import native
from tests.peers import start_process, stop_process, wait_until
from tests.peers.ports import free_port

ROOT = Path(__file__).resolve().parent.parent
# the media tests, then real SIPp calls (digit, capture correlation, CANCEL)
# and the engine's no-cycles check, run again on the compiled modules
MEDIA_TESTS = [
    "tests/test_rtp_packet.py",
    "tests/test_rtp_stream.py",
    "tests/test_rtp_poller.py",
    "tests/test_jitter.py",
    "tests/test_media_clock.py",
    "tests/test_media_stalls.py",
    "tests/test_media_session.py",
    "tests/test_media_bridge.py",
    "tests/test_dtmf_rfc4733.py",
    "tests/test_capture.py",
    "tests/test_prompts.py",
    "tests/test_engine_sipp.py",
    "tests/test_engine_no_cycles.py",
]


@pytest.fixture(scope="module")
def build_dir() -> Path:
    where = native.default_dir().resolve()  # MEDIA_NATIVE_DIR, else build/media-native
    if native.BUILD.stale_reason(where) is not None:
        native.build(where, quiet=True)
    assert native.BUILD.stale_reason(where) is None
    return where


def test_native_modules_load_from_the_build(build_dir: Path) -> None:
    # media.prompts imports its player as the package loads: the build's finder
    # must already serve it then, and the rest of the package comes from the tree
    code = (
        "import media.native as n; n.enable();"
        "import media.prompts, media.session, media.sdp;"
        "print(media.prompts.player.__file__); print(media.session.__file__);"
        "print(media.sdp.__file__);"
        "print(media.session.Player is media.prompts.Player)"
    )
    run = subprocess.run(
        [sys.executable, "-c", code],
        check=True,
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "MEDIA_NATIVE_DIR": str(build_dir)},
    )
    player, session, sdp, same = run.stdout.split()
    assert Path(player) == next((build_dir / "media" / "prompts").glob("player.*.so"))
    assert Path(session).parent == build_dir / "media" and session.endswith(".so")
    assert Path(sdp) == ROOT / "media" / "sdp.py"  # not compiled: from the tree
    assert same == "True"  # one Player class, not a compiled and a Python one


def test_media_tests_and_real_calls_pass_on_the_native_build(build_dir: Path) -> None:
    code = (
        "import sys, pytest, media.native as n; n.enable();"
        "import media.session, media.rtp.clock, media.prompts.player;"
        "assert all(m.__file__.endswith('.so') for m in"
        " (media.session, media.rtp.clock, media.prompts.player));"
        "sys.exit(pytest.main(['-q', '-p', 'no:cacheprovider', *sys.argv[1:]]))"
    )
    run = subprocess.run(
        [sys.executable, "-c", code, *MEDIA_TESTS],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "MEDIA_NATIVE_DIR": str(build_dir)},
        check=False,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert " passed" in run.stdout and "failed" not in run.stdout and "skipped" not in run.stdout


def test_stale_build_is_refused(build_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "media-native"
    shutil.copytree(build_dir, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["sources"]["media.session"] = "0" * 64  # as if media/session.py had been edited
    (copy / "manifest.json").write_text(json.dumps(manifest))
    assert "media.session changed" in (native.BUILD.stale_reason(copy) or "")
    with pytest.raises(native.NativeBuildError, match=r"media\.session changed.*make media-native"):
        native.enable(copy)
    assert native.enabled() is None
    with pytest.raises(native.NativeBuildError, match="no native media build"):
        native.enable(tmp_path / "nothing")


def test_enable_refuses_modules_already_loaded_as_python(build_dir: Path) -> None:
    import media.session  # noqa: F401  (this process runs the media loop as Python)

    with pytest.raises(native.NativeBuildError, match=r"media\.session.*already imported"):
        native.enable(build_dir)
    assert native.enabled() is None


def test_serve_native_refuses_a_missing_build_and_says_how_to_build_it(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "ivr", "serve", "--native", "--data", str(tmp_path / "data")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "MEDIA_NATIVE_DIR": str(tmp_path / "none")},
        check=False,
    )
    assert run.returncode != 0
    assert "no native media build" in run.stderr and "make media-native" in run.stderr
    assert not (tmp_path / "data").exists()  # refused before the engine started


def test_serve_native_runs_the_compiled_loop_and_says_so_in_health(
    build_dir: Path, tmp_path: Path
) -> None:
    sip, http = free_port("both"), free_port("tcp")
    argv = [sys.executable, "-m", "ivr", "serve", "--native", "--sip", f"127.0.0.1:{sip}"]
    argv += ["--http", f"127.0.0.1:{http}", "--data", str(tmp_path / "data")]
    argv += ["--flows", "flows/", "--transcribe-workers", "0"]
    env = {**os.environ, "MEDIA_NATIVE_DIR": str(build_dir)}
    proc = start_process(
        argv, cwd=ROOT, stdout=tmp_path / "engine.log", stderr=subprocess.STDOUT, env=env
    )
    try:
        health: dict[str, object] = {}

        def healthy() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{http}/health", timeout=2) as r:
                    health.update(json.loads(r.read()))
            except OSError:
                return proc.poll() is not None
            return health.get("status") == "ok"

        assert wait_until(healthy, 60, 0.2), (tmp_path / "engine.log").read_text()[-2000:]
        assert health["media_build"] == f"native: {build_dir}"
    finally:
        assert stop_process(proc, signal.SIGTERM, grace=20) == 0
    assert '"event": "media.native"' in (tmp_path / "engine.log").read_text()
