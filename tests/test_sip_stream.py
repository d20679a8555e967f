"""TCP framing (media/sip/stream.py): Content-Length framing, keep-alives, errors.

Byte-by-byte and randomly chunked feeds give the same messages as whole
ones; RFC 5626 double-CRLF pings are counted; framing errors are fatal and
sticky, malformed but framed messages are rejected one by one; and SIPp's
UAC calls a UAS over TCP whose framing is this parser.
"""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from media.sip.errors import SipParseError
from media.sip.message import Request, Response, make_response, parse_message
from media.sip.stream import StreamFramingError, StreamParser, content_length
from tests.peers.sipp import Sipp

TORTURE = Path("/work/shared/testdata/sip-torture")


def message(n: int, body: bytes = b"", cl: str | None = None) -> bytes:
    length = str(len(body)) if cl is None else cl
    return (
        f"OPTIONS sip:a@b.example SIP/2.0\r\n"
        f"Via: SIP/2.0/TCP h.example;branch=z9hG4bK{n}\r\n"
        f"From: <sip:x@y.example>;tag={n}\r\n"
        f"To: <sip:a@b.example>\r\n"
        f"Call-ID: call-{n}\r\n"
        f"CSeq: {n} OPTIONS\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode() + body


def call_ids(messages: list[Request | Response]) -> list[str]:
    return [m.call_id for m in messages]


def test_one_message_in_one_chunk() -> None:
    p = StreamParser()
    [m] = p.feed(message(1, b"hello"))
    assert isinstance(m, Request) and m.body == b"hello"
    assert (p.pings, p.rejected, p.buffered) == (0, [], 0)


def test_byte_by_byte_equals_whole() -> None:
    data = message(1, b"a\r\n\r\nb") + message(2) + message(3, bytes(range(256)))
    p = StreamParser()
    out: list[Request | Response] = []
    for i in range(len(data)):
        out += p.feed(data[i : i + 1])
    assert call_ids(out) == ["call-1", "call-2", "call-3"]
    assert out[0].body == b"a\r\n\r\nb" and out[2].body == bytes(range(256))
    assert p.buffered == 0


def test_pipelined_messages_and_leftover() -> None:
    data = message(1) + message(2, b"xy") + message(3, b"partial")
    p = StreamParser()
    assert call_ids(p.feed(data[:-3])) == ["call-1", "call-2"]
    assert p.buffered == len(message(3, b"partial")) - 3
    assert call_ids(p.feed(data[-3:])) == ["call-3"]


def test_double_crlf_ping_is_counted() -> None:
    p = StreamParser()
    assert p.feed(b"\r\n\r\n") == [] and p.pings == 1
    assert p.feed(b"\r\n\r\n\r\n\r\n") == [] and p.pings == 2
    assert p.feed_raw(b"\r\n\r\n") == [b""] and p.pings == 1


def test_ping_split_across_segments_is_one_ping() -> None:
    p = StreamParser()
    assert p.feed(b"\r\n") == [] and p.pings == 0
    assert p.feed(b"\r") == [] and p.pings == 0
    assert p.feed(b"\n") == [] and p.pings == 1
    assert p.buffered == 0


def test_single_crlf_before_a_message_is_skipped() -> None:
    p = StreamParser()
    out = p.feed(b"\r\n" + message(1) + b"\r\n\r\n" + message(2) + b"\r\n")
    assert call_ids(out) == ["call-1", "call-2"] and p.pings == 1
    assert call_ids(p.feed(message(3))) == ["call-3"] and p.pings == 0  # the CRLF was a pong


def test_missing_content_length_is_fatal_and_sticky() -> None:
    p = StreamParser()
    data = message(1) + b"OPTIONS sip:a@b.example SIP/2.0\r\nCall-ID: x\r\n\r\n"
    with pytest.raises(StreamFramingError) as info:
        p.feed(data)
    exc = info.value
    assert exc.reason == "Content-Length is mandatory on a stream transport (RFC 3261 §18.3)"
    assert exc.status == 400 and call_ids(exc.messages) == ["call-1"]
    assert isinstance(exc, SipParseError) and isinstance(exc, ValueError)
    with pytest.raises(StreamFramingError):
        p.feed(message(2))  # nothing after a framing error can be trusted


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ("Content-Length: -5", "Content-Length: invalid value '-5'"),
        ("Content-Length: 5x", "Content-Length: invalid value '5x'"),
        ("Content-Length: 99999999999", "Content-Length: invalid value '99999999999'"),
        ("Content-Length: 3\r\nl: 4", "Content-Length: conflicting values 3, 4"),
    ],
)
def test_bad_content_length_is_fatal(headers: str, reason: str) -> None:
    data = f"OPTIONS sip:a@b.example SIP/2.0\r\nCall-ID: x\r\n{headers}\r\n\r\nabcd".encode()
    with pytest.raises(StreamFramingError) as info:
        StreamParser().feed(data)
    assert info.value.reason == reason


def test_compact_and_folded_content_length() -> None:
    p = StreamParser()
    compact = message(1, b"abc").replace(b"Content-Length: 3", b"l :3")
    folded = message(2, b"abcd").replace(b"Content-Length: 4", b"Content-Length:\r\n  4")
    out = p.feed(compact + folded)
    assert [m.body for m in out] == [b"abc", b"abcd"]
    assert content_length(b"X\r\nL:\t007") == 7


def test_size_limits() -> None:
    p = StreamParser(max_size=200)
    with pytest.raises(StreamFramingError) as info:
        p.feed(b"OPTIONS sip:a@b.example SIP/2.0\r\n" + b"X: y\r\n" * 40)
    assert info.value.status == 413 and "header block longer than 200 bytes" in info.value.reason
    p = StreamParser(max_size=300)
    with pytest.raises(StreamFramingError) as info:
        p.feed(message(1, cl="500"))
    assert info.value.status == 413 and "exceeds 300" in info.value.reason


def test_framed_but_malformed_message_is_rejected_and_the_stream_goes_on() -> None:
    bad = message(1).replace(b"CSeq: 1 OPTIONS\r\n", b"this is not a header\r\n")
    p = StreamParser()
    out = p.feed(bad + message(2))
    assert call_ids(out) == ["call-2"]
    [err] = p.rejected
    assert err.reason == "line 6: malformed header line 'this is not a header'"
    assert isinstance(err.partial, Request)
    answer = make_response(err.partial, err.status)  # the UA can still answer 400
    assert answer.headers.get("Call-ID") == "call-1"
    garbage = b"\x00\x01 garbage start line\r\nContent-Length: 2\r\n\r\nzz"
    assert call_ids(p.feed(garbage + message(3))) == ["call-3"]
    assert "not a SIP request or status line" in p.rejected[0].reason


def test_feed_raw_frames_for_the_transport() -> None:
    p = StreamParser()
    frames = p.feed_raw(message(1) + b"\r\n\r\n" + message(2, b"zz"))
    assert frames == [message(1), b"", message(2, b"zz")]


def test_lf_only_messages_are_framed() -> None:
    lf = message(1, b"body").replace(b"\r\n", b"\n")
    [m] = StreamParser().feed(lf + message(2)[:10])
    assert m.body == b"body"


VALID = [
    "wsinv", "intmeth", "esc01", "escnull", "esc02", "lwsdisp", "longreq", "semiuri",
    "transports", "mpart01", "unreason", "noreason", "badbranch", "insuf", "unkscm",
    "novelsc", "unksm2", "bext01", "invut", "regaut01", "multi01", "bcast", "zeromf",
    "cparam01", "cparam02", "regescrt", "sdp01", "mismatch01", "mismatch02", "baddate",
]  # fmt: skip


@pytest.mark.parametrize("name", VALID)
def test_corpus_over_a_stream_equals_datagram_parse(name: str) -> None:
    data = (TORTURE / f"rfc4475/{name}.dat").read_bytes()
    expected = parse_message(data, stream=True)
    p = StreamParser()
    got = p.feed(data[:7]) + p.feed(data[7:]) + p.feed(data)
    assert len(got) == 2 and got[0] == expected and got[1] == expected
    assert p.buffered == 0


@pytest.mark.parametrize(
    ("name", "outcome"),
    [
        ("inv2543", "Content-Length is mandatory"),
        ("mcl01", "Content-Length: conflicting values 13, 5"),
        ("ncl", "Content-Length: invalid value '-999'"),
        ("clerr", None),  # 9999 announced: waits for the rest
        ("dblreq", "register+invite"),  # over a stream the trailing INVITE is a second message
        ("badvers", "rejected 505"),
        ("lwsstart", "rejected 400"),
    ],
)
def test_corpus_framing_cases(name: str, outcome: str | None) -> None:
    data = (TORTURE / f"rfc4475/{name}.dat").read_bytes()
    p = StreamParser()
    if outcome is None:
        assert p.feed(data) == [] and p.buffered == len(data)
    elif outcome == "register+invite":
        # The INVITE announces 150 body bytes and 155 follow: the last five ("C\r\n\r\n")
        # read as a message without Content-Length, which breaks the framing.
        with pytest.raises(StreamFramingError) as info:
            p.feed(data)
        got = [m.method for m in info.value.messages if isinstance(m, Request)]
        assert got == ["REGISTER", "INVITE"]
        assert info.value.frames[1].endswith(b"a=rtpmap:31 LP")
    elif outcome.startswith("rejected"):
        assert p.feed(data) == []
        assert [e.status for e in p.rejected] == [int(outcome.split()[1])]
    else:
        with pytest.raises(StreamFramingError) as info:
            p.feed(data)
        assert outcome in info.value.reason


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(1, 300), min_size=1, max_size=40), st.integers(0, 3))
def test_any_chunking_gives_the_same_messages(sizes: list[int], pings: int) -> None:
    data = b"\r\n\r\n" * pings + message(1, b"x" * 50) + message(2) + b"\r\n\r\n" + message(3, b"y")
    p = StreamParser()
    out: list[Request | Response] = []
    seen = 0
    pos = 0
    for size in sizes * (len(data) // max(1, sum(sizes)) + 1):
        out += p.feed(data[pos : pos + size])
        seen += p.pings
        pos += size
        if pos >= len(data):
            break
    assert call_ids(out) == ["call-1", "call-2", "call-3"]
    assert seen == pings + 1 and p.buffered == 0


@settings(max_examples=1000, deadline=None)
@given(st.binary(max_size=500), st.integers(1, 64))
def test_random_bytes_never_raise_anything_but_sip_parse_error(data: bytes, chunk: int) -> None:
    p = StreamParser(max_size=400)
    try:
        for i in range(0, len(data), chunk):
            p.feed(data[i : i + chunk])
    except StreamFramingError as exc:
        assert exc.reason
    for err in p.rejected:
        assert isinstance(err, SipParseError)


# ---------------------------------------------------------------- real peer


class TcpUas:
    """A TCP UAS thread: StreamParser framing, make_response answers, ping -> pong."""

    def __init__(self) -> None:
        self.server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(8)
        self.server.settimeout(0.1)
        self.port: int = self.server.getsockname()[1]
        self.messages: list[Request | Response] = []
        self.rejected: list[SipParseError] = []
        self.pongs = 0
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> TcpUas:
        t = threading.Thread(target=self._accept, daemon=True)
        t.start()
        self._threads.append(t)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(5)
        self.server.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.server.accept()
            except TimeoutError:
                continue
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            t.start()
            self._threads.append(t)

    def _serve(self, conn: socket.socket) -> None:
        parser = StreamParser()
        conn.settimeout(0.1)
        with conn:
            while not self._stop.is_set():
                try:
                    data = conn.recv(4096)
                except TimeoutError:
                    continue
                if not data:
                    return
                try:
                    for msg in parser.feed(data):
                        self.messages.append(msg)
                        self._answer(conn, msg)
                    self.rejected += parser.rejected
                    if parser.pings:
                        conn.sendall(b"\r\n" * parser.pings)
                        self.pongs += parser.pings
                except BaseException as exc:
                    self.errors.append(exc)
                    return

    def _answer(self, conn: socket.socket, msg: Request | Response) -> None:
        assert isinstance(msg, Request)
        msg.validate()
        if msg.method == "INVITE":
            tag = "t" + msg.call_id.split("@")[0].replace(".", "")
            conn.sendall(bytes(make_response(msg, 100)))
            contact = [("Contact", f"<sip:uas@127.0.0.1:{self.port};transport=tcp>")]
            sdp = b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            sdp += b"m=audio 40002 RTP/AVP 0\r\n"
            ok = make_response(
                msg, 200, to_tag=tag, body=sdp, content_type="application/sdp", headers=contact
            )
            conn.sendall(bytes(ok))
        elif msg.method in ("BYE", "OPTIONS"):
            conn.sendall(bytes(make_response(msg, 200)))


@pytest.mark.peer
def test_sipp_tcp_uac_against_a_stream_parser_uas() -> None:
    with TcpUas() as uas:
        result = Sipp(
            "uac", remote=f"127.0.0.1:{uas.port}", calls=5, rate=20, transport="t1", timeout=20
        ).run()
    assert uas.errors == [] and uas.rejected == []
    assert result.ok and result.stats.successful == 5, result.summary()
    methods = sorted(m.method for m in uas.messages if isinstance(m, Request))
    assert methods == ["ACK"] * 5 + ["BYE"] * 5 + ["INVITE"] * 5
    assert all(m.vias[0].transport == "TCP" for m in uas.messages)


@pytest.mark.peer
def test_keepalive_ping_gets_a_pong_over_real_tcp() -> None:
    with TcpUas() as uas, socket.create_connection(("127.0.0.1", uas.port), timeout=5) as sock:
        sock.sendall(b"\r\n\r\n")
        assert sock.recv(16) == b"\r\n"
        sock.sendall(message(7)[:30])
        sock.sendall(message(7)[30:] + b"\r\n\r\n")
        reply = b""
        while not reply.endswith(b"\r\n\r\n\r\n"):  # the 200 OK, then the pong
            chunk = sock.recv(4096)
            assert chunk, reply
            reply += chunk
    answer = parse_message(reply[:-2], stream=True)
    assert isinstance(answer, Response) and (answer.status, answer.call_id) == (200, "call-7")
    assert uas.pongs == 2
