"""SDP (RFC 4566) and the offer/answer model (RFC 3264) for one audio stream.

Model: :class:`SessionDescription` holds the session-level fields and a list
of :class:`MediaDescription` (one per ``m=`` line). ``parse`` accepts CRLF or
bare LF; ``bytes()`` writes CRLF in RFC 4566 field order. Lines the model does
not interpret (``i= u= e= p= b= r= z= k=`` and unknown letters) are kept
verbatim, so ``bytes(parse(x))`` reproduces a well-ordered ``x``.

Parsing is strict where a mistake would send media to the wrong place
(``v= o= c= m=`` and the ``c=`` rule of RFC 4566 §5.7) and lenient with
attributes: a malformed ``a=rtpmap`` or ``a=ptime`` is kept but ignored by
the accessors (RFC 4475 sdp01 carries ``a=rtpmap:31 LPC``). Every refusal is
an :class:`SdpParseError` whose text starts ``SDP line N:``.

Offer/answer, answerer side (:func:`negotiate`): the first audio ``m=`` line
with ``RTP/AVP`` and a format we support is accepted; every other ``m=`` line
is answered with port 0, so the answer has the same lines in the same order
(RFC 3264 §6). Among the codecs we support we take the **offerer's** first
choice (RFC 3264 §6.1 lets the answerer choose; following the caller's
preference avoids transcoding on its side). ``telephone-event/8000`` is
accepted when offered, its ``a=fmtp`` mirrored (``0-16`` when absent). The
packet time is the offer's ``a=ptime`` when it is one of ours, else 20 ms.
Our direction is the mirror of the offer's (session-level direction
inherited); RFC 2543-style hold (``c=IN IP4 0.0.0.0``) makes us ``inactive``.

Offerer side: :func:`build_offer` writes our offer and :func:`parse_answer`
reads what the answerer chose.

Versions (RFC 3264 §8): a dialog keeps one ``session_id`` and a version
counter. Every SDP we send in it after the first (our answer to a re-INVITE,
or our own re-offer) passes ``session_version`` = previous + 1 with the same
``session_id`` and ``local_address``, so the ``o=`` line differs only in the
version; re-sending an unchanged SDP may keep the version.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

__all__ = [
    "DIRECTIONS",
    "AnswerMismatch",
    "Connection",
    "MediaDescription",
    "NegotiatedMedia",
    "NoCommonCodec",
    "Origin",
    "RtpMap",
    "SdpParseError",
    "SessionDescription",
    "build_offer",
    "negotiate",
    "parse_answer",
]

#: Static payload types of RFC 3551 that we may meet without an a=rtpmap.
STATIC_PT: dict[int, tuple[str, int]] = {
    0: ("PCMU", 8000),
    3: ("GSM", 8000),
    4: ("G723", 8000),
    8: ("PCMA", 8000),
    9: ("G722", 8000),
    18: ("G729", 8000),
}
#: The codecs this engine can send and receive, with their static payload type.
SUPPORTED = {"PCMU": 0, "PCMA": 8}
DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
_SEND = frozenset({"sendrecv", "sendonly"})
_RECV = frozenset({"sendrecv", "recvonly"})
_TELEPHONE_EVENT = "telephone-event"
#: Where the kept-verbatim lines go on output (RFC 4566 §5 field order).
_SESSION_RANK = {"i": 0, "u": 1, "e": 2, "p": 3, "c": 4, "b": 5, "t": 6, "r": 6, "z": 7, "k": 8}
_MEDIA_RANK = {"i": 0, "c": 1, "b": 2, "k": 3}
_UNKNOWN_RANK = 9


class SdpParseError(ValueError):
    """An SDP body that is not valid SDP (the peer's fault: answer 400 or 488).

    ``line`` is the 1-based line number (None for the body as a whole) and
    ``reason`` says what is wrong; ``str()`` is ``"SDP line N: reason"``.
    """

    def __init__(self, reason: str, line: int | None = None) -> None:
        self.reason = reason
        self.line = line
        super().__init__(f"SDP line {line}: {reason}" if line is not None else f"SDP: {reason}")


class NoCommonCodec(ValueError):
    """No audio stream can be set up (the UAS answers 488); the text says why."""


class AnswerMismatch(ValueError):
    """An answer that does not fit the offer it answers (RFC 3264 §6)."""


class RtpMap(NamedTuple):
    """One ``a=rtpmap`` entry (or the RFC 3551 static mapping)."""

    encoding: str
    clock_rate: int
    channels: int = 1


@dataclass
class Connection:
    """``c=<nettype> <addrtype> <address>[/ttl[/count]]``."""

    nettype: str
    addrtype: str
    address: str
    suffix: str = ""
    """The multicast ``/ttl/count`` part, kept verbatim ("" for unicast)."""

    def __str__(self) -> str:
        return f"{self.nettype} {self.addrtype} {self.address}{self.suffix}"

    @property
    def is_hold(self) -> bool:
        """RFC 2543-style hold: the null address (``0.0.0.0``, or ``::`` in IP6)."""
        return self.address in ("0.0.0.0", "::")


@dataclass
class Origin:
    """``o=<username> <sess-id> <sess-version> <nettype> <addrtype> <address>``."""

    username: str
    session_id: int
    session_version: int
    nettype: str
    addrtype: str
    address: str

    def __str__(self) -> str:
        return (
            f"{self.username} {self.session_id} {self.session_version} "
            f"{self.nettype} {self.addrtype} {self.address}"
        )


Attribute = tuple[str, str | None]
"""``(name, value)``; value None for a property attribute such as ``a=sendrecv``."""


def _render_attribute(attr: Attribute) -> str:
    name, value = attr
    return f"a={name}" if value is None else f"a={name}:{value}"


@dataclass
class MediaDescription:
    """One ``m=`` section: ``m=<media> <port>[/<count>] <proto> <fmt> ...``."""

    media: str
    port: int
    proto: str
    formats: list[str]
    """As written (payload type numbers for RTP profiles)."""
    connection: Connection | None = None
    attributes: list[Attribute] = field(default_factory=list)
    other: list[str] = field(default_factory=list)
    """Lines other than ``c=`` and ``a=`` (``i= b= k=``), kept verbatim."""
    port_count: int | None = None

    def attribute(self, name: str) -> str | None:
        """The first ``a=name`` value ("" for a property attribute), None if absent."""
        for key, value in self.attributes:
            if key == name:
                return value if value is not None else ""
        return None

    def attribute_values(self, name: str) -> list[str]:
        """Every ``a=name`` value, in order."""
        return [value or "" for key, value in self.attributes if key == name]

    def rtpmap(self) -> dict[int, RtpMap]:
        """Payload type -> :class:`RtpMap` for the listed formats.

        Static payload types (RFC 3551) count without an ``a=rtpmap``; an
        ``a=rtpmap`` overrides them. Malformed ``a=rtpmap`` lines are ignored.
        """
        listed = {int(f) for f in self.formats if f.isdigit()}
        out = {pt: RtpMap(*STATIC_PT[pt]) for pt in listed if pt in STATIC_PT}
        for value in self.attribute_values("rtpmap"):
            entry = _parse_rtpmap(value)
            if entry is not None and entry[0] in listed:
                out[entry[0]] = entry[1]
        return out

    def fmtp(self, pt: int) -> str | None:
        """The ``a=fmtp`` parameters for payload type ``pt``, None if absent."""
        for value in self.attribute_values("fmtp"):
            key, _, rest = value.partition(" ")
            if key == str(pt):
                return rest.strip()
        return None

    @property
    def ptime(self) -> int | None:
        """``a=ptime`` in whole milliseconds; None when absent or malformed."""
        return _parse_ptime(self.attribute("ptime"))

    @property
    def ssrc(self) -> int | None:
        """The first ``a=ssrc`` (RFC 5576) source, None when absent."""
        for value in self.attribute_values("ssrc"):
            head = value.split(" ", 1)[0]
            if head.isdigit() and int(head) < 2**32:
                return int(head)
        return None

    def direction(self, session_default: str = "sendrecv") -> str:
        """The declared direction of this stream, else ``session_default``."""
        for key, _ in self.attributes:
            if key in DIRECTIONS:
                return key
        return session_default


def _parse_rtpmap(value: str) -> tuple[int, RtpMap] | None:
    pt, _, rest = value.strip().partition(" ")
    parts = rest.strip().split("/")
    if not pt.isdigit() or len(parts) < 2 or not parts[0] or not parts[1].isdigit():
        return None
    channels = int(parts[2]) if len(parts) > 2 and parts[2].isdigit() else 1
    return int(pt), RtpMap(parts[0], int(parts[1]), channels)


def _parse_ptime(value: str | None) -> int | None:
    if not value:
        return None
    try:
        ms = float(value)
    except ValueError:
        return None
    return int(ms) if 0 < ms < 10_000 else None


def _check_address(addrtype: str, address: str, what: str, number: int) -> None:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        ip = None
    if addrtype == "IP4":
        if ip is not None and ip.version != 4:
            raise SdpParseError(f"{what} address {address!r} is IPv6 but the type is IP4", number)
    elif addrtype == "IP6":
        if ip is not None and ip.version != 6:
            raise SdpParseError(f"{what} address {address!r} is IPv4 but the type is IP6", number)
    else:
        raise SdpParseError(f"{what} address type {addrtype!r} is not IP4 or IP6", number)
    if ip is None:  # an FQDN is allowed (RFC 4566 §5.7); anything else is garbage
        labels = address.rstrip(".").split(".")
        if not all(label and all(c.isalnum() or c == "-" for c in label) for label in labels):
            raise SdpParseError(f"{what} address {address!r} is not an {addrtype} address", number)


def _excerpt(line: str) -> str:
    return repr(line if len(line) <= 60 else line[:57] + "...")


@dataclass
class SessionDescription:
    """A whole SDP body (see the module docstring for parse/serialize rules)."""

    origin: Origin
    session_name: str = "-"
    connection: Connection | None = None
    timing: str = "0 0"
    """The first ``t=`` value; further ``t=``/``r=`` lines stay in ``other``."""
    attributes: list[Attribute] = field(default_factory=list)
    media: list[MediaDescription] = field(default_factory=list)
    other: list[str] = field(default_factory=list)
    version: int = 0

    @classmethod
    def parse(cls, data: bytes) -> SessionDescription:
        """Parse an SDP body (CRLF or LF line ends).

        Raises :class:`SdpParseError` naming the line and the fault for: a
        body that is not UTF-8, a first line other than ``v=0``, a line that
        is not ``<letter>=<value>``, a malformed or repeated ``o=``/``s=``, a
        malformed ``c=`` (type not IN IP4/IN IP6, address not of that type),
        a malformed ``t=`` or ``m=`` (port, payload types), an empty ``a=``,
        and a used ``m=`` line without a ``c=`` of its own or at session level.
        """
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            bad_line = data[: exc.start].count(b"\n") + 1
            raise SdpParseError(
                f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})", bad_line
            ) from None
        origin: Origin | None = None
        sdp = cls(origin=Origin("-", 0, 0, "IN", "IP4", "0.0.0.0"))
        current: MediaDescription | None = None
        media_lines: list[int] = []
        seen: set[str] = set()
        first = True
        for number, raw in enumerate(text.split("\n"), start=1):
            line = raw[:-1] if raw.endswith("\r") else raw
            if not line.strip():
                continue
            if len(line) < 2 or line[1] != "=" or not ("a" <= line[0] <= "z"):
                raise SdpParseError(f"expected '<letter>=<value>', got {_excerpt(line)}", number)
            kind, value = line[0], line[2:]
            if first:
                if kind != "v":
                    raise SdpParseError(f"expected 'v=0' first, got {_excerpt(line)}", number)
                first = False
            if kind in "vos" and current is None:
                if kind in seen:
                    raise SdpParseError(f"second {kind}= line", number)
                seen.add(kind)
            if kind == "v":
                if current is not None:
                    raise SdpParseError("v= inside a media section", number)
                if value != "0":
                    raise SdpParseError(f"version {value!r}, expected 0", number)
            elif kind == "o" and current is None:
                origin = cls._parse_origin(value, number)
            elif kind == "s" and current is None:
                sdp.session_name = value
            elif kind == "c":
                conn = cls._parse_connection(value, number)
                holder: SessionDescription | MediaDescription = current or sdp
                if holder.connection is not None:
                    where = "session" if current is None else f"m={current.media} section"
                    raise SdpParseError(f"second c= line in the {where}", number)
                holder.connection = conn
            elif kind == "t" and current is None and "t" not in seen:
                fields = value.split()
                if len(fields) != 2 or not all(f.isdigit() for f in fields):
                    raise SdpParseError(
                        f"t= needs '<start> <stop>' as two integers, got {value!r}", number
                    )
                seen.add("t")
                sdp.timing = value
            elif kind == "m":
                current = cls._parse_media(value, number)
                sdp.media.append(current)
                media_lines.append(number)
            elif kind == "a":
                name, sep, attr = value.partition(":")
                if not name:
                    raise SdpParseError(f"attribute without a name: {_excerpt(line)}", number)
                (sdp.attributes if current is None else current.attributes).append(
                    (name, attr if sep else None)
                )
            elif current is None:
                sdp.other.append(line)
            else:
                current.other.append(line)
        if first:
            raise SdpParseError("empty body")
        if origin is None:
            raise SdpParseError("no o= line")
        sdp.origin = origin
        for m, number in zip(sdp.media, media_lines, strict=True):
            if m.port != 0 and m.connection is None and sdp.connection is None:
                raise SdpParseError(
                    f"m={m.media} has no c= line and there is no session-level c=", number
                )
        return sdp

    @staticmethod
    def _parse_origin(value: str, number: int) -> Origin:
        parts = value.split()
        if len(parts) != 6:
            raise SdpParseError(
                "o= needs 6 fields (username sess-id sess-version nettype addrtype "
                f"address), got {len(parts)}",
                number,
            )
        if not parts[1].isdigit() or not parts[2].isdigit():
            raise SdpParseError(
                f"o= session id and version must be numbers, got {parts[1]!r} {parts[2]!r}",
                number,
            )
        if parts[3] != "IN":
            raise SdpParseError(f"o= network type {parts[3]!r} is not IN", number)
        _check_address(parts[4], parts[5], "o=", number)
        return Origin(parts[0], int(parts[1]), int(parts[2]), parts[3], parts[4], parts[5])

    @staticmethod
    def _parse_connection(value: str, number: int) -> Connection:
        parts = value.split()
        if len(parts) != 3:
            raise SdpParseError(
                f"c= needs 3 fields (nettype addrtype address), got {value!r}", number
            )
        if parts[0] != "IN":
            raise SdpParseError(f"c= network type {parts[0]!r} is not IN", number)
        address, slash, suffix = parts[2].partition("/")
        _check_address(parts[1], address, "c=", number)
        return Connection(parts[0], parts[1], address, slash + suffix)

    @staticmethod
    def _parse_media(value: str, number: int) -> MediaDescription:
        parts = value.split()
        if len(parts) < 4:
            raise SdpParseError(
                f"m= needs media, port, proto and at least one format, got {value!r}", number
            )
        port_text, _, count_text = parts[1].partition("/")
        if not port_text.isdigit() or int(port_text) > 65535:
            raise SdpParseError(f"m= port {parts[1]!r} is not a number 0-65535", number)
        if count_text and not count_text.isdigit():
            raise SdpParseError(f"m= port count in {parts[1]!r} is not a number", number)
        formats = parts[3:]
        if "RTP/" in parts[2]:
            for fmt in formats:
                if not fmt.isdigit() or int(fmt) > 127:
                    raise SdpParseError(
                        f"m={parts[0]} format {fmt!r} is not an RTP payload type 0-127", number
                    )
        return MediaDescription(
            parts[0],
            int(port_text),
            parts[2],
            formats,
            port_count=int(count_text) if count_text else None,
        )

    def __bytes__(self) -> bytes:
        """The body with CRLF line ends, fields in RFC 4566 order."""
        ranked: list[tuple[int, str]] = [
            (_SESSION_RANK.get(x[0], _UNKNOWN_RANK), x) for x in self.other
        ]
        if self.connection is not None:
            ranked.append((_SESSION_RANK["c"], f"c={self.connection}"))
        ranked.insert(0, (_SESSION_RANK["t"], f"t={self.timing}"))
        ranked.sort(key=lambda item: item[0])  # stable: the first t= stays first
        lines = [f"v={self.version}", f"o={self.origin}", f"s={self.session_name}"]
        lines += [text for _, text in ranked]
        lines += [_render_attribute(a) for a in self.attributes]
        for m in self.media:
            port = f"{m.port}/{m.port_count}" if m.port_count is not None else str(m.port)
            lines.append(f"m={m.media} {port} {m.proto} {' '.join(m.formats)}")
            mranked = [(_MEDIA_RANK.get(x[0], _UNKNOWN_RANK), x) for x in m.other]
            if m.connection is not None:
                mranked.append((_MEDIA_RANK["c"], f"c={m.connection}"))
            mranked.sort(key=lambda item: item[0])
            lines += [text for _, text in mranked]
            lines += [_render_attribute(a) for a in m.attributes]
        return ("\r\n".join(lines) + "\r\n").encode()

    def session_direction(self) -> str:
        """The session-level direction attribute, ``sendrecv`` when absent."""
        for key, _ in self.attributes:
            if key in DIRECTIONS:
                return key
        return "sendrecv"

    def session_attribute(self, name: str) -> str | None:
        """The first session-level ``a=name`` value ("" for a property), None if absent."""
        for key, value in self.attributes:
            if key == name:
                return value if value is not None else ""
        return None

    def connection_of(self, m: MediaDescription) -> Connection | None:
        """The connection a stream uses: its own ``c=``, else the session's."""
        return m.connection or self.connection

    def direction_of(self, m: MediaDescription) -> str:
        """What the sender of this SDP declares for ``m`` (session-level inherited)."""
        return m.direction(self.session_direction())

    def is_hold(self, m: MediaDescription) -> bool:
        """Whether ``m`` puts the other side on hold: the sender of this SDP will
        not receive (``sendonly``/``inactive``, or the RFC 2543 null address)."""
        conn = self.connection_of(m)
        return self.direction_of(m) in ("sendonly", "inactive") or (
            conn is not None and conn.is_hold
        )


@dataclass
class NegotiatedMedia:
    """What an offer/answer exchange settled for the audio stream."""

    answer: SessionDescription
    """The answer: ours from :func:`negotiate`, the peer's from :func:`parse_answer`."""
    remote_address: str
    remote_port: int
    codec: str
    """``"PCMU"`` or ``"PCMA"``."""
    payload_type: int
    telephone_event_pt: int | None
    ptime: int
    direction: str
    """Our side's direction: what we may do (send, receive, both, neither)."""
    remote_ssrc: int | None = None


def _addrtype(address: str) -> str:
    return "IP6" if ":" in address else "IP4"


def _direction(can_send: bool, can_receive: bool) -> str:
    if can_send and can_receive:
        return "sendrecv"
    if can_send:
        return "sendonly"
    return "recvonly" if can_receive else "inactive"


def _our_direction(ours: str, theirs: str, hold_address: bool) -> str:
    """Our direction given what we allow (``ours``) and what the peer declared."""
    can_send = ours in _SEND and theirs in _RECV and not hold_address
    can_receive = ours in _RECV and theirs in _SEND and not hold_address
    return _direction(can_send, can_receive)


def _codec_choice(
    m: MediaDescription, wanted: Sequence[str], fallback: dict[int, RtpMap] | None = None
) -> tuple[tuple[int, str] | None, int | None]:
    """(payload type, codec) of the first supported format in ``m``'s order, and
    the telephone-event/8000 payload type; ``fallback`` maps unlisted types."""
    rtpmap = {**(fallback or {}), **m.rtpmap()}
    pick: tuple[int, str] | None = None
    te_pt: int | None = None
    for fmt in m.formats:
        if not fmt.isdigit() or int(fmt) not in rtpmap:
            continue
        pt = int(fmt)
        entry = rtpmap[pt]
        name = entry.encoding.upper()
        if entry.clock_rate != 8000 or entry.channels != 1:
            continue
        if name == _TELEPHONE_EVENT.upper():
            te_pt = pt if te_pt is None else te_pt
        elif pick is None and name in wanted:
            pick = (pt, name)
    return pick, te_pt


def _usable_audio(m: MediaDescription) -> str | None:
    """Why an offered stream cannot be our audio stream, None if it can."""
    if m.media != "audio":
        return f"m={m.media} is not audio"
    if m.port == 0:
        return "m=audio has port 0 (refused stream)"
    if m.proto != "RTP/AVP":
        return f"m=audio proto {m.proto} is not RTP/AVP"
    return None


def _describe_codecs(m: MediaDescription) -> str:
    names = [f"{e.encoding}/{e.clock_rate}" for e in m.rtpmap().values()]
    return ", ".join(names) if names else "no known format"


def negotiate(
    offer: SessionDescription,
    *,
    local_address: str,
    local_port: int,
    codecs: Sequence[str] = ("PCMU", "PCMA"),
    ptimes: Sequence[int] = (20, 30),
    session_id: int,
    session_version: int,
) -> NegotiatedMedia:
    """Answer ``offer`` for one audio stream (rules in the module docstring).

    ``codecs`` is the set we accept (its order does not matter: the offerer's
    order decides). ``session_id``/``session_version`` go into the answer's
    ``o=`` line (see "Versions" above). Raises :class:`NoCommonCodec` when no
    audio stream can be accepted; the text says why for each stream.
    """
    wanted = [c.upper() for c in codecs]
    unknown = [c for c in wanted if c not in SUPPORTED]
    if unknown:
        raise ValueError(f"negotiate: unsupported codec {unknown[0]!r}: supported are PCMU, PCMA")
    answer_media: list[MediaDescription] = []
    chosen: tuple[int, MediaDescription, int, str, int | None] | None = None
    reasons: list[str] = []
    for index, m in enumerate(offer.media):
        refused = MediaDescription(m.media, 0, m.proto, list(m.formats[:1]))
        answer_media.append(refused)
        if chosen is not None:
            continue
        why = _usable_audio(m)
        if why is None:
            pick, te_pt = _codec_choice(m, wanted)
            if pick is not None:
                chosen = (index, m, pick[0], pick[1], te_pt)
                continue
            why = f"m=audio offers {_describe_codecs(m)}, we accept {', '.join(wanted)}"
        reasons.append(f"stream {index + 1}: {why}")
    if chosen is None:
        detail = "; ".join(reasons) if reasons else "the offer has no m= line"
        raise NoCommonCodec(f"no usable audio stream: {detail}")
    index, m, pt, name, te_pt = chosen
    offered_ptime = m.ptime or _parse_ptime(offer.session_attribute("ptime"))
    ptime = offered_ptime if offered_ptime is not None and offered_ptime in ptimes else 20
    conn = offer.connection_of(m)
    assert conn is not None  # parse() refuses a used m= line without c=
    our_dir = _our_direction("sendrecv", offer.direction_of(m), conn.is_hold)
    formats = [str(pt)]
    attrs: list[Attribute] = [("rtpmap", f"{pt} {name}/8000")]
    if te_pt is not None:
        formats.append(str(te_pt))
        attrs.append(("rtpmap", f"{te_pt} telephone-event/8000"))
        attrs.append(("fmtp", f"{te_pt} {m.fmtp(te_pt) or '0-16'}"))
    attrs += [("ptime", str(ptime)), (our_dir, None)]
    answer_media[index] = MediaDescription("audio", local_port, m.proto, formats, attributes=attrs)
    at = _addrtype(local_address)
    answer = SessionDescription(
        origin=Origin("callcore", session_id, session_version, "IN", at, local_address),
        session_name="callcore",
        connection=Connection("IN", at, local_address),
        media=answer_media,
    )
    return NegotiatedMedia(
        answer=answer,
        remote_address=conn.address,
        remote_port=m.port,
        codec=name,
        payload_type=pt,
        telephone_event_pt=te_pt,
        ptime=ptime,
        direction=our_dir,
        remote_ssrc=m.ssrc,
    )


def build_offer(
    *,
    local_address: str,
    local_port: int,
    codecs: Sequence[str] = ("PCMU", "PCMA"),
    telephone_event_pt: int | None = 101,
    ptime: int = 20,
    session_id: int,
    session_version: int,
    direction: str = "sendrecv",
) -> SessionDescription:
    """Our offer of one audio stream, codecs in our order of preference.

    For a UAC INVITE and our own re-INVITEs (hold: ``direction="sendonly"``).
    A re-offer keeps ``session_id`` and passes ``session_version`` + 1 (see
    "Versions" in the module docstring). Raises ValueError for a codec other
    than PCMU/PCMA, a direction not in :data:`DIRECTIONS`, a telephone-event
    payload type outside the dynamic range 96-127, or a ptime not in 10-200.
    """
    names = [c.upper() for c in codecs]
    for name in names:
        if name not in SUPPORTED:
            raise ValueError(f"build_offer: unsupported codec {name!r}: supported are PCMU, PCMA")
    if not names:
        raise ValueError("build_offer: no codec to offer")
    if direction not in DIRECTIONS:
        raise ValueError(f"build_offer: direction {direction!r} is not one of {DIRECTIONS}")
    if telephone_event_pt is not None and not 96 <= telephone_event_pt <= 127:
        raise ValueError(
            f"build_offer: telephone-event payload type {telephone_event_pt} is not in 96-127"
        )
    if not 10 <= ptime <= 200:
        raise ValueError(f"build_offer: ptime {ptime} ms is not in 10-200")
    formats = [str(SUPPORTED[n]) for n in dict.fromkeys(names)]
    attrs: list[Attribute] = [("rtpmap", f"{f} {STATIC_PT[int(f)][0]}/8000") for f in formats]
    if telephone_event_pt is not None:
        formats.append(str(telephone_event_pt))
        attrs.append(("rtpmap", f"{telephone_event_pt} telephone-event/8000"))
        attrs.append(("fmtp", f"{telephone_event_pt} 0-16"))
    attrs += [("ptime", str(ptime)), (direction, None)]
    at = _addrtype(local_address)
    return SessionDescription(
        origin=Origin("callcore", session_id, session_version, "IN", at, local_address),
        session_name="callcore",
        connection=Connection("IN", at, local_address),
        media=[MediaDescription("audio", local_port, "RTP/AVP", formats, attributes=attrs)],
    )


def parse_answer(
    offer: SessionDescription,
    answer: SessionDescription,
    *,
    ptimes: Sequence[int] = (10, 20, 30, 40),
) -> NegotiatedMedia:
    """What the answerer chose for the first audio stream of our ``offer``.

    The codec is the first format of the answer's audio line that we offered
    (payload types resolved by the answer's ``a=rtpmap``, else our offer's).
    The ptime is the answer's ``a=ptime`` when in ``ptimes``, else our
    offer's, else 20. Our direction allows only what both our offer and the
    answer allow. Raises :class:`AnswerMismatch` when the answer does not have
    the offer's ``m=`` lines (count and media types, RFC 3264 §6), and
    :class:`NoCommonCodec` when the answerer refused our audio (port 0) or
    chose no codec we offered.
    """
    if len(answer.media) != len(offer.media):
        raise AnswerMismatch(
            f"answer has {len(answer.media)} m= lines, the offer has {len(offer.media)}"
        )
    for index, (ours, theirs) in enumerate(zip(offer.media, answer.media, strict=True)):
        if ours.media != theirs.media:
            raise AnswerMismatch(
                f"answer m= line {index + 1} is {theirs.media}, the offer's is {ours.media}"
            )
    reasons: list[str] = []
    for index, (ours, theirs) in enumerate(zip(offer.media, answer.media, strict=True)):
        if _usable_audio(ours) is not None:
            continue
        if theirs.port == 0:
            reasons.append(f"stream {index + 1}: refused (port 0)")
            continue
        offered = ours.rtpmap()
        wanted = [e.encoding.upper() for e in offered.values() if e.encoding.upper() in SUPPORTED]
        pick, te_pt = _codec_choice(theirs, wanted, fallback=offered)
        if pick is None:
            reasons.append(
                f"stream {index + 1}: answer has {_describe_codecs(theirs)}, "
                f"we offered {', '.join(wanted)}"
            )
            continue
        if te_pt is not None and not any(
            e.encoding.lower() == _TELEPHONE_EVENT for e in offered.values()
        ):
            te_pt = None  # not offered by us: ignore it
        conn = answer.connection_of(theirs)
        if conn is None:
            raise AnswerMismatch(f"answer m=audio (stream {index + 1}) has no c= line")
        answered_ptime = theirs.ptime or _parse_ptime(answer.session_attribute("ptime"))
        ptime = ours.ptime or 20
        if answered_ptime is not None and answered_ptime in ptimes:
            ptime = answered_ptime
        our_dir = _our_direction(
            offer.direction_of(ours), answer.direction_of(theirs), conn.is_hold
        )
        return NegotiatedMedia(
            answer=answer,
            remote_address=conn.address,
            remote_port=theirs.port,
            codec=pick[1],
            payload_type=pick[0],
            telephone_event_pt=te_pt,
            ptime=ptime,
            direction=our_dir,
            remote_ssrc=theirs.ssrc,
        )
    detail = "; ".join(reasons) if reasons else "our offer has no usable audio stream"
    raise NoCommonCodec(f"the answer accepted no audio: {detail}")
