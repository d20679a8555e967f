"""SIP URIs (media/sip/uri.py): RFC 3261 §19.1 examples, escapes, RFC 5118 IPv6 rules."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from media.sip.errors import SipParseError
from media.sip.uri import OpaqueUri, SipUri, check_host, parse_ipv6, split_hostport, unescape


def sip(text: str) -> SipUri:
    uri = SipUri.parse(text)
    assert isinstance(uri, SipUri)
    return uri


# RFC 3261 §19.1.3 examples, with their decoded fields.
EXAMPLES = [
    ("sip:alice@atlanta.com", "sip", "alice", None, "atlanta.com", None, {}, {}),
    (
        "sip:alice:secretword@atlanta.com;transport=tcp",
        "sip", "alice", "secretword", "atlanta.com", None, {"transport": "tcp"}, {},
    ),
    (
        "sips:alice@atlanta.com?subject=project%20x&priority=urgent",
        "sips", "alice", None, "atlanta.com", None, {},
        {"subject": "project x", "priority": "urgent"},
    ),
    (
        "sip:+1-212-555-1212:1234@gateway.com;user=phone",
        "sip", "+1-212-555-1212", "1234", "gateway.com", None, {"user": "phone"}, {},
    ),
    ("sips:1212@gateway.com", "sips", "1212", None, "gateway.com", None, {}, {}),
    ("sip:alice@192.0.2.4", "sip", "alice", None, "192.0.2.4", None, {}, {}),
    (
        "sip:atlanta.com;method=REGISTER?to=alice%40atlanta.com",
        "sip", None, None, "atlanta.com", None, {"method": "REGISTER"}, {"to": "alice@atlanta.com"},
    ),
    (
        "sip:alice;day=tuesday@atlanta.com",
        "sip", "alice;day=tuesday", None, "atlanta.com", None, {}, {},
    ),
    ("sip:bob@biloxi.com:5070;lr", "sip", "bob", None, "biloxi.com", 5070, {"lr": None}, {}),
    ("SIP:Bob@BILOXI.com", "sip", "Bob", None, "biloxi.com", None, {}, {}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "scheme", "user", "password", "host", "port", "params", "headers"), EXAMPLES
)
def test_rfc3261_examples(
    text: str,
    scheme: str,
    user: str | None,
    password: str | None,
    host: str,
    port: int | None,
    params: dict[str, str | None],
    headers: dict[str, str],
) -> None:
    uri = sip(text)
    assert (uri.scheme, uri.user, uri.password, uri.host, uri.port) == (
        scheme,
        user,
        password,
        host,
        port,
    )
    assert uri.params == params and uri.headers == headers
    assert str(uri) == text  # untouched: exactly as written


EQUAL = [
    ("sip:%61lice@atlanta.com;transport=TCP", "sip:alice@AtLanTa.CoM;Transport=tcp"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5"),
    ("sip:carol@chicago.com;newparam=5", "sip:carol@chicago.com;security=on"),
    (
        "sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
        "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com",
    ),
    (
        "sip:alice@atlanta.com?subject=project%20x&priority=urgent",
        "sip:alice@atlanta.com?priority=urgent&subject=project%20x",
    ),
]
NOT_EQUAL = [
    ("SIP:ALICE@AtLanTa.CoM;Transport=udp", "sip:alice@AtLanTa.CoM;Transport=UDP"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com:6000;transport=tcp"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com?Subject=next%20meeting"),
    ("sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4"),
    ("sip:bob@biloxi.com", "sips:bob@biloxi.com"),
    ("sip:bob@biloxi.com;lr", "sip:bob@biloxi.com;lr=on"),
]


@pytest.mark.parametrize(("a", "b"), EQUAL)
def test_rfc3261_19_1_4_equivalent(a: str, b: str) -> None:
    assert sip(a).matches(sip(b)) and sip(b).matches(sip(a))


@pytest.mark.parametrize(("a", "b"), NOT_EQUAL)
def test_rfc3261_19_1_4_not_equivalent(a: str, b: str) -> None:
    assert not sip(a).matches(sip(b)) and not sip(b).matches(sip(a))


def test_opaque_never_matches_sip() -> None:
    assert not sip("sip:a@b.com").matches(SipUri.parse("tel:+1234"))


def test_rfc4475_esc01_escapes_are_decoded() -> None:
    assert sip("sip:sips%3Auser%40example.com@example.net").user == "sips:user@example.com"
    assert sip("sip:%75se%72@example.com").user == "user"
    contact = sip("sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31")
    assert contact.user == "caller"
    assert contact.params == {"lr": None, "name": "value%41"}  # decoded once, not twice
    assert sip("sip:I%20have%20spaces@example.net").user == "I have spaces"
    assert sip("sip:null-%00-null@example.com").user == "null-\x00-null"


def test_escaped_utf8_is_decoded_as_utf8() -> None:
    assert sip("sip:J%C3%B6rg@example.com").user == "Jörg"
    assert unescape("100%") == "100%" and unescape("%zz") == "%zz"


def test_changed_fields_are_written_back_escaped() -> None:
    uri = sip("sip:%75ser@Example.COM;Transport=TCP")
    assert str(uri) == "sip:%75ser@Example.COM;Transport=TCP"
    uri.user = "I have spaces@home"
    uri.params["maddr"] = "239.255.255.1"
    text = str(uri)
    assert text == "sip:I%20have%20spaces%40home@example.com;transport=TCP;maddr=239.255.255.1"
    again = sip(text)
    assert again == uri
    uri.port = 5080
    uri.headers["Subject"] = "a&b c"
    assert str(uri) == (
        "sip:I%20have%20spaces%40home@example.com:5080;transport=TCP;maddr=239.255.255.1"
        "?Subject=a%26b%20c"
    )
    assert sip(str(uri)) == uri


def test_built_uri() -> None:
    uri = SipUri("sips", "2001:db8::1", "alice", port=5061, params={"lr": None})
    assert str(uri) == "sips:alice@[2001:db8::1]:5061;lr"
    assert uri.hostport == "[2001:db8::1]:5061"
    assert sip(str(uri)) == uri


def test_intmeth_user_and_password() -> None:
    uri = sip(
        "sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too."
        "(doesn't-it)@example.com"
    )
    assert uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert uri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
    assert (uri.host, uri.params, uri.headers) == ("example.com", {}, {})


def test_transport_property() -> None:
    assert sip("sip:a@b.com;transport=TCP").transport == "tcp"
    assert sip("sip:a@b.com").transport is None


# RFC 5118
@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        ("sip:[2001:db8::10]", "2001:db8::10", None),
        ("sip:[2001:db8::10]:5070", "2001:db8::10", 5070),
        ("sip:[2001:db8::10:5070]", "2001:db8::10:5070", None),  # §4.3: no port
        ("sip:user@[::ffff:192.0.2.2]", "::ffff:192.0.2.2", None),  # §4.9
        ("sip:user@[2001:db8::192.0.2.1]", "2001:db8::192.0.2.1", None),  # §4.10
        ("sip:user@[2001:db8:::192.0.2.1]", "2001:db8::192.0.2.1", None),  # §4.10 tolerated
        ("sip:[2001:DB8::A]", "2001:db8::a", None),
    ],
)
def test_rfc5118_hosts(text: str, host: str, port: int | None) -> None:
    uri = sip(text)
    assert (uri.host, uri.port) == (host, port)
    assert str(uri) == text


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("sip:2001:db8::10", "without the brackets RFC 5118 §4.2 requires"),
        ("sip:user@2001:db8::10", "without the brackets"),
        ("sip:[2001:db8:::10]", "'2001:db8:::10' is not a valid IPv6 address"),  # no IPv4 after
        ("sip:[2001:db8::1:::192.0.2.1]", "is not a valid IPv6 address"),
        ("sip:[fe80::1%25eth0]", "is not a valid IPv6 address"),
        ("sip:[2001:db8::10", "lacks its closing ']'"),
        ("sip:[2001:db8::10]5060", "unexpected '5060' after the IPv6 reference"),
        ("sip:[192.0.2.1]", "is not a valid IPv6 address"),
    ],
)
def test_rfc5118_invalid(text: str, reason: str) -> None:
    with pytest.raises(SipParseError) as info:
        SipUri.parse(text)
    assert reason in info.value.reason
    assert info.value.status == 400


def test_parse_ipv6_tolerance_is_narrow() -> None:
    assert parse_ipv6("2001:db8:::192.0.2.1") == "2001:db8::192.0.2.1"
    assert parse_ipv6(":::192.0.2.1") == "::192.0.2.1"  # hexpart "::" then ":" IPv4address
    assert parse_ipv6("2001:::db8:192.0.2.1") is None  # ':::' not right before the IPv4 part
    assert parse_ipv6("1::2:::192.0.2.1") is None  # would leave two '::'
    assert parse_ipv6("2001:db8:::1.2.3") is None
    assert parse_ipv6("2001:db8::g") is None
    assert parse_ipv6("") is None


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("<sip:user@example.com>", "does not start with a scheme"),
        ("user@example.com", "does not start with a scheme"),
        ("sip:", "empty host"),
        ("sip:user@", "empty host"),
        ("sip:host:99999", "port 99999 is out of range"),
        ("sip:host:5o60", "invalid port '5o60'"),
        ("sip:host:", "invalid port ''"),
        ("sip:host;;lr", "invalid parameter ''"),
        ("sip:host;lr;LR", "parameter 'lr' appears twice"),
        ("sip:host;a=b c", "invalid parameter 'a=b c'"),
        ("sip:us er@host", "invalid user part 'us er'"),
        ("sip:a%2@host", "invalid user part 'a%2'"),
        ("sip:a:p w@host", "invalid password"),
        ("sip:host?a", "invalid header component 'a'"),
        ("sip:host?=b", "invalid header component '=b'"),
        ("sip:192.0.2.300", "'192.0.2.300' is not a valid IPv4 address"),
        ("sip:-host.com", "invalid host name '-host.com'"),
        ("sip:host..com", "invalid host name 'host..com'"),
        ("sip:host.123", "is not a valid IPv4 address or host name"),
        ("sip:user@host@host", "invalid user part 'user@host'"),
        ("sip:user@example.com; lr", "invalid parameter ' lr'"),
        ("sip:user@exa mple.com", "invalid host name 'exa mple.com'"),
        ("tel:", "character not allowed"),
        ("tel:+1 234", "character not allowed"),
        ("1sip:x", "does not start with a scheme"),
    ],
)
def test_invalid_uris_name_the_fault(text: str, reason: str) -> None:
    with pytest.raises(SipParseError) as info:
        SipUri.parse(text)
    assert reason in info.value.reason, info.value.reason
    assert text[:20] in info.value.reason or text.startswith(("<", "user@", "1sip"))


@pytest.mark.parametrize(
    ("text", "scheme", "rest"),
    [
        (
            "tel:+1-201-555-0123;phone-context=example.com",
            "tel",
            "+1-201-555-0123;phone-context=example.com",
        ),
        ("urn:service:sos", "urn", "service:sos"),
        ("http://www.example.com", "http", "//www.example.com"),
        ("isbn:2983792873", "isbn", "2983792873"),
        ("soap.beep://192.0.2.103:3002", "soap.beep", "//192.0.2.103:3002"),
        ("TEL:911", "tel", "911"),
    ],
)
def test_other_schemes_are_opaque(text: str, scheme: str, rest: str) -> None:
    uri = SipUri.parse(text)
    assert isinstance(uri, OpaqueUri) and not uri.is_sip
    assert (uri.scheme, uri.rest) == (scheme, rest)
    assert str(uri).lower() == text.lower()


def test_check_host_and_split_hostport() -> None:
    assert check_host("Example.COM.", "Via") == "example.com."
    assert check_host("[::1]", "Via") == "::1"
    assert split_hostport("host_1.example.com:0", "x") == ("host_1.example.com", 0)
    with pytest.raises(SipParseError, match=r"^Via: empty host$"):
        check_host("", "Via")


# ---------------------------------------------------------------- properties

_user_text = st.text(min_size=1, max_size=12)
_host = st.one_of(
    st.from_regex(r"[a-z][a-z0-9\-]{0,8}[a-z0-9](\.[a-z][a-z0-9]{0,5}){0,3}", fullmatch=True),
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(str),
)
_pname = st.from_regex(r"[a-z][a-z0-9\-]{0,6}", fullmatch=True)
_pvalue = st.one_of(st.none(), st.text(min_size=1, max_size=8))


@settings(max_examples=300, deadline=None)
@given(
    scheme=st.sampled_from(["sip", "sips"]),
    user=st.one_of(st.none(), _user_text),
    password=st.one_of(st.none(), st.text(max_size=8)),
    host=_host,
    port=st.one_of(st.none(), st.integers(0, 65535)),
    params=st.dictionaries(_pname, _pvalue, max_size=4),
    headers=st.dictionaries(st.text(min_size=1, max_size=6), st.text(max_size=8), max_size=3),
)
def test_any_built_uri_round_trips(
    scheme: str,
    user: str | None,
    password: str | None,
    host: str,
    port: int | None,
    params: dict[str, str | None],
    headers: dict[str, str],
) -> None:
    if user is None:
        password = None
    uri = SipUri(scheme, host.lower(), user, password, port, params, headers)
    parsed = sip(str(uri))
    assert parsed == uri
    assert str(parsed) == str(uri)
    assert parsed.matches(uri)


@settings(max_examples=2000, deadline=None)
@given(st.text(max_size=60))
def test_arbitrary_text_parses_or_raises_sip_parse_error(text: str) -> None:
    try:
        uri = SipUri.parse(text)
    except SipParseError as exc:
        assert exc.reason and exc.status == 400
        return
    assert str(uri)


@settings(max_examples=2000, deadline=None)
@given(st.text(alphabet='sip:@[]%;?&=.,/-_:0123456789abcdefABCDEF <>"', max_size=40))
def test_uri_shaped_text_parses_or_raises_sip_parse_error(text: str) -> None:
    try:
        SipUri.parse("sip:" + text)
    except SipParseError as exc:
        assert exc.reason.startswith("URI ")


def test_parsing_the_same_text_again_gives_an_independent_equal_uri() -> None:
    """Parsed URIs are remembered by text; each parse still hands out its own object."""
    text = "sip:alice@example.com:5070;transport=tcp;lr?subject=hi"
    first = SipUri.parse(text)
    assert isinstance(first, SipUri)
    first.params["maddr"] = "192.0.2.1"
    first.port = 6000
    second = SipUri.parse(text)
    assert isinstance(second, SipUri)
    assert second.params == {"transport": "tcp", "lr": None} and second.port == 5070
    assert str(second) == text and second is not first
    assert str(first) != text  # the changed copy serializes its own fields
    opaque = SipUri.parse("tel:+1-212-555-0100")
    assert str(opaque) == "tel:+1-212-555-0100" and SipUri.parse(str(opaque)) is not opaque
