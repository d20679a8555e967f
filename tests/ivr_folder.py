"""Flows folders for the loader/validator tests: real files in tmp_path."""

from __future__ import annotations

import textwrap
from pathlib import Path

from ivr.loader import check_flowset
from media.prompts.sounds import SoundLibrary

ROUTES = "default: main\n"
SIMPLE_ROUTES = "routes:\n  - {number: '1', flow: main}\n"
QUEUES = "queues:\n  sales: {}\n  support: {}\n"
GOODBYE = """\
  bye:
    type: hangup
    prompt: Goodbye.
"""


def make_folder(
    tmp_path: Path,
    main: str | None,
    *,
    routes: str | None = ROUTES,
    queues: str | None = QUEUES,
    files: dict[str, str] | None = None,
) -> Path:
    """``tmp_path/flows`` with main.yaml (dedented), routes.yaml, queues.yaml and ``files``."""
    folder = tmp_path / "flows"
    folder.mkdir(parents=True)
    if main is not None:
        (folder / "main.yaml").write_text(textwrap.dedent(main), encoding="utf-8")
    if routes is not None:
        (folder / "routes.yaml").write_text(routes, encoding="utf-8")
    if queues is not None:
        (folder / "queues.yaml").write_text(queues, encoding="utf-8")
    for name, text in (files or {}).items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return folder


def report(folder: Path, sounds: SoundLibrary | None = None) -> list[str]:
    """Every diagnostic of ``folder`` as printed, with the folder prefix cut."""
    _flowset, diags = check_flowset(folder, sounds=sounds)
    return [str(d).replace(f"{folder}/", "") for d in diags]
