"""Writing flow files: atomic replaces, restores and staging folders.

* :func:`write_atomic` writes a file through a temp file in the same folder
  and :func:`os.replace`, so a reader (the watcher, the loader, an editor)
  sees the old bytes or the new bytes, never half a file.
* :func:`restore_files` makes a folder hold exactly a version's flow files:
  each one written atomically, files of the current set that the version
  does not have removed. Other files (prompts, WAVs) are left alone.
* :func:`stage_overlay` builds a folder that looks like the flows folder
  with other flow files: the given texts written, every non-flow file
  (prompts, sounds) linked from the real folder. The loader can validate a
  candidate there without touching what runs.

Text is written as UTF-8 exactly as given (no newline translation), so a
file restored from the version store is byte-identical to the one that was
published.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Collection, Mapping
from pathlib import Path

__all__ = [
    "FLOW_SUFFIXES",
    "TEMP_PREFIX",
    "is_flow_file",
    "read_flow_files",
    "restore_files",
    "stage_overlay",
    "write_atomic",
]

FLOW_SUFFIXES = (".yaml", ".yml")
TEMP_PREFIX = ".callcore-"
"""Prefix of our own temp files (the watcher ignores them)."""


def is_flow_file(relpath: str) -> bool:
    """Whether a path (relative to the flows folder) is a flow source (YAML)."""
    name = relpath.rsplit("/", 1)[-1]
    return name.endswith(FLOW_SUFFIXES) and not name.startswith(".")


def _safe_target(folder: Path, relpath: str) -> Path:
    parts = Path(relpath).parts
    if not parts or Path(relpath).is_absolute() or ".." in parts:
        raise ValueError(f"{relpath!r} is not a path inside the flows folder")
    return folder.joinpath(*parts)


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8, newlines as given) to ``path`` via a temp file + os.replace."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(text.encode("utf-8"))
            fh.flush()
            os.fsync(fh.fileno())
        with contextlib.suppress(OSError):
            os.chmod(tmp, path.stat().st_mode & 0o777 if path.exists() else 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def read_flow_files(folder: Path) -> dict[str, str]:
    """Every flow file under ``folder`` (relative POSIX path -> text), read as UTF-8 bytes."""
    out: dict[str, str] = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if (
            path.is_file()
            and is_flow_file(rel)
            and not any(p.startswith(".") for p in rel.split("/"))
        ):
            out[rel] = path.read_bytes().decode("utf-8")
    return out


def restore_files(
    folder: Path, files: Mapping[str, str], *, remove: Collection[str] = ()
) -> tuple[list[str], list[str]]:
    """Write ``files`` into ``folder`` (atomically each) and delete ``remove`` not among them.

    Files whose bytes already match are not rewritten. Returns (written, removed).
    """
    targets = {rel: _safe_target(folder, rel) for rel in files}
    written: list[str] = []
    for rel in sorted(files):
        target = targets[rel]
        data = files[rel].encode("utf-8")
        try:
            if target.read_bytes() == data:
                continue
        except OSError:
            pass
        write_atomic(target, files[rel])
        written.append(rel)
    removed: list[str] = []
    for rel in sorted(set(remove) - set(files)):
        target = _safe_target(folder, rel)
        with contextlib.suppress(FileNotFoundError):
            target.unlink()
            removed.append(rel)
    return written, removed


def stage_overlay(
    folder: Path, files: Mapping[str, str], dest: Path, *, exclude: Collection[str] = ()
) -> Path:
    """Build ``dest``: ``files`` written, every other non-flow file of ``folder`` linked.

    Flow files of ``folder`` (YAML, plus any path in ``exclude``) are not
    carried over: the overlay holds exactly the candidate flow set. ``dest``
    is emptied first.
    """
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    skip = set(exclude) | set(files)
    root = folder.resolve()
    if root.is_dir():
        _link_tree(root, root, dest, skip)
    for rel, text in files.items():
        target = _safe_target(dest, rel)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(text.encode("utf-8"))
    return dest


def _holds_flow_file(directory: Path, root: Path, skip: Collection[str]) -> bool:
    for path in directory.rglob("*"):
        rel = path.relative_to(root).as_posix()
        if rel in skip or (path.is_file() and is_flow_file(rel)):
            return True
    return False


def _link_tree(directory: Path, root: Path, dest: Path, skip: Collection[str]) -> None:
    """Link every non-flow entry of ``directory``; folders without flow files as a whole."""
    for path in sorted(directory.iterdir()):
        rel = path.relative_to(root).as_posix()
        if path.name.startswith(TEMP_PREFIX) or rel in skip:
            continue
        target = dest / rel
        if path.is_dir():
            if _holds_flow_file(path, root, skip):
                target.mkdir(parents=True, exist_ok=True)
                _link_tree(path, root, dest, skip)
            else:
                target.symlink_to(path, target_is_directory=True)
        elif not is_flow_file(rel):
            target.symlink_to(path)
