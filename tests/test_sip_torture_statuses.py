"""Every RFC 4475 / RFC 5118 torture message through the UA core, UDP and TCP.

The table gives, per file, what the UA answers (RFC 4475 section in the
comment). "call" means a valid INVITE: 100 Trying and an IncomingCall event.
Responses in the corpus get no answer. After each message the same UA must
still answer OPTIONS with 200.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from media.sip.events import IncomingCall
from media.sip.useragent import UserAgent
from tests.conftest import TORTURE
from tests.sipclient import options

EXPECTED: dict[str, str | None] = {
    # 3.1.1 valid messages
    "wsinv": "481",  # INVITE with a To tag: a re-INVITE for a dialog we do not have
    "intmeth": "501",
    "esc01": "call",
    "escnull": "501",  # REGISTER: we are not a registrar
    "esc02": "501",
    "lwsdisp": "200",
    "longreq": "call",
    "dblreq": "501",  # the first message (REGISTER) only; trailing octets ignored
    "semiuri": "200",
    "transports": "200",
    "mpart01": "501",  # MESSAGE
    "unreason": None,  # a response
    "noreason": None,  # a response
    # 3.1.2 invalid messages
    "badinv01": "400",
    "clerr": "400",
    "scalar02": "400",
    "scalarlg": None,  # a response
    "quotbal": "400",
    "ltgtruri": "400",
    "lwsruri": "400",
    "lwsstart": "400",
    "trws": "400",
    "escruri": "400",
    "baddate": "400",
    "regbadct": "400",
    "badaspec": "400",
    "baddn": "400",
    "badvers": "505",
    "mismatch01": "400",
    "mismatch02": "400",
    "bigcode": None,  # a response
    "ncl": "400",
    # 3.2 transaction layer
    "badbranch": "200",  # the bare magic cookie is treated as an RFC 2543 branch
    # 3.3 application layer
    "insuf": "400",
    "unkscm": "416",
    "novelsc": "416",
    "unksm2": "501",
    "bext01": "420",
    "invut": "415",
    "regaut01": "501",
    "multi01": "400",
    "mcl01": "400",
    "bcast": None,  # a response
    "zeromf": "200",  # Max-Forwards 0 matters to proxies, an endpoint answers
    "cparam01": "501",
    "cparam02": "501",
    "regescrt": "501",
    "sdp01": "406",  # Accept excludes application/sdp
    # 3.4 backward compatibility
    "inv2543": "call",
    # RFC 5118
    "ipv6-good": "501",
    "ipv6-bad": "400",
    "port-ambiguous": "501",
    "port-unambiguous": "501",
    "via-received-param-with-delim": "481",  # BYE outside a dialog
    "via-received-param-no-delim": "200",
    "ipv6-in-sdp": "call",
    "mult-ip-in-header": "481",
    "mult-ip-in-sdp": "call",
    "ipv4-mapped-ipv6": "call",
    "ipv6-bug-abnf-3-colons": "200",  # RFC 5118 §4.10: accept the 3-colon form robustly
    "ipv6-correct-abnf-2-colons": "200",
}
# Over TCP a message without Content-Length cannot be framed (RFC 3261 §18.3).
TCP_DIFFERENT = {"inv2543": "400"}

FILES = sorted((TORTURE / "rfc4475").glob("*.dat")) + sorted(
    p for p in (TORTURE / "rfc5118").iterdir() if p.is_file() and p.name != "README.md"
)


def test_table_covers_the_corpus() -> None:
    assert {p.stem if p.suffix == ".dat" else p.name for p in FILES} == set(EXPECTED)


def _statuses(ua: UserAgent) -> list[str]:
    return [o.data[8:11].decode() for o in ua.datagrams_to_send() if o.data.startswith(b"SIP/2.0 ")]


@pytest.mark.parametrize("transport", ["udp", "tcp"])
@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_torture_answer(path: Path, transport: str) -> None:
    name = path.stem if path.suffix == ".dat" else path.name
    expected = EXPECTED[name]
    if transport == "tcp":
        expected = TCP_DIFFERENT.get(name, expected)
    ua = UserAgent(local_host="127.0.0.1", local_port=5060)
    ua.receive(path.read_bytes(), ("127.0.0.1", 5099), transport, 0.0)
    statuses = _statuses(ua)
    event = ua.next_event()
    if expected == "call":
        assert statuses == ["100"]
        assert isinstance(event, IncomingCall)
    elif expected is None:
        assert statuses == [] and event is None
    else:
        assert statuses == [expected]
        assert event is None
    ua.receive(options("127.0.0.1", 5060, transport.upper()), ("127.0.0.1", 5099), transport, 1.0)
    assert _statuses(ua) == ["200"]
