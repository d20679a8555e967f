"""One mypyc build of a package's hot modules: build, staleness check, loading.

A :class:`NativeBuild` names the modules to compile, the folder they go to
(``build/<name>-native`` unless its environment variable says otherwise) and
the ``make`` target that builds it. :meth:`NativeBuild.build` compiles them
with mypyc into that folder, beside a ``manifest.json`` holding the
SHA-256 of every compiled source and the interpreter's ABI; generated C
and objects go to a temporary folder. :meth:`NativeBuild.stale_reason`
says why a build cannot be used (missing, another ABI, a source edited
since). :meth:`NativeBuild.enable` refuses such a build, saying how to
rebuild, and otherwise puts an import finder first in ``sys.meta_path``
that loads exactly the compiled modules (and the group's shared library)
from the build; every other module of the package still loads from the
tree.

Why never in the tree: the tree is an editable install shared by several
engineers, and a compiled module there would shadow every later edit of
its source. Why a finder and not the package's ``__path__``: a package
whose ``__init__`` imports its submodules (``media.prompts``) would load
them as Python before any path could be changed. A process runs a module
compiled or as Python, never both: :meth:`NativeBuild.enable` refuses when
one of the modules is already imported.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

__all__ = ["ROOT", "NativeBuild", "NativeBuildError"]

ROOT = Path(__file__).resolve().parent.parent
"""The source tree (the folder holding the packages)."""
_MANIFEST = "manifest.json"


class NativeBuildError(RuntimeError):
    """The native build is missing, stale or cannot be used here."""


def _abi() -> str:
    return f"{sys.implementation.cache_tag} {sysconfig.get_config_var('EXT_SUFFIX')}"


class _BuildFinder(importlib.abc.MetaPathFinder):
    """Finds the compiled modules of one build, and nothing else."""

    def __init__(self, files: dict[str, Path]) -> None:
        self.files = files

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None = None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        where = self.files.get(fullname)
        if where is None:
            return None
        return importlib.util.spec_from_file_location(fullname, where)


class NativeBuild:
    """The mypyc build of ``modules`` (dotted names of modules in the tree).

    ``label`` names it in messages ("native ACD build"), ``env_var`` may
    hold its folder, ``make_target`` is the ``make`` target that builds it
    and ``group`` the name of the shared library mypyc makes for the group.
    """

    def __init__(
        self,
        *,
        name: str,
        label: str,
        modules: Sequence[str],
        env_var: str,
        make_target: str,
        root: Path = ROOT,
    ) -> None:
        self.name = name
        self.label = label
        self.modules = tuple(modules)
        self.env_var = env_var
        self.make_target = make_target
        self.root = root
        self.default = root / "build" / f"{name}-native"
        self.group = f"{name}_native"
        self._enabled: Path | None = None

    # ------------------------------------------------------------- where, what
    def default_dir(self) -> Path:
        """The build directory: the environment variable when set, else ``build/<name>-native``."""
        env = os.environ.get(self.env_var)
        return Path(env) if env else self.default

    def source(self, module: str) -> Path:
        """The source file of a compiled module."""
        return self.root / (module.replace(".", "/") + ".py")

    def source_hashes(self) -> dict[str, str]:
        """SHA-256 of each compiled module's source, as it is now."""
        return {m: hashlib.sha256(self.source(m).read_bytes()).hexdigest() for m in self.modules}

    def stale_reason(self, directory: Path | None = None) -> str | None:
        """Why the build in ``directory`` cannot be used (``None``: it can)."""
        where = directory if directory is not None else self.default_dir()
        manifest = where / _MANIFEST
        if not manifest.is_file():
            return f"no {self.label} in {where}"
        data = json.loads(manifest.read_text())
        if data.get("abi") != _abi():
            return f"{where} was built for {data.get('abi')}, this interpreter is {_abi()}"
        built = data.get("sources", {})
        now = self.source_hashes()
        changed = sorted(m for m in self.modules if built.get(m) != now[m])
        if changed:
            return (
                f"the sources of {', '.join(changed)} changed since the {self.label} in "
                f"{where} was made ({data.get('built_at', '?')})"
            )
        return None

    # ------------------------------------------------------------------ loading
    def enabled(self) -> Path | None:
        """The build directory in use, ``None`` when the modules run as Python."""
        return self._enabled

    def enable(self, directory: Path | None = None) -> Path:
        """Load the compiled modules from the build from now on; returns its directory.

        Call it before anything imports them. Raises :class:`NativeBuildError`
        (saying how to fix it) when the build is missing or stale, or when one
        of the modules is already loaded as Python.
        """
        where = (directory if directory is not None else self.default_dir()).resolve()
        if self._enabled is not None:
            if self._enabled == where:
                return where
            raise NativeBuildError(f"the {self.label} in {self._enabled} is already in use")
        reason = self.stale_reason(where)
        if reason is not None:
            raise NativeBuildError(
                f"{reason}: build it with `make {self.make_target}` "
                f"(or `{sys.executable} -m {self.name}.native build --out {where}`)"
            )
        loaded = sorted(m for m in self.modules if m in sys.modules)
        if loaded:
            raise NativeBuildError(
                f"{', '.join(loaded)} already imported as Python: enable the {self.label} "
                "before importing them"
            )
        data = json.loads((where / _MANIFEST).read_text())
        files: dict[str, Path] = {}
        for rel in data["files"]:
            module = rel.split(".", 1)[0].replace("/", ".")  # media/rtp/clock.cpython-311-...so
            files[module] = where / rel
        sys.meta_path.insert(0, _BuildFinder(files))
        self._enabled = where
        return where

    # ----------------------------------------------------------------- building
    def build(self, directory: Path | None = None, *, quiet: bool = False) -> Path:
        """Compile the modules with mypyc into ``directory`` (default
        :meth:`default_dir`), replacing what was there. The sources are read
        from the tree as they are (and must not change while it builds).
        Returns the directory."""
        where = (directory if directory is not None else self.default_dir()).resolve()
        before = self.source_hashes()
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix=f"{self.name}-native-") as tmp:
            work = Path(tmp)
            out = work / "lib"
            script = (
                "import sys\n"
                "from setuptools import setup\n"
                "from mypyc.build import mypycify\n"
                "paths = sys.argv[1:]\n"
                "sys.argv = sys.argv[:1]\n"
                f"setup(name={self.name + '-native'!r}, ext_modules=mypycify(paths, "
                f"target_dir={str(work / 'c')!r}, group_name={self.group!r}),"
                f" script_args=['build_ext', '--build-lib', {str(out)!r},"
                f" '--build-temp', {str(work / 'tmp')!r}])\n"
            )
            args = [
                sys.executable,
                "-c",
                script,
                f"--config-file={self.root / 'pyproject.toml'}",
                f"--cache-dir={work / 'mypy_cache'}",
                *(str(self.source(m)) for m in self.modules),
            ]
            # not in the tree: setuptools would read the project's pyproject.toml
            run = subprocess.run(args, cwd=work, capture_output=True, text=True, check=False)
            if run.returncode != 0:
                raise NativeBuildError(
                    f"mypyc failed (exit {run.returncode}):\n"
                    f"{run.stdout[-4000:]}{run.stderr[-4000:]}"
                )
            if self.source_hashes() != before:
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

    # ---------------------------------------------------------------------- CLI
    def main(self, argv: list[str] | None = None, description: str | None = None) -> int:
        """``python -m <package>.native build [--out DIR]`` / ``check [--out DIR]``."""
        import argparse

        ap = argparse.ArgumentParser(prog=f"python -m {self.name}.native", description=description)
        ap.add_argument("command", choices=("build", "check"))
        ap.add_argument("--out", type=Path, default=None, help="Build directory")
        args = ap.parse_args(argv)
        if args.command == "build":
            self.build(args.out)
            return 0
        reason = self.stale_reason(args.out)
        print(reason or f"{self.label} in {args.out or self.default_dir()} is up to date")
        return 1 if reason else 0
