"""RFC 4475 / RFC 5118 messages sent to a running engine over UDP and TCP.

After each one the engine must still answer OPTIONS with 200: never a crash,
never a hang. The exact status expected for each message is asserted in the
UA-level torture test (tests/test_sip_torture_ua.py); here the point is the
transports and the event loop around it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.app import Engine
from tests.conftest import TORTURE
from tests.sipclient import UdpClient, options, status_of, tcp_exchange

FILES = sorted(p for p in (TORTURE / "rfc4475").glob("*.dat")) + sorted(
    p for p in (TORTURE / "rfc5118").iterdir() if p.is_file() and p.name != "README.md"
)


def test_torture_corpus_present() -> None:
    assert len(FILES) >= 60, f"expected the RFC 4475/5118 corpus under {TORTURE}"


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
async def test_udp_torture_then_options(engine: Engine, path: Path) -> None:
    target = (engine.sip.host, engine.sip.port)
    async with UdpClient(target) as client:
        client.send(path.read_bytes())
        answers = await client.responses(wait=0.15)
        for answer in answers:
            assert status_of(answer) is not None, f"{path.name}: engine sent a non-response"
        client.send(options(*target, local_port=client.port))
        assert await client.final_status(wait=2.0) == 200


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
async def test_tcp_torture_then_options(engine: Engine, path: Path) -> None:
    target = (engine.sip.host, engine.sip.port)
    await tcp_exchange(target, path.read_bytes(), wait=0.15)
    answers = await tcp_exchange(
        target, options(*target, transport="TCP"), wait=2.0, until_response=True
    )
    assert answers and status_of(answers[0]) == 200, f"after {path.name}: {answers!r}"
