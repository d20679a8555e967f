"""The flow version store on a real SQLite file: ids, dedup, diffs, restart, bad files."""

from __future__ import annotations

import hashlib
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from ivr.versions import (
    DB_NAME,
    UnknownVersion,
    VersionStore,
    VersionStoreError,
    diff_files,
    format_time,
)

T0 = 1_760_000_000.0


def _digest(files: dict[str, str]) -> str:
    h = hashlib.sha256()
    for path in sorted(files):
        h.update(path.encode() + b"\0" + files[path].encode() + b"\0")
    return h.hexdigest()


def _publish(store: VersionStore, files: dict[str, str], now: float, source: str = "watch"):
    return store.publish(files, digest=_digest(files), now=now, source=source)


V1 = {"main.yaml": "flow: main\nstart: a\n", "routes.yaml": "default: main\n"}
V2 = {"main.yaml": "flow: main\nstart: b\n", "routes.yaml": "default: main\n"}
V3 = {**V2, "sales.yaml": "flow: sales\n"}


def test_versions_are_numbered_and_keep_files_and_diffs(tmp_path: Path) -> None:
    with VersionStore(tmp_path / DB_NAME) as store:
        assert store.journal_mode == "wal"
        assert store.latest() is None
        v1, created1 = _publish(store, V1, T0, "startup")
        v2, created2 = _publish(store, V2, T0 + 10, "watch")
        v3, created3 = _publish(store, V3, T0 + 20, "api")
        assert (v1.id, v2.id, v3.id) == (1, 2, 3)
        assert created1 and created2 and created3
        assert v1.changed == ("main.yaml", "routes.yaml")
        assert v2.changed == ("main.yaml",)
        assert v3.changed == ("sales.yaml",)
        assert v2.diff == (
            "--- a/main.yaml\n+++ b/main.yaml\n@@ -1,2 +1,2 @@\n flow: main\n-start: a\n+start: b\n"
        )
        assert v3.diff == "--- /dev/null\n+++ b/sales.yaml\n@@ -0,0 +1 @@\n+flow: sales\n"
        got = store.get(2)
        assert dict(got.files) == V2
        assert got.diff == v2.diff and got.source == "watch" and got.published_at == T0 + 10
        assert [s.id for s in store.history()] == [3, 2, 1]
        assert [s.source for s in store.history(limit=2)] == ["api", "watch"]
        assert store.find_digest(_digest(V2)) == 2
        assert store.find_digest("0" * 64) is None


def test_identical_digest_is_not_republished_but_a_return_to_old_content_is(
    tmp_path: Path,
) -> None:
    with VersionStore(tmp_path / DB_NAME) as store:
        v1, _ = _publish(store, V1, T0)
        again, created = _publish(store, V1, T0 + 5, "cli")
        assert not created and again.id == 1 and again.source == "watch"
        _publish(store, V2, T0 + 6)
        back, created = _publish(store, V1, T0 + 7, "rollback")
        assert created and back.id == 3 and back.source == "rollback"
        assert dict(back.files) == V1 and back.digest == v1.digest
        assert store.find_digest(v1.digest) == 3
        assert len(store.history()) == 3


def test_history_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "data" / DB_NAME  # the folder is created
    with VersionStore(path) as store:
        _publish(store, V1, T0)
        _publish(store, V2, T0 + 1)
    with VersionStore(path) as store:
        latest = store.latest()
        assert latest is not None and latest.id == 2 and dict(latest.files) == V2
        v3, created = _publish(store, V3, T0 + 2)
        assert created and v3.id == 3


def test_files_are_kept_byte_exact(tmp_path: Path) -> None:
    files = {
        "crlf.yaml": "flow: x\r\nstart: a\r\n",
        "nonl.yaml": "flow: y",
        "utf8.yaml": "text: \u3053\u3093\u306b\u3061\u306f \u00e9\u00e8\n",
        "sub/dir.yaml": "\tindented: true\n\n\n",
    }
    with VersionStore(tmp_path / DB_NAME) as store:
        _publish(store, files, T0)
    with VersionStore(tmp_path / DB_NAME) as store:
        assert dict(store.get(1).files) == files


def test_unknown_version_and_bad_source(tmp_path: Path) -> None:
    with VersionStore(tmp_path / DB_NAME) as store:
        with pytest.raises(UnknownVersion) as empty:
            store.get(1)
        assert str(empty.value) == (
            "no flow version 1 (no version is published yet); list them with `ivr flows history`"
        )
        _publish(store, V1, T0)
        _publish(store, V2, T0)
        with pytest.raises(UnknownVersion) as exc:
            store.get(7)
        assert str(exc.value) == (
            "no flow version 7 (versions 1-2 exist); list them with `ivr flows history`"
        )
        with pytest.raises(ValueError, match="source 'editor' is not one of startup, watch"):
            store.publish(V1, digest="x", now=T0, source="editor")


def test_a_corrupt_file_is_a_clear_error_and_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / DB_NAME
    junk = b"this is not sqlite at all\n" * 100
    path.write_bytes(junk)
    with pytest.raises(VersionStoreError) as exc:
        VersionStore(path)
    text = str(exc.value)
    assert text.startswith(f"flow version database {path} is damaged (file is not a database)")
    assert "move the file aside and restore it from a backup" in text
    assert path.read_bytes() == junk


def test_a_locked_database_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / DB_NAME
    with VersionStore(path) as store:
        _publish(store, V1, T0)
    # Another process holds the write lock (BEGIN EXCLUSIVE) while we publish.
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys\n"
            f"db = sqlite3.connect({str(path)!r}, isolation_level=None)\n"
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
        with VersionStore(path, timeout=0.2) as store, pytest.raises(VersionStoreError) as exc:
            _publish(store, V2, T0 + 1)
        assert str(exc.value) == (
            f"flow version database {path} is locked by another process (publishing a flow"
            f" version waited 0.2 s): retry, or find the holder with `fuser {path}`"
        )
    finally:
        assert holder.stdin is not None
        holder.stdin.write("\n")
        holder.stdin.close()
        holder.wait(10)
    with VersionStore(path) as store:  # nothing was lost, and it works again
        assert [s.id for s in store.history()] == [1]
        assert _publish(store, V2, T0 + 2)[0].id == 2


def test_a_missing_data_folder_that_cannot_be_created(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(VersionStoreError, match="cannot create the data folder"):
        VersionStore(blocker / "data" / DB_NAME)


def test_two_writers_never_share_an_id(tmp_path: Path) -> None:
    path = tmp_path / DB_NAME
    VersionStore(path).close()
    ids: list[int] = []
    lock = threading.Lock()

    def writer(tag: str) -> None:
        with VersionStore(path, timeout=10) as store:
            for i in range(20):
                files = {"main.yaml": f"{tag} {i}\n"}
                version, created = _publish(store, files, T0 + i)
                assert created
                with lock:
                    ids.append(version.id)

    threads = [threading.Thread(target=writer, args=(t,)) for t in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(ids) == list(range(1, 41))
    db = sqlite3.connect(path)
    assert db.execute("SELECT COUNT(*) FROM flow_version_files").fetchone() == (40,)
    db.close()


def test_diff_marks_missing_final_newline_and_removed_files() -> None:
    diff, changed = diff_files({"a.yaml": "x\n", "b.yaml": "y"}, {"b.yaml": "z"})
    assert changed == ("a.yaml", "b.yaml")
    assert diff == (
        "--- a/a.yaml\n+++ /dev/null\n@@ -1 +0,0 @@\n-x\n"
        "--- a/b.yaml\n+++ b/b.yaml\n@@ -1 +1 @@\n"
        "-y\n\\ No newline at end of file\n+z\n\\ No newline at end of file\n"
    )


def test_format_time() -> None:
    assert format_time(0.0) == "1970-01-01T00:00:00Z"
    assert format_time(T0 + 0.7) == "2025-10-09T08:53:20Z"
