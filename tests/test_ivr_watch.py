"""The flows-folder watcher with real files and real watchfiles (inotify).

Every test waits on events (the publish callback feeding a queue), never on
sleeps; a "nothing else happened" check is a later sentinel save whose
publish must arrive alone.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from watchfiles import Change

from ivr.flowfiles import write_atomic
from ivr.watch import FlowFileFilter, FlowWatcher

WAIT = 15.0  # guard against a hang, not a timing assertion


@dataclass
class Publishes:
    """Records every publish: the changed paths and the folder as read at publish time."""

    folder: Path
    queue: asyncio.Queue[tuple[frozenset[str], dict[str, str], float | None]] = field(
        default_factory=asyncio.Queue
    )
    fail_next: bool = False

    async def __call__(self, saved_at: float | None, paths: frozenset[str]) -> None:
        seen = {
            p.relative_to(self.folder).as_posix(): p.read_text()
            for p in sorted(self.folder.rglob("*.yaml"))
            if p.is_file()
        }
        rel = frozenset(Path(p).relative_to(self.folder).as_posix() for p in paths)
        self.queue.put_nowait((rel, seen, saved_at))
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("publish failed on purpose")

    async def next(self) -> tuple[frozenset[str], dict[str, str], float | None]:
        return await asyncio.wait_for(self.queue.get(), WAIT)


@pytest.fixture
async def watched(tmp_path: Path) -> AsyncIterator[tuple[Path, Publishes, FlowWatcher]]:
    folder = tmp_path / "flows"
    folder.mkdir()
    (folder / "main.yaml").write_text("v: 0\n")
    publishes = Publishes(folder)
    watcher = FlowWatcher(folder, publishes)
    watcher.start()
    await asyncio.wait_for(watcher.ready.wait(), WAIT)
    try:
        yield folder, publishes, watcher
    finally:
        await watcher.stop()


async def test_one_save_one_publish_with_its_mtime(
    watched: tuple[Path, Publishes, FlowWatcher],
) -> None:
    folder, publishes, watcher = watched
    (folder / "main.yaml").write_text("v: 1\n")
    paths, seen, saved_at = await publishes.next()
    assert paths == {"main.yaml"}
    assert seen == {"main.yaml": "v: 1\n"}
    assert saved_at == os.stat(folder / "main.yaml").st_mtime
    assert watcher.publishes == 1


async def test_a_burst_of_saves_is_one_publish_of_the_final_state(
    watched: tuple[Path, Publishes, FlowWatcher],
) -> None:
    folder, publishes, watcher = watched
    for i in range(1, 31):
        (folder / "main.yaml").write_text(f"v: {i}\n")
        (folder / f"f{i % 5}.yaml").write_text(f"w: {i}\n")
        write_atomic(folder / "routes.yaml", f"default: main  # {i}\n")
    paths, seen, _ = await publishes.next()
    assert paths == {"main.yaml", "routes.yaml", *(f"f{i}.yaml" for i in range(5))}
    assert seen["main.yaml"] == "v: 30\n"
    assert seen["routes.yaml"] == "default: main  # 30\n"
    assert seen["f0.yaml"] == "w: 30\n"
    # Nothing of the burst comes later: the next publish holds only the sentinel.
    (folder / "sentinel.yaml").write_text("s: 1\n")
    paths, _, _ = await publishes.next()
    assert paths == {"sentinel.yaml"}
    assert watcher.publishes == 2


async def test_saves_spread_over_a_burst_are_one_publish(tmp_path: Path) -> None:
    """Saves 30 ms apart (an editor saving all, a git checkout) inside the quiet window."""
    folder = tmp_path / "flows"
    folder.mkdir()
    publishes = Publishes(folder)
    watcher = FlowWatcher(folder, publishes, quiet=0.5)
    watcher.start()
    try:
        await asyncio.wait_for(watcher.ready.wait(), WAIT)
        for i in range(12):
            (folder / "main.yaml").write_text(f"v: {i}\n")
            await asyncio.sleep(0.03)  # spreads the burst; asserts nothing
        paths, seen, _ = await publishes.next()
        assert paths == {"main.yaml"} and seen == {"main.yaml": "v: 11\n"}
        (folder / "sentinel.yaml").write_text("s: 1\n")
        paths, _, _ = await publishes.next()
        assert paths == {"sentinel.yaml"}
        assert watcher.publishes == 2
    finally:
        await watcher.stop()


async def test_editor_temp_swap_and_backup_files_are_ignored(
    watched: tuple[Path, Publishes, FlowWatcher],
) -> None:
    folder, publishes, _ = watched
    junk = [
        ".main.yaml.swp",
        ".main.yaml.swx",
        "main.yaml~",
        "#main.yaml#",
        "4913",
        "main.yaml.tmp",
        "main.yaml.bak",
        "main.yaml.orig",
        "main.yaml___jb_tmp___",
        ".goutputstream-ABC123",
        ".main.yaml.kate-swp",
        ".callcore-x1y2.tmp",
        "notes.txt",
        "schema.json",
    ]
    for name in junk:
        (folder / name).write_text("junk\n")
    os.symlink("user@host.1234", folder / ".#main.yaml")  # emacs lock file
    (folder / ".git").mkdir()
    (folder / ".git" / "x.yaml").write_text("junk\n")
    (folder / "prompts").mkdir()
    (folder / "prompts" / "hello.wav").write_bytes(b"RIFF")
    for name in junk:
        (folder / name).unlink()
    (folder / "sentinel.yaml").write_text("s: 1\n")
    paths, _, _ = await publishes.next()
    assert paths == {"sentinel.yaml"}


async def test_vim_style_save_is_one_publish_of_the_new_file(
    watched: tuple[Path, Publishes, FlowWatcher],
) -> None:
    folder, publishes, _ = watched
    main = folder / "main.yaml"
    probe = folder / "4913"
    probe.write_text("")
    probe.unlink()
    os.rename(main, folder / "main.yaml~")
    main.write_text("v: vim\n")
    (folder / "main.yaml~").unlink()
    paths, seen, _ = await publishes.next()
    assert paths == {"main.yaml"}
    assert seen == {"main.yaml": "v: vim\n"}


async def test_only_files_the_loader_reads_count_and_deletions_do(
    watched: tuple[Path, Publishes, FlowWatcher],
) -> None:
    folder, publishes, _ = watched
    (folder / "sub").mkdir()
    (folder / "sub" / "sales.yaml").write_text("s: 1\n")  # not read: a subfolder
    (folder / "main.test.yaml").write_text("t: 1\n")  # flow tests
    (folder / "agents.yaml").write_text("a: 1\n")  # the ACD's
    (folder / "old.yml").write_text("o: 1\n")  # .yml is not loaded
    (folder / "routes.yaml").write_text("default: main\n")
    (folder / "queues.yaml").write_text("queues: {}\n")
    paths, _, _ = await publishes.next()
    assert paths == {"routes.yaml", "queues.yaml"}
    (folder / "main.yaml").unlink()
    paths, seen, saved_at = await publishes.next()
    assert paths == {"main.yaml"} and "main.yaml" not in seen
    assert saved_at is None  # nothing left to take a time from


async def test_a_failing_publish_does_not_stop_the_watcher(
    watched: tuple[Path, Publishes, FlowWatcher],
) -> None:
    folder, publishes, _ = watched
    publishes.fail_next = True
    (folder / "main.yaml").write_text("v: 1\n")
    await publishes.next()
    (folder / "main.yaml").write_text("v: 2\n")
    paths, seen, _ = await publishes.next()
    assert paths == {"main.yaml"} and seen["main.yaml"] == "v: 2\n"


async def test_changes_during_a_publish_give_one_more_publish(tmp_path: Path) -> None:
    folder = tmp_path / "flows"
    folder.mkdir()
    gate = asyncio.Event()
    started: asyncio.Queue[frozenset[str]] = asyncio.Queue()

    async def slow_publish(_saved_at: float | None, paths: frozenset[str]) -> None:
        started.put_nowait(frozenset(Path(p).name for p in paths))
        await gate.wait()

    watcher = FlowWatcher(folder, slow_publish)
    watcher.start()
    try:
        await asyncio.wait_for(watcher.ready.wait(), WAIT)
        (folder / "a.yaml").write_text("1\n")
        assert await asyncio.wait_for(started.get(), WAIT) == {"a.yaml"}
        for i in range(10):  # saved while the first publish is still running
            (folder / "b.yaml").write_text(f"{i}\n")
        # Wait until the watcher has seen them (a batch queued behind the publish).
        while watcher.batches < 2:
            await asyncio.sleep(0.02)
        gate.set()
        assert await asyncio.wait_for(started.get(), WAIT) == {"b.yaml"}
        (folder / "c.yaml").write_text("1\n")
        assert await asyncio.wait_for(started.get(), WAIT) == {"c.yaml"}
    finally:
        await watcher.stop()


async def test_a_missing_folder_is_retried_until_it_exists(tmp_path: Path) -> None:
    folder = tmp_path / "later"
    publishes = Publishes(folder)
    watcher = FlowWatcher(folder, publishes, retry=0.05)
    watcher.start()
    try:
        folder.mkdir()
        await asyncio.wait_for(watcher.ready.wait(), WAIT)
        (folder / "main.yaml").write_text("v: 1\n")
        paths, _, _ = await publishes.next()
        assert paths == {"main.yaml"}
    finally:
        await watcher.stop()


@pytest.mark.parametrize(
    ("path", "kept"),
    [
        ("/f/main.yaml", True),
        ("/f/routes.yaml", True),
        ("/f/queues.yaml", True),
        ("/f/agents.yaml", False),
        ("/f/main.test.yaml", False),
        ("/f/sub/sales.yaml", False),
        ("/f/main.yml", False),
        ("/f/main.yaml.swp", False),
        ("/f/.main.yaml.swp", False),
        ("/f/main.yaml~", False),
        ("/f/.#main.yaml", False),
        ("/f/#main.yaml#", False),
        ("/f/.git/main.yaml", False),
        ("/f/.callcore-abc.yaml", False),
        ("/f/prompts/hi.wav", False),
        ("/f/main.json", False),
        ("/elsewhere/main.yaml", False),
    ],
)
def test_flow_file_filter(path: str, kept: bool) -> None:
    assert FlowFileFilter(Path("/f"))(Change.modified, path) is kept
