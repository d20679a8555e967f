"""Writing flow files: atomic replaces, restores and staging folders.

* :func:`write_atomic` writes a file through a temp file in the same folder
  and :func:`os.replace`, so a reader (the watcher, the loader, an editor)
  sees the old bytes or the new bytes, never half a file.
* :func:`restore_files` makes a folder hold exactly a version's flow files:
  each one written atomically, files of the current set that the version
  does not have removed. Other files (prompts, WAVs) are left alone.
* :func:`stage_overlay` builds a folder that looks like the flows folder
  with other flow files: the given texts written, every other entry
  (prompts, sounds, flow tests) linked from the real folder. The loader can
  validate a candidate there without touching what runs.

Which files make up a flow set is the loader's rule (:mod:`ivr.loader`:
``*.yaml`` flows, ``routes.yaml``, ``queues.yaml`` directly in the folder;
not ``*.test.yaml`` or ``agents.yaml``); nothing else is written or removed.

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
    "TEMP_PREFIX",
    "exact_sources",
    "is_flow_file",
    "read_flow_files",
    "replace_flow_files",
    "restore_files",
    "stage_overlay",
    "write_atomic",
]

TEMP_PREFIX = ".callcore-"
"""Prefix of our own temp files (the watcher ignores them)."""


def is_flow_file(folder: Path, path: Path) -> bool:
    """Whether the loader reads ``path`` as part of ``folder``'s flow set
    (a flow file, routes.yaml, queues.yaml, directly in the folder)."""
    from ivr.loader import is_flowset_file

    return not path.name.startswith(TEMP_PREFIX) and is_flowset_file(folder, path)


def _source_paths(folder: Path) -> list[Path]:
    from ivr.loader import QUEUES_FILE, ROUTES_FILE, flow_files

    paths = flow_files(folder) if folder.is_dir() else []
    paths += [folder / n for n in (ROUTES_FILE, QUEUES_FILE) if (folder / n).is_file()]
    return sorted(paths)


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
    """The files the loader would read from ``folder`` (name -> text), bytes as on disk
    (decoded as UTF-8 without newline translation)."""
    return {p.name: p.read_bytes().decode("utf-8") for p in _source_paths(folder)}


def _universal_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def exact_sources(folder: Path, sources: Mapping[str, str]) -> dict[str, str]:
    """``sources`` as the loader read them, with each file's exact bytes where they match.

    The loader reads text with newline translation (CRLF -> LF); this
    re-reads each file so a CRLF file is stored and restored byte for byte.
    A file changed since the load (or unreadable) keeps the loader's text.
    """
    out: dict[str, str] = {}
    for rel, text in sources.items():
        try:
            raw = _safe_target(folder, rel).read_bytes().decode("utf-8")
        except (OSError, UnicodeDecodeError, ValueError):
            raw = None
        out[rel] = raw if raw is not None and _universal_newlines(raw) == text else text
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


def replace_flow_files(
    folder: Path,
    files: Mapping[str, str],
    *,
    known: Mapping[str, str],
    backup: Path,
) -> tuple[list[str], list[str], list[str]]:
    """Make ``folder``'s flow files exactly ``files``; save unpublished edits first.

    ``known`` is the published set the folder is expected to hold. A flow
    file on disk that matches neither ``known`` nor ``files`` is an edit
    nobody published: it is copied under ``backup`` (same relative path)
    before being overwritten or removed. Returns (written, removed, backed_up).
    """
    on_disk = read_flow_files(folder)
    unpublished = {
        rel: text
        for rel, text in on_disk.items()
        if known.get(rel) != text and files.get(rel) != text
    }
    for rel, text in unpublished.items():
        target = _safe_target(backup, rel)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(text.encode("utf-8"))
    written, removed = restore_files(folder, files, remove=set(on_disk) | set(known))
    return written, removed, sorted(unpublished)


def stage_overlay(
    folder: Path, files: Mapping[str, str], dest: Path, *, exclude: Collection[str] = ()
) -> Path:
    """Build ``dest``: ``files`` written, every other entry of ``folder`` linked.

    The files the loader would read from ``folder`` (and any name in
    ``exclude``) are not carried over, so the overlay holds exactly the
    candidate flow set; prompts, sounds, tests and other files are symlinks
    to the real ones. ``dest`` is emptied first.
    """
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    skip = set(exclude) | set(files)
    root = folder.resolve()
    if root.is_dir():
        for path in sorted(root.iterdir()):
            if path.name in skip or path.name.startswith(TEMP_PREFIX):
                continue
            if path.is_file() and is_flow_file(root, path):
                continue
            (dest / path.name).symlink_to(path, target_is_directory=path.is_dir())
    for rel, text in files.items():
        target = _safe_target(dest, rel)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(text.encode("utf-8"))
    return dest
