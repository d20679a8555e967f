"""The shipped flows' test cases (flows/tests/*.test.yaml), one pytest test per case.

The same cases run with ``ivr test-flows flows``; here each case is its own
test so a failure names it and prints what differed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ivr.flowtests import LoadedCase, discover, load_cases, run_case
from ivr.loader import load_flowset
from media.prompts.sounds import SoundLibrary
from tests.conftest import FLOWS

ASTERISK_SOUNDS = Path("/usr/share/asterisk/sounds/en")

CASES = [case for path in discover(FLOWS) for case in load_cases(path)]


def test_the_shipped_flows_have_cases() -> None:
    assert len(CASES) >= 10, [c.id for c in CASES]
    assert {c.file.name for c in CASES} >= {"main.test.yaml", "support.test.yaml"}


@pytest.fixture(scope="module")
def shipped() -> Any:
    return load_flowset(FLOWS, sounds=SoundLibrary([FLOWS / "prompts", ASTERISK_SOUNDS]))


@pytest.mark.parametrize("loaded", CASES, ids=[c.id for c in CASES])
def test_flow_case(shipped: Any, loaded: LoadedCase) -> None:
    result = run_case(shipped, loaded)
    assert result.passed, result.report()
