"""The compiled build of the ACD's hot path (acd.native) plays the same day
as the Python modules, and a build that no longer matches its sources is
refused.

The build (mypyc, ~70 s on this machine's 2 shared CPUs) goes to
build/acd-native/ (or ACD_NATIVE_DIR) as `make acd-native` does, and is made here only when it
is missing or stale; the days run in subprocesses (a process loads the ACD
either compiled or as Python, never both).
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from acd import events, explain, metrics, model, native, records

ROOT = Path(__file__).resolve().parent.parent
DAY = ROOT / "bench" / "acd_day.py"
# the ACD's own tests that need no SIP peer, run again on the compiled modules
PURE_CORE_TESTS = [
    "tests/test_acd_router.py",
    "tests/test_acd_stateful.py",
    "tests/test_acd_metrics.py",
    "tests/test_acd_ewt.py",
    "tests/test_acd_store.py",
    "tests/test_acd_simulator.py",
    "tests/test_acd_scenario.py",
    "tests/test_acd_config.py",
    "tests/test_acd_cli.py",
]


@pytest.fixture(scope="module")
def build_dir() -> Path:
    where = native.default_dir().resolve()  # ACD_NATIVE_DIR, else build/acd-native
    if native.stale_reason(where) is not None:
        native.build(where, quiet=True)
    assert native.stale_reason(where) is None
    return where


def _day(tmp_path: Path, name: str, *args: str) -> dict[str, object]:
    out = tmp_path / f"{name}.json"
    subprocess.run(
        [sys.executable, str(DAY), "--no-progress", "--digest", "--json", str(out), *args],
        check=True,
        cwd=ROOT,
        capture_output=True,
        timeout=600,
    )
    day: dict[str, object] = json.loads(out.read_text())
    return day


WRITTEN_OUT_INIT = [
    *records.RECORD_TYPES.values(),
    *(
        cls
        for cls in vars(events).values()
        if isinstance(cls, type) and dataclasses.is_dataclass(cls)
    ),
    explain.Explanation,
    model.Agent,
    model.Call,
    metrics.QueueCounters,
    metrics.AgentCounters,
    metrics.WaitingCall,
    metrics.CallInService,
]


@pytest.mark.parametrize("cls", WRITTEN_OUT_INIT, ids=lambda cls: cls.__name__)
def test_written_out_init_matches_the_dataclass_fields(cls: type) -> None:
    # the hot classes write their __init__ out (mypyc compiles it; a generated
    # one stays interpreted): the same parameters, order and defaults as the fields
    assert "__init__" in vars(cls)
    params = list(inspect.signature(cls).parameters.values())
    fields = dataclasses.fields(cls)
    assert [p.name for p in params] == [f.name for f in fields]
    required = {}
    for param, field in zip(params, fields, strict=True):
        if field.default_factory is not dataclasses.MISSING:
            assert param.default is None, field.name
        elif field.default is not dataclasses.MISSING:
            assert param.default == field.default, field.name
        else:
            assert param.default is inspect.Parameter.empty, field.name
            required[field.name] = object()
    made = cls(**required)
    for field in fields:
        if field.name in required:
            expected = required[field.name]
        elif field.default_factory is not dataclasses.MISSING:
            expected = field.default_factory()
        else:
            expected = field.default
        assert getattr(made, field.name) == expected, field.name


@pytest.mark.parametrize(
    "args",
    [
        ("--calls", "10000", "--seed", "1"),
        ("--calls", "8000", "--seed", "3", "--staffing", "0.8"),  # long queues, abandons
        ("--calls", "3000", "--seed", "2", "--naive"),  # the full-scan router
    ],
    ids=["10k", "8k-understaffed", "3k-naive"],
)
def test_native_day_is_the_python_day(
    build_dir: Path, tmp_path: Path, args: tuple[str, ...]
) -> None:
    pure = _day(tmp_path, "pure", *args)
    compiled = _day(tmp_path, "native", "--native", *args)
    assert str(pure["router"]).endswith("[pure Python]")
    assert str(compiled["router"]).endswith(f"[native: {build_dir}]")
    assert compiled["digest"] == pure["digest"]  # every interval row, to the last digit
    for key in ("calls", "events", "router_inputs", "agents", "sl", "asa", "abandon_rate"):
        assert compiled[key] == pure[key], key
    assert isinstance(pure["calls"], int) and pure["calls"] > 0
    assert isinstance(pure["abandon_rate"], float) and pure["abandon_rate"] > 0


def test_native_modules_load_from_the_build(build_dir: Path) -> None:
    code = (
        "import sys, acd.native as n; n.enable();"
        "import acd.core, acd.simulator, acd.config;"
        "print(acd.core.__file__); print(acd.simulator.__file__); print(acd.config.__file__)"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], check=True, cwd=ROOT, capture_output=True, text=True
    )
    core, simulator, config = run.stdout.split()
    for path in (core, simulator):
        assert Path(path).parent == build_dir / "acd" and path.endswith(".so")
    assert Path(config) == ROOT / "acd" / "config.py"  # not compiled: from the tree


def test_acd_tests_pass_on_the_native_build(build_dir: Path) -> None:
    code = (
        "import sys, pytest, acd.native as n; n.enable();"
        "import acd.core, acd.persist, acd.metrics;"
        "assert all(m.__file__.endswith('.so') for m in (acd.core, acd.persist, acd.metrics));"
        "sys.exit(pytest.main(['-q', '-p', 'no:cacheprovider', *sys.argv[1:]]))"
    )
    run = subprocess.run(
        [sys.executable, "-c", code, *PURE_CORE_TESTS],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "ACD_NATIVE_DIR": str(build_dir)},
        check=False,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert " passed" in run.stdout and "failed" not in run.stdout


def test_stale_build_is_refused(build_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "acd-native"
    shutil.copytree(build_dir, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["sources"]["acd.core"] = "0" * 64  # as if acd/core.py had been edited since
    (copy / "manifest.json").write_text(json.dumps(manifest))
    assert "acd.core changed" in (native.stale_reason(copy) or "")
    with pytest.raises(native.NativeBuildError, match=r"acd\.core changed.*make acd-native"):
        native.enable(copy)
    assert native.enabled() is None
    with pytest.raises(native.NativeBuildError, match="no native ACD build"):
        native.enable(tmp_path / "nothing")


def test_enable_refuses_modules_already_loaded_as_python(build_dir: Path) -> None:
    import acd.core  # noqa: F401  (this process runs the ACD as Python)

    with pytest.raises(native.NativeBuildError, match=r"acd\.core.*already imported"):
        native.enable(build_dir)
    assert native.enabled() is None


def test_bench_refuses_a_stale_build(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, str(DAY), "--native", "--calls", "100"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"ACD_NATIVE_DIR": str(tmp_path / "none"), "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert run.returncode != 0
    assert "acd_day.py --native: no native ACD build" in run.stderr
    assert "make acd-native" in run.stderr
