"""Opt-in native (mypyc-compiled) build of the ACD's hot path.

    make acd-native                     # .venv/bin/python -m acd.native build
    bench/acd_day.py --native           # or: ivr acd simulate --native ...
    from acd import native; native.enable()   # before importing acd.core & co.

:data:`MODULES` (the router, its records, inputs and effects, the matcher,
EWT, the metrics and the simulator) are compiled with mypyc into
``build/acd-native/`` (git-ignored), never into the source tree: the tree is
an editable install shared by several engineers, and a compiled module
there would shadow every later edit of its source. :func:`enable` puts the
build in front of the source tree for those modules only (the others,
e.g. ``acd.config``, still load from the tree), after checking that the
build was made from the sources as they are now: ``manifest.json``
beside the build holds the SHA-256 of every compiled source, and a build
whose sources changed since is refused (:class:`NativeBuildError` says to
rebuild). The compiled modules behave as the Python ones: the same day to
the last digit (tests/test_acd_native.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

import acd

__all__ = [
    "DEFAULT_DIR",
    "MODULES",
    "NativeBuildError",
    "build",
    "default_dir",
    "enable",
    "enabled",
    "source_hashes",
    "stale_reason",
]

MODULES = (
    "acd.timers",
    "acd.records",
    "acd.model",
    "acd.explain",
    "acd.events",
    "acd.strategies",
    "acd.matching",
    "acd.ewt",
    "acd.index",
    "acd.rebuild",
    "acd.persist",
    "acd.core",
    "acd.naive",
    "acd.metrics",
    "acd.sampling",
    "acd.simulator",
)
"""The modules compiled (with everything they import from each other)."""

_PACKAGE_DIR = Path(acd.__file__).resolve().parent
_ROOT = _PACKAGE_DIR.parent
DEFAULT_DIR = _ROOT / "build" / "acd-native"
"""Where ``make acd-native`` builds (``ACD_NATIVE_DIR`` overrides it)."""
_MANIFEST = "manifest.json"
_enabled: Path | None = None


class NativeBuildError(RuntimeError):
    """The native build is missing, stale or cannot be used here."""


def default_dir() -> Path:
    """The build directory: ``ACD_NATIVE_DIR`` when set, else :data:`DEFAULT_DIR`."""
    env = os.environ.get("ACD_NATIVE_DIR")
    return Path(env) if env else DEFAULT_DIR


def _source(module: str) -> Path:
    return _ROOT / (module.replace(".", "/") + ".py")


def source_hashes() -> dict[str, str]:
    """SHA-256 of each compiled module's source, as it is now."""
    return {m: hashlib.sha256(_source(m).read_bytes()).hexdigest() for m in MODULES}


def _abi() -> str:
    return f"{sys.implementation.cache_tag} {sysconfig.get_config_var('EXT_SUFFIX')}"


def stale_reason(directory: Path | None = None) -> str | None:
    """Why the build in ``directory`` cannot be used (``None``: it can)."""
    where = directory if directory is not None else default_dir()
    manifest = where / _MANIFEST
    if not manifest.is_file():
        return f"no native ACD build in {where}"
    data = json.loads(manifest.read_text())
    if data.get("abi") != _abi():
        return f"{where} was built for {data.get('abi')}, this interpreter is {_abi()}"
    built = data.get("sources", {})
    now = source_hashes()
    changed = sorted(m for m in MODULES if built.get(m) != now[m])
    if changed:
        return (
            f"the sources of {', '.join(changed)} changed since the native build in {where} "
            f"was made ({data.get('built_at', '?')})"
        )
    return None


def enabled() -> Path | None:
    """The build directory in use, ``None`` when the ACD runs as pure Python."""
    return _enabled


def enable(directory: Path | None = None) -> Path:
    """Load :data:`MODULES` from the native build from now on.

    Call it before anything imports them. Raises :class:`NativeBuildError`
    (saying how to fix it) when the build is missing or stale, or when one
    of the modules is already loaded as Python. Returns the build directory."""
    global _enabled
    where = (directory if directory is not None else default_dir()).resolve()
    if _enabled is not None:
        if _enabled == where:
            return where
        raise NativeBuildError(f"the native ACD build in {_enabled} is already in use")
    reason = stale_reason(where)
    if reason is not None:
        raise NativeBuildError(
            f"{reason}: build it with `make acd-native` "
            f"(or `{sys.executable} -m acd.native build --out {where}`)"
        )
    loaded = sorted(m for m in MODULES if m in sys.modules)
    if loaded:
        raise NativeBuildError(
            f"{', '.join(loaded)} already imported as Python: enable the native build "
            "before importing them"
        )
    # the shared library of the group is a top-level module; the compiled
    # modules are found first in the package's path, the others in the tree
    sys.path.insert(0, str(where))
    acd.__path__.insert(0, str(where / "acd"))
    _enabled = where
    return where


def build(directory: Path | None = None, *, quiet: bool = False) -> Path:
    """Compile :data:`MODULES` with mypyc into ``directory`` (default
    ``build/acd-native``), replacing what was there. The sources are read
    from the tree as they are (and must not change while it builds);
    generated C and objects go to a temporary folder. Returns the directory."""
    where = (directory if directory is not None else default_dir()).resolve()
    before = source_hashes()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="acd-native-") as tmp:
        work = Path(tmp)
        out = work / "lib"
        script = (
            "import sys\n"
            "from setuptools import setup\n"
            "from mypyc.build import mypycify\n"
            "paths = sys.argv[1:]\n"
            "sys.argv = sys.argv[:1]\n"
            f"setup(name='acd-native', ext_modules=mypycify(paths, target_dir={str(work / 'c')!r},"
            " group_name='acd_native'),"
            f" script_args=['build_ext', '--build-lib', {str(out)!r},"
            f" '--build-temp', {str(work / 'tmp')!r}])\n"
        )
        args = [
            sys.executable,
            "-c",
            script,
            f"--config-file={_ROOT / 'pyproject.toml'}",
            f"--cache-dir={work / 'mypy_cache'}",
            *(str(_source(m)) for m in MODULES),
        ]
        # not in the tree: setuptools would read the project's pyproject.toml
        run = subprocess.run(args, cwd=work, capture_output=True, text=True, check=False)
        if run.returncode != 0:
            raise NativeBuildError(
                f"mypyc failed (exit {run.returncode}):\n{run.stdout[-4000:]}{run.stderr[-4000:]}"
            )
        if source_hashes() != before:
            raise NativeBuildError("the sources changed while they were compiled: build again")
        built = sorted(p.relative_to(out) for p in out.rglob("*.so"))
        if not built:
            raise NativeBuildError(f"mypyc built nothing in {out}:\n{run.stdout[-2000:]}")
        if where.exists():
            shutil.rmtree(where)
        where.mkdir(parents=True)
        for rel in built:
            (where / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(out / rel, where / rel)
    manifest = {
        "sources": before,
        "abi": _abi(),
        "built_at": time.strftime("%Y-%m-%d %H:%M:%S"),
        "build_s": round(time.monotonic() - started, 1),
        "files": [str(rel) for rel in built],
    }
    (where / _MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    if not quiet:
        print(
            f"built {len(built)} native modules in {where} ({manifest['build_s']} s)",
            file=sys.stderr,
        )
    return where


def main(argv: list[str] | None = None) -> int:
    """``python -m acd.native build [--out DIR]`` / ``check [--out DIR]``."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m acd.native", description=__doc__)
    ap.add_argument("command", choices=("build", "check"))
    ap.add_argument("--out", type=Path, default=None, help="Build directory")
    args = ap.parse_args(argv)
    if args.command == "build":
        build(args.out)
        return 0
    reason = stale_reason(args.out)
    print(reason or f"native ACD build in {args.out or default_dir()} is up to date")
    return 1 if reason else 0


if __name__ == "__main__":
    raise SystemExit(main())
