"""Opt-in mypyc builds of hot paths (the ACD's router, the media loop).

:class:`native.mypyc.NativeBuild` compiles a package's listed modules into
a folder under ``build/`` (never into the source tree), checks that a build
still matches its sources, and loads it in place of the Python modules.
``acd/native.py`` and ``media/native.py`` each declare one.
"""
