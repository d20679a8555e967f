"""Digest authentication (media/sip/auth.py).

The worked examples of RFC 2617 §3.5 and RFC 7616 §3.9.1 / §3.9.2 (the latter
with the username hash and response of its erratum 4897) are reproduced to
the byte, in both directions: our client computes the RFC's response, and our
verifier accepts the RFC's own Authorization header. Then real peers: SIPp
answers our challenges (server side) and kamailio checks our credentials
(client side, MD5 and SHA-256).
"""

from __future__ import annotations

import hashlib
import socket
import threading
from pathlib import Path

import pytest

from media.sip.auth import (
    Challenge,
    Credentials,
    algorithm_supported,
    authorization,
    choose_challenge,
    response_digest,
    verify,
)
from media.sip.errors import SipParseError, SipUsageError
from media.sip.message import Request, make_request, make_response, parse_message
from tests.peers.kamailio import Kamailio
from tests.peers.sipp import Sipp

# RFC 2617 §3.5
RFC2617_CHALLENGE = (
    'Digest realm="testrealm@host.com", qop="auth,auth-int", '
    'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"'
)
RFC2617_AUTHORIZATION = (
    'Digest username="Mufasa", realm="testrealm@host.com", '
    'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="/dir/index.html", qop=auth, '
    'nc=00000001, cnonce="0a4f113b", response="6629fae49393a05397450978507c4ef1", '
    'opaque="5ccc069c403ebaf9f0171e9517f40e41"'
)

# RFC 7616 §3.9.1
RFC7616_NONCE = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
RFC7616_OPAQUE = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"
RFC7616_CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
RFC7616_RESPONSES = {
    "MD5": "8ca523f5e9506fed4657c9700eebdbec",
    "SHA-256": "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
}


def rfc7616_challenge(algorithm: str) -> str:
    return (
        f'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm={algorithm}, '
        f'nonce="{RFC7616_NONCE}", opaque="{RFC7616_OPAQUE}"'
    )


def rfc7616_authorization(algorithm: str) -> str:
    return (
        f'Digest username="Mufasa", realm="http-auth@example.org", uri="/dir/index.html", '
        f'algorithm={algorithm}, nonce="{RFC7616_NONCE}", nc=00000001, '
        f'cnonce="{RFC7616_CNONCE}", qop=auth, response="{RFC7616_RESPONSES[algorithm]}", '
        f'opaque="{RFC7616_OPAQUE}"'
    )


def test_rfc2617_challenge_fields() -> None:
    c = Challenge.parse(RFC2617_CHALLENGE)
    assert c.realm == "testrealm@host.com"
    assert c.nonce == "dcd98b7102dd2f0e8b11d0f600bfb0c093"
    assert c.opaque == "5ccc069c403ebaf9f0171e9517f40e41"
    assert c.qop == ("auth", "auth-int")
    assert c.algorithm == "MD5" and not c.stale and c.usable


def test_rfc2617_client_response() -> None:
    c = Challenge.parse(RFC2617_CHALLENGE)
    value = authorization(
        c, "Mufasa", "Circle Of Life", "GET", "/dir/index.html", cnonce="0a4f113b"
    )
    cred = Credentials.parse(value)
    assert cred.params["response"] == "6629fae49393a05397450978507c4ef1"
    assert cred.params["qop"] == "auth" and cred.params["nc"] == "00000001"
    assert cred.params["opaque"] == "5ccc069c403ebaf9f0171e9517f40e41"
    assert cred.params["cnonce"] == "0a4f113b" and cred.username == "Mufasa"


def test_rfc2617_verifier_accepts_the_rfc_header() -> None:
    assert verify(RFC2617_AUTHORIZATION, "Circle Of Life", "GET")
    assert verify(RFC2617_AUTHORIZATION, "Circle Of Life", "GET", realm="testrealm@host.com")
    assert not verify(RFC2617_AUTHORIZATION, "Circle of Life", "GET")  # wrong password
    assert not verify(RFC2617_AUTHORIZATION, "Circle Of Life", "POST")  # wrong method
    assert not verify(RFC2617_AUTHORIZATION, "Circle Of Life", "GET", nonce="other")
    assert not verify(RFC2617_AUTHORIZATION, "Circle Of Life", "GET", user="Simba")


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256"])
def test_rfc7616_client_response(algorithm: str) -> None:
    c = Challenge.parse(rfc7616_challenge(algorithm))
    assert c.algorithm == algorithm and c.qop == ("auth", "auth-int")
    value = authorization(
        c, "Mufasa", "Circle of Life", "GET", "/dir/index.html", cnonce=RFC7616_CNONCE, nc=1
    )
    cred = Credentials.parse(value)
    assert cred.params["response"] == RFC7616_RESPONSES[algorithm]
    assert cred.params["algorithm"] == algorithm
    assert cred.params["opaque"] == RFC7616_OPAQUE


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256"])
def test_rfc7616_verifier_accepts_the_rfc_header(algorithm: str) -> None:
    header = rfc7616_authorization(algorithm)
    assert verify(header, "Circle of Life", "GET", realm="http-auth@example.org")
    assert not verify(header, "Circle Of Life", "GET")


def test_rfc7616_client_picks_sha256_over_md5() -> None:
    # RFC 7616 §3.9.1 sends both challenges, SHA-256 first; RFC 8760 §2.4: use the strongest.
    chosen = choose_challenge([rfc7616_challenge("MD5"), rfc7616_challenge("SHA-256")])
    assert chosen is not None and chosen.algorithm == "SHA-256"
    unusable = 'Digest realm="r", nonce="n", algorithm=SHA-1024'
    assert choose_challenge([unusable, "Basic realm=x"]) is None


def test_rfc7616_sha512_256_userhash_erratum_4897() -> None:
    assert algorithm_supported("SHA-512-256"), "hashlib lacks sha512_256"
    challenge = (
        'Digest realm="api@example.org", qop="auth", algorithm=SHA-512-256, '
        'nonce="5TsQWLVdgBdmrQ0XsxbDODV+57QdFR34I9HAbC/RVvkK", '
        'opaque="HRPCssKJSGjCrkzDg8OhwpzCiGPChXYjwrI2QmXDnsOS", charset=UTF-8, userhash=true'
    )
    c = Challenge.parse(challenge)
    assert c.userhash and c.algorithm == "SHA-512-256"
    value = authorization(
        c,
        "J\u00e4s\u00f8n Doe",
        "Secret, or not?",
        "GET",
        "/doe.json",
        cnonce="NTg6RKcb9boFIAS3KrFK9BGeh+iDa/sm6jUMp2wds69v",
    )
    cred = Credentials.parse(value)
    assert cred.username == "793263caabb707a56211940d90411ea4a575adeccb7e360aeb624ed06ece9b0b"
    assert cred.params["response"] == (
        "3798d4131c277846293534c3edc11bd8a5e4cdcbff78b05db9d95eeb1cec68a5"
    )
    assert cred.params["userhash"] == "true"
    assert verify(value, "Secret, or not?", "GET", user="J\u00e4s\u00f8n Doe")
    assert not verify(value, "Secret, or not?", "GET", user="Jason Doe")
    assert not verify(value, "Secret, or not?", "GET")  # a hashed name needs the user


def _independent(alg: str, *parts: str | bytes) -> str:
    name = {"MD5": "md5", "SHA-256": "sha256"}[alg]
    data = b":".join(p.encode() if isinstance(p, str) else p for p in parts)
    return hashlib.new(name, data).hexdigest()


@pytest.mark.parametrize("algorithm", ["MD5", "MD5-sess", "SHA-256", "SHA-256-sess"])
@pytest.mark.parametrize("qop", ["auth", "auth-int", None])
def test_formula_against_rfc7616_section_3_4(algorithm: str, qop: str | None) -> None:
    """Each algorithm/qop pair against the formulas of RFC 7616 §3.4.2-3.4.3 written out."""
    base = algorithm.removesuffix("-sess")
    user, realm, pw, method, uri = "alice", "atlanta.com", "s3cr:t", "INVITE", "sip:bob@b.com"
    nonce, cnonce, nc, body = "abc123", "xyz789", "0000000a", b"v=0\r\n"
    ha1 = _independent(base, user, realm, pw)
    if algorithm.endswith("-sess"):
        ha1 = _independent(base, ha1, nonce, cnonce)
    ha2 = (
        _independent(base, method, uri, _independent(base, body))
        if qop == "auth-int"
        else _independent(base, method, uri)
    )
    expected = (
        _independent(base, ha1, nonce, nc, cnonce, qop, ha2)
        if qop
        else _independent(base, ha1, nonce, ha2)
    )
    got = response_digest(
        algorithm, user, realm, pw, method, uri, nonce, qop=qop, cnonce=cnonce, nc=nc, body=body
    )
    assert got == expected
    qops = (qop,) if qop else ()
    c = Challenge(realm=realm, nonce=nonce, algorithm=algorithm, qop=qops, opaque="op")
    value = authorization(c, user, pw, method, uri, cnonce=cnonce, nc=10, body=body)
    assert Credentials.parse(value).params["response"] == expected
    assert verify(value, pw, method, body=body, realm=realm, nonce=nonce)
    assert not verify(value, pw, method, body=b"v=1\r\n") or qop != "auth-int"


def test_challenge_serialization_round_trip() -> None:
    c = Challenge(
        realm='r "quoted"',
        nonce="n1",
        algorithm="SHA-256",
        qop=("auth", "auth-int"),
        opaque="o",
        stale=True,
        domain="sip:a.example.com",
    )
    assert Challenge.parse(str(c)) == c
    assert Challenge.parse(str(c), "Proxy-Authenticate").stale


def test_challenge_parse_tolerates_lws_and_case() -> None:
    c = Challenge.parse(
        'digest  REALM = "asterisk" ,\tnonce="4a1b",algorithm=md5,qop="AUTH" ,stale=FALSE'
    )
    assert (c.realm, c.nonce, c.algorithm, c.qop, c.stale) == (
        "asterisk",
        "4a1b",
        "md5",
        ("auth",),
        False,
    )
    assert c.usable
    # unquoted values, as many servers send them
    assert Challenge.parse("Digest realm=r, nonce=n, algorithm=SHA-256").nonce == "n"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ('Basic realm="x"', "scheme 'Basic' is not Digest"),
        ('Digest nonce="n"', "without realm"),
        ('Digest realm="r"', "without nonce"),
        ('Digest realm="r, nonce="n"', "unterminated quoted value"),
        ('Digest realm="r", nonce', "malformed parameter 'nonce'"),
        ('Digest realm="r", realm="s", nonce="n"', "'realm' appears twice"),
        ("Digest realm=a b, nonce=n", "invalid value 'a b'"),
        ("", "missing or invalid authentication scheme"),
    ],
)
def test_malformed_challenges_name_the_fault(value: str, reason: str) -> None:
    with pytest.raises(SipParseError) as info:
        Challenge.parse(value)
    assert reason in info.value.reason
    assert info.value.reason.startswith("WWW-Authenticate: ")


def test_unanswerable_challenges() -> None:
    with pytest.raises(SipParseError, match="not supported"):
        authorization(
            Challenge("r", "n", algorithm="SHA-1024"), "u", "p", "REGISTER", "sip:r", cnonce="c"
        )
    with pytest.raises(SipParseError, match="no supported qop"):
        authorization(
            Challenge("r", "n", qop=("auth-conf",)), "u", "p", "REGISTER", "sip:r", cnonce="c"
        )
    with pytest.raises(SipUsageError):
        authorization(
            Challenge("r", "n", qop=("auth",)), "u", "p", "M", "sip:r", cnonce="c", qop="auth-int"
        )
    with pytest.raises(SipUsageError):
        authorization(Challenge("r", "n"), "u", "p", "M", "sip:r", cnonce="c", nc=0)


def test_rfc2069_form_without_qop() -> None:
    c = Challenge("r", "n")
    value = authorization(c, "u", "p", "REGISTER", "sip:r", cnonce="ignored")
    cred = Credentials.parse(value)
    assert "qop" not in cred.params and "cnonce" not in cred.params and "nc" not in cred.params
    ha1 = _independent("MD5", "u", "r", "p")
    assert cred.params["response"] == _independent(
        "MD5", ha1, "n", _independent("MD5", "REGISTER", "sip:r")
    )
    assert verify(value, "p", "REGISTER")


def test_unknown_scheme_credentials_parse_rfc4475_regaut01() -> None:
    cred = Credentials.parse("NoOneKnowsThisScheme opaque-data=here")
    assert cred.scheme == "NoOneKnowsThisScheme" and not cred.is_digest
    assert cred.params == {"opaque-data": "here"}
    assert not verify("NoOneKnowsThisScheme opaque-data=here", "pw", "REGISTER")


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "Digest",
        'Digest username="a',
        "Digest response=x",
        "Digest ,,,",
        "\x00\x01",
        "Digest a=b=c",
    ],
)
def test_verify_never_raises_on_garbage(garbage: str) -> None:
    assert verify(garbage, "pw", "REGISTER") is False


# ---------------------------------------------------------------- real peers

SIPP_REGISTER = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="register with digest">
  <send retrans="500">
    <![CDATA[
REGISTER sip:[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:alice@[remote_ip]>;tag=[pid]SIPpTag00[call_number]
To: <sip:alice@[remote_ip]>
Call-ID: [call_id]
CSeq: 1 REGISTER
Contact: <sip:alice@[local_ip]:[local_port]>
Max-Forwards: 70
Expires: 60
Content-Length: 0

    ]]>
  </send>
  <recv response="401" auth="true"/>
  <send retrans="500">
    <![CDATA[
REGISTER sip:[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:alice@[remote_ip]>;tag=[pid]SIPpTag00[call_number]
To: <sip:alice@[remote_ip]>
Call-ID: [call_id]
CSeq: 2 REGISTER
Contact: <sip:alice@[local_ip]:[local_port]>
[authentication username=alice password=wonderland]
Max-Forwards: 70
Expires: 60
Content-Length: 0

    ]]>
  </send>
  <recv response="200"/>
</scenario>
"""


class ChallengingRegistrar:
    """A tiny UDP registrar thread: 401 with our challenge, then verify() decides 200/403."""

    def __init__(self, challenge: Challenge, password: str) -> None:
        self.challenge = challenge
        self.password = password
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port: int = self.sock.getsockname()[1]
        self.verdicts: list[bool] = []
        self.requests: list[Request] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ChallengingRegistrar:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            req = parse_message(data)
            assert isinstance(req, Request)
            self.requests.append(req)
            cred = req.headers.get("Authorization")
            if cred is None:
                resp = make_response(
                    req, 401, headers=[("WWW-Authenticate", str(self.challenge))], to_tag="reg1"
                )
            else:
                ok = verify(
                    cred,
                    self.password,
                    req.method,
                    realm=self.challenge.realm,
                    nonce=self.challenge.nonce,
                    user="alice",
                    body=req.body,
                )
                self.verdicts.append(ok)
                resp = make_response(req, 200 if ok else 403, to_tag="reg1")
            self.sock.sendto(bytes(resp), addr)


@pytest.mark.peer
@pytest.mark.parametrize("qop", [("auth",), ("auth-int",), ()], ids=["auth", "auth-int", "none"])
def test_sipp_answers_our_challenge_and_we_verify_it(qop: tuple[str, ...], tmp_path: Path) -> None:
    scenario = tmp_path / "register_auth.xml"
    scenario.write_text(SIPP_REGISTER)
    challenge = Challenge(realm="127.0.0.1", nonce="bm9uY2UtMTIz", qop=qop, opaque="b3BhcXVl")
    with ChallengingRegistrar(challenge, "wonderland") as registrar:
        result = Sipp(scenario, remote=f"127.0.0.1:{registrar.port}", calls=1, timeout=10).run()
    assert result.ok, result.summary()
    assert registrar.verdicts == [True]
    second = Credentials.parse(registrar.requests[-1].headers.get("Authorization") or "")
    assert second.params.get("qop") == (qop[0] if qop else None)
    assert second.params.get("opaque") == "b3BhcXVl"


@pytest.mark.peer
def test_sipp_with_a_wrong_password_is_refused(tmp_path: Path) -> None:
    scenario = tmp_path / "register_auth.xml"
    scenario.write_text(SIPP_REGISTER)
    challenge = Challenge(realm="127.0.0.1", nonce="bm9uY2UtNDU2", qop=("auth",))
    with ChallengingRegistrar(challenge, "not-wonderland") as registrar:
        result = Sipp(scenario, remote=f"127.0.0.1:{registrar.port}", calls=1, timeout=5).run()
    assert not result.ok
    assert registrar.verdicts == [False]


KAMAILIO_AUTH_CFG = """#!KAMAILIO
debug=2
log_stderror=yes
children=1
listen=udp:127.0.0.1:15060
listen=tcp:127.0.0.1:15060
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "textops.so"
loadmodule "auth.so"
modparam("auth", "algorithm", "{algorithm}")
request_route {{
    if (is_method("OPTIONS")) {{ sl_send_reply("200", "OK"); exit; }}
    if (is_method("REGISTER")) {{
        if (!pv_www_authenticate("$td", "wonderland", "0")) {{
            www_challenge("$td", "1");
            exit;
        }}
        sl_send_reply("200", "Registered");
        exit;
    }}
    sl_send_reply("403", "Forbidden");
}}
"""


def _register(sock: socket.socket, port: int, cseq: int, extra: list[tuple[str, str]]) -> Request:
    lport = sock.getsockname()[1]
    return make_request(
        "REGISTER",
        f"sip:127.0.0.1:{port}",
        [
            ("Via", f"SIP/2.0/UDP 127.0.0.1:{lport};branch=z9hG4bK-reg-{cseq};rport"),
            ("Max-Forwards", "70"),
            ("From", "<sip:alice@127.0.0.1>;tag=kam1"),
            ("To", "<sip:alice@127.0.0.1>"),
            ("Call-ID", "kamailio-auth-test@127.0.0.1"),
            ("CSeq", f"{cseq} REGISTER"),
            ("Contact", f"<sip:alice@127.0.0.1:{lport}>"),
            ("Expires", "60"),
            *extra,
        ],
    )


def _final(sock: socket.socket) -> tuple[int, str | None, str]:
    while True:
        msg = parse_message(sock.recv(65535))
        if not isinstance(msg, Request) and msg.status >= 200:
            return msg.status, msg.headers.get("WWW-Authenticate"), msg.reason


@pytest.mark.peer
@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256"])
@pytest.mark.parametrize("password", ["wonderland", "looking-glass"])
def test_kamailio_accepts_our_credentials(algorithm: str, password: str, tmp_path: Path) -> None:
    template = tmp_path / "kamailio-auth.cfg"
    template.write_text(KAMAILIO_AUTH_CFG.format(algorithm=algorithm))
    with Kamailio(template=template, run_dir=tmp_path / "run") as kam:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(5)
        try:
            first = _register(sock, kam.port, 1, [])
            sock.sendto(bytes(first), ("127.0.0.1", kam.port))
            status, value, _ = _final(sock)
            assert status == 401 and value is not None
            challenge = Challenge.parse(value)
            assert challenge.algorithm == algorithm and challenge.qop == ("auth",)
            assert challenge.realm == "127.0.0.1"
            cred = authorization(
                challenge, "alice", password, "REGISTER", first.uri, cnonce="0a4f113b", nc=1
            )
            second = _register(sock, kam.port, 2, [("Authorization", cred)])
            sock.sendto(bytes(second), ("127.0.0.1", kam.port))
            status, _, reason = _final(sock)
        finally:
            sock.close()
    if password == "wonderland":
        assert (status, reason) == (200, "Registered"), kam.log()[-1500:]
    else:
        assert status == 401  # kamailio challenges again: the response did not match
