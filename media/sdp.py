"""SDP (RFC 4566) and the offer/answer model (RFC 3264) for audio calls.

``SessionDescription.parse`` / ``bytes()`` keep every line they do not
interpret, so an answer built from a model is faithful. ``negotiate`` answers
an offer: the first audio stream whose formats include one of our codecs is
accepted (in the **offerer's** order of preference, RFC 3264 §6.1 lets the
answerer choose; following the offerer keeps transcoding off the far end),
telephone-event is mirrored when offered, every other m-line is refused with
port 0, and the direction is the mirror of the offer's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

STATIC_PT = {0: "PCMU", 8: "PCMA"}
DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
MIRROR = {
    "sendrecv": "sendrecv",
    "sendonly": "recvonly",
    "recvonly": "sendonly",
    "inactive": "inactive",
}


class SdpParseError(ValueError):
    """An SDP body that does not parse; the message names the line."""


class NoCommonCodec(ValueError):
    """The offer has no audio format we can use (answer 488)."""


@dataclass
class Connection:
    nettype: str
    addrtype: str
    address: str

    def __str__(self) -> str:
        return f"{self.nettype} {self.addrtype} {self.address}"

    @property
    def is_hold(self) -> bool:
        """RFC 2543-style hold: ``c=IN IP4 0.0.0.0``."""
        return self.address in ("0.0.0.0", "::")


@dataclass
class Origin:
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


@dataclass
class MediaDescription:
    """One ``m=`` section."""

    media: str
    port: int
    proto: str
    formats: list[str]
    connection: Connection | None = None
    attributes: list[tuple[str, str | None]] = field(default_factory=list)
    other: list[str] = field(default_factory=list)
    """Lines other than c= and a= (i=, b=, k=), kept verbatim."""

    def attribute(self, name: str) -> str | None:
        for key, value in self.attributes:
            if key == name:
                return value if value is not None else ""
        return None

    def attribute_values(self, name: str) -> list[str]:
        return [v or "" for k, v in self.attributes if k == name]

    def rtpmap(self) -> dict[int, tuple[str, int]]:
        """Payload type -> (encoding name, clock rate), static types included."""
        out: dict[int, tuple[str, int]] = {}
        for fmt in self.formats:
            if fmt.isdigit() and int(fmt) in STATIC_PT:
                out[int(fmt)] = (STATIC_PT[int(fmt)], 8000)
        for value in self.attribute_values("rtpmap"):
            pt, _, rest = value.partition(" ")
            name, _, rate = rest.partition("/")
            if pt.isdigit():
                rate_num = rate.split("/")[0]
                out[int(pt)] = (name, int(rate_num) if rate_num.isdigit() else 0)
        return out

    def fmtp(self, pt: int) -> str | None:
        for value in self.attribute_values("fmtp"):
            key, _, rest = value.partition(" ")
            if key == str(pt):
                return rest
        return None

    @property
    def ptime(self) -> int | None:
        value = self.attribute("ptime")
        try:
            return int(float(value)) if value else None
        except ValueError:
            return None

    def direction(self, session_default: str = "sendrecv") -> str:
        for key, _ in self.attributes:
            if key in DIRECTIONS:
                return key
        return session_default


@dataclass
class SessionDescription:
    """A whole SDP body."""

    origin: Origin
    session_name: str = "-"
    connection: Connection | None = None
    timing: str = "0 0"
    attributes: list[tuple[str, str | None]] = field(default_factory=list)
    media: list[MediaDescription] = field(default_factory=list)
    other: list[str] = field(default_factory=list)
    version: int = 0

    @classmethod
    def parse(cls, data: bytes) -> SessionDescription:
        """Parse an SDP body; raises :class:`SdpParseError` naming the line."""
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SdpParseError(f"SDP is not UTF-8 text (byte {exc.start})") from None
        origin: Origin | None = None
        sdp = cls(origin=Origin("-", 0, 0, "IN", "IP4", "0.0.0.0"))
        current: MediaDescription | None = None
        seen_v = False
        for number, raw in enumerate(text.split("\n"), start=1):
            line = raw.rstrip("\r")
            if not line.strip():
                continue
            if len(line) < 2 or line[1] != "=":
                raise SdpParseError(f"SDP line {number}: expected '<type>=<value>', got {line!r}")
            kind, value = line[0], line[2:]
            if kind == "v":
                if value.strip() != "0":
                    raise SdpParseError(f"SDP line {number}: version {value!r}, expected 0")
                seen_v = True
            elif kind == "o":
                parts = value.split()
                if len(parts) != 6 or not parts[1].isdigit() or not parts[2].isdigit():
                    raise SdpParseError(f"SDP line {number}: malformed origin {value!r}")
                origin = Origin(parts[0], int(parts[1]), int(parts[2]), *parts[3:6])
            elif kind == "s":
                sdp.session_name = value
            elif kind == "c":
                parts = value.split()
                if len(parts) != 3:
                    raise SdpParseError(f"SDP line {number}: malformed connection {value!r}")
                address = parts[2].split("/")[0]
                conn = Connection(parts[0], parts[1], address)
                if current is None:
                    sdp.connection = conn
                else:
                    current.connection = conn
            elif kind == "t" and current is None:
                sdp.timing = value
            elif kind == "m":
                parts = value.split()
                if len(parts) < 3:
                    raise SdpParseError(f"SDP line {number}: malformed media {value!r}")
                port = parts[1].split("/")[0]
                if not port.isdigit() or int(port) > 65535:
                    raise SdpParseError(f"SDP line {number}: bad media port {parts[1]!r}")
                current = MediaDescription(parts[0], int(port), parts[2], parts[3:])
                sdp.media.append(current)
            elif kind == "a":
                name, sep, attr = value.partition(":")
                pair = (name, attr if sep else None)
                (sdp.attributes if current is None else current.attributes).append(pair)
            else:
                (sdp.other if current is None else current.other).append(line)
        if not seen_v:
            raise SdpParseError("SDP has no v= line")
        if origin is None:
            raise SdpParseError("SDP has no o= line")
        sdp.origin = origin
        return sdp

    def __bytes__(self) -> bytes:
        lines = [f"v={self.version}", f"o={self.origin}", f"s={self.session_name}"]
        lines += [x for x in self.other if not x.startswith("t=")]
        if self.connection is not None:
            lines.append(f"c={self.connection}")
        lines.append(f"t={self.timing}")
        lines += [f"a={k}" if v is None else f"a={k}:{v}" for k, v in self.attributes]
        for m in self.media:
            lines.append(f"m={m.media} {m.port} {m.proto} {' '.join(m.formats)}")
            lines += m.other
            if m.connection is not None:
                lines.append(f"c={m.connection}")
            lines += [f"a={k}" if v is None else f"a={k}:{v}" for k, v in m.attributes]
        return ("\r\n".join(lines) + "\r\n").encode()

    def session_direction(self) -> str:
        for key, _ in self.attributes:
            if key in DIRECTIONS:
                return key
        return "sendrecv"


@dataclass
class NegotiatedMedia:
    """What an offer/answer exchange settled for the audio stream."""

    answer: SessionDescription
    remote_address: str
    remote_port: int
    codec: str
    payload_type: int
    telephone_event_pt: int | None
    ptime: int
    direction: str
    """Our side's direction: what we may do (send, receive, both, neither)."""
    remote_ssrc: int | None = None


def _addrtype(address: str) -> str:
    return "IP6" if ":" in address else "IP4"


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
    """Answer ``offer`` (see module docstring); raises :class:`NoCommonCodec`."""
    wanted = {c.upper() for c in codecs}
    chosen: tuple[int, MediaDescription, int, str, int | None] | None = None
    answer_media: list[MediaDescription] = []
    for index, m in enumerate(offer.media):
        refused = MediaDescription(m.media, 0, m.proto, list(m.formats[:1]) or ["0"])
        if chosen is not None or m.media != "audio" or m.port == 0 or "RTP/AVP" not in m.proto:
            answer_media.append(refused)
            continue
        rtpmap = m.rtpmap()
        pick: tuple[int, str] | None = None
        te_pt: int | None = None
        for fmt in m.formats:
            if not fmt.isdigit():
                continue
            pt = int(fmt)
            name, rate = rtpmap.get(pt, ("", 0))
            if name.lower() == "telephone-event" and rate == 8000 and te_pt is None:
                te_pt = pt
            elif pick is None and name.upper() in wanted and rate == 8000:
                pick = (pt, name.upper())
        if pick is None:
            answer_media.append(refused)
            continue
        chosen = (index, m, pick[0], pick[1], te_pt)
        answer_media.append(refused)  # replaced below
    if chosen is None:
        offered = sorted({n for m in offer.media for n, _ in m.rtpmap().values()})
        raise NoCommonCodec(
            f"no common audio codec: offer has {offered}, we accept {sorted(wanted)}"
        )
    index, m, pt, name, te_pt = chosen
    offered_ptime = m.ptime or offer_session_ptime(offer)
    ptime = offered_ptime if offered_ptime is not None and offered_ptime in ptimes else 20
    conn = m.connection or offer.connection
    if conn is None:
        raise NoCommonCodec("offer has no c= line for its audio stream")
    offer_dir = m.direction(offer.session_direction())
    our_dir = "inactive" if conn.is_hold else MIRROR[offer_dir]
    formats = [str(pt)]
    attrs: list[tuple[str, str | None]] = [("rtpmap", f"{pt} {name}/8000")]
    if te_pt is not None:
        formats.append(str(te_pt))
        attrs.append(("rtpmap", f"{te_pt} telephone-event/8000"))
        attrs.append(("fmtp", f"{te_pt} {m.fmtp(te_pt) or '0-16'}"))
    attrs += [("ptime", str(ptime)), (our_dir, None)]
    answer_media[index] = MediaDescription(
        "audio",
        local_port,
        m.proto,
        formats,
        attributes=attrs,
    )
    answer = SessionDescription(
        origin=Origin(
            "callcore", session_id, session_version, "IN", _addrtype(local_address), local_address
        ),
        session_name="callcore",
        connection=Connection("IN", _addrtype(local_address), local_address),
        media=answer_media,
    )
    ssrc = None
    for value in m.attribute_values("ssrc"):
        head = value.split(" ", 1)[0]
        if head.isdigit():
            ssrc = int(head)
            break
    return NegotiatedMedia(
        answer=answer,
        remote_address=conn.address,
        remote_port=m.port,
        codec=name,
        payload_type=pt,
        telephone_event_pt=te_pt,
        ptime=ptime,
        direction=our_dir,
        remote_ssrc=ssrc,
    )


def offer_session_ptime(offer: SessionDescription) -> int | None:
    for key, value in offer.attributes:
        if key == "ptime" and value and value.isdigit():
            return int(value)
    return None


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
    """An offer for one audio stream (UAC calls, our own re-INVITEs).

    Re-offers in the same session keep ``session_id`` and pass
    ``session_version`` + 1 (RFC 3264 §8).
    """
    names = {v: k for k, v in STATIC_PT.items()}
    formats = [str(names[c.upper()]) for c in codecs]
    attrs: list[tuple[str, str | None]] = [
        ("rtpmap", f"{f} {STATIC_PT[int(f)]}/8000") for f in formats
    ]
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
