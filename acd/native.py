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
the last digit (tests/test_acd_native.py). The machinery is
:class:`native.mypyc.NativeBuild`, shared with the media loop's build
(``media/native.py``).
"""

from __future__ import annotations

from pathlib import Path

from native.mypyc import NativeBuild, NativeBuildError

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

BUILD = NativeBuild(
    name="acd",
    label="native ACD build",
    modules=MODULES,
    env_var="ACD_NATIVE_DIR",
    make_target="acd-native",
)
DEFAULT_DIR = BUILD.default
"""Where ``make acd-native`` builds (``ACD_NATIVE_DIR`` overrides it)."""


def default_dir() -> Path:
    """The build directory: ``ACD_NATIVE_DIR`` when set, else :data:`DEFAULT_DIR`."""
    return BUILD.default_dir()


def source_hashes() -> dict[str, str]:
    """SHA-256 of each compiled module's source, as it is now."""
    return BUILD.source_hashes()


def stale_reason(directory: Path | None = None) -> str | None:
    """Why the build in ``directory`` cannot be used (``None``: it can)."""
    return BUILD.stale_reason(directory)


def enabled() -> Path | None:
    """The build directory in use, ``None`` when the ACD runs as pure Python."""
    return BUILD.enabled()


def enable(directory: Path | None = None) -> Path:
    """Load :data:`MODULES` from the native build from now on (see
    :meth:`native.mypyc.NativeBuild.enable`); returns the build directory."""
    return BUILD.enable(directory)


def build(directory: Path | None = None, *, quiet: bool = False) -> Path:
    """Compile :data:`MODULES` with mypyc into ``directory`` (default
    ``build/acd-native``), replacing what was there; returns the directory."""
    return BUILD.build(directory, quiet=quiet)


def main(argv: list[str] | None = None) -> int:
    """``python -m acd.native build [--out DIR]`` / ``check [--out DIR]``."""
    return BUILD.main(argv, __doc__)


if __name__ == "__main__":
    raise SystemExit(main())
