"""Opt-in native (mypyc-compiled) build of the media loop's hot path.

    make media-native                   # .venv/bin/python -m media.native build
    ivr serve --native ...              # bench/media_load.py --native
    from media import native; native.enable()   # before importing media.session & co.

:data:`MODULES` are what every call runs 50 times a second: the media clock
and its lanes, the RTP poller, the per-call session (send, receive,
play-out, capture batching), RTP packet parsing and stream state, the
jitter buffer, RFC 4733 reception, the prompt player and the capture.
They are compiled with mypyc into ``build/media-native/`` (git-ignored;
``MEDIA_NATIVE_DIR`` overrides it), never into the source tree, and loaded
in place of the Python modules by :func:`enable`, which refuses a build
whose sources changed since (see :class:`native.mypyc.NativeBuild`).

Why: at 300 calls the event loop's thread is busy ~60 % of a core on this
machine, and every millisecond it runs Python is one in which a lane's
packets cannot leave. Compiled, the same modules take about a third less
of that thread's CPU (``perf`` of the loop thread, levels of 100-400
calls: see bench/README.md). The compiled modules behave as the Python
ones: tests/test_media_native.py runs the media tests and real SIPp calls
on them.
"""

from __future__ import annotations

from native.mypyc import NativeBuild, NativeBuildError

__all__ = ["MODULES", "NativeBuildError", "build", "default_dir", "enable", "enabled"]

MODULES = (
    "media.rtp.packet",
    "media.rtp.stream",
    "media.rtp.jitter",
    "media.rtp.clock",
    "media.rtp.poller",
    "media.dtmf.rfc4733",
    "media.prompts.player",
    "media.capture",
    "media.session",
)
"""The modules compiled (with everything they import from each other)."""

BUILD = NativeBuild(
    name="media",
    label="native media build",
    modules=MODULES,
    env_var="MEDIA_NATIVE_DIR",
    make_target="media-native",
)


# the build's methods, as this module's API (as acd.native has it)
default_dir = BUILD.default_dir
enabled = BUILD.enabled
enable = BUILD.enable
build = BUILD.build


def main(argv: list[str] | None = None) -> int:
    """``python -m media.native build [--out DIR]`` / ``check [--out DIR]``."""
    return BUILD.main(argv, __doc__)


if __name__ == "__main__":
    raise SystemExit(main())
