"""Dialog state (RFC 3261 §12) and building in-dialog requests, sans I/O.

A dialog is identified by (Call-ID, local tag, remote tag). It keeps the
local and remote CSeq numbers, the route set (the Record-Route of the
dialog-creating request in order at the UAS, of the 2xx reversed at the UAC)
and the remote target (the peer's Contact, replaced by every target-refresh
request or its 2xx).

Symmetric signalling: ``peer`` is the transport address the far end used
(the source of its INVITE at the UAS; the address we sent our INVITE to at
the UAC). In-dialog requests go there whatever the Contact or Route says, as
Asterisk does with ``force_rport``/``rewrite_contact`` behind NAT; the
Request-URI and Route headers are still built by the rules of §12.2.1.1.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from media.sip.errors import SipParseError, SipUsageError
from media.sip.headers import NameAddr
from media.sip.message import Request, Response, make_request
from media.sip.uri import SipUri

Addr = tuple[str, int]
MAX_SEQ = 2**31 - 1

__all__ = ["Dialog", "DialogId", "strip_tag"]


@dataclass(frozen=True)
class DialogId:
    """(Call-ID, local tag, remote tag): the key of a dialog on our side."""

    call_id: str
    local_tag: str
    remote_tag: str


def strip_tag(value: str) -> str:
    """A From/To header value without its ``tag`` parameter (other parameters kept)."""
    gt = value.rfind(">")
    if gt >= 0:
        head, params = value[: gt + 1], value[gt + 1 :]
    else:
        head, sep, rest = value.partition(";")
        params = sep + rest
    kept = [p for p in params.split(";") if p.strip() and p.split("=")[0].strip().lower() != "tag"]
    return head.strip() + "".join(f";{p.strip()}" for p in kept)


def _target(contacts: list[NameAddr]) -> str | None:
    return str(contacts[0].uri) if contacts else None


@dataclass
class Dialog:
    """One dialog (see module docstring). Build with :meth:`for_uas` or :meth:`for_uac`."""

    call_id: str
    local_tag: str
    remote_tag: str
    local_party: str  # From value of our requests, without tag
    remote_party: str  # To value of our requests, without tag
    remote_target: str
    peer: Addr
    transport: str
    local_seq: int
    remote_seq: int | None = None
    route_set: list[str] = field(default_factory=list)

    @property
    def id(self) -> DialogId:
        return DialogId(self.call_id, self.local_tag, self.remote_tag)

    # ------------------------------------------------------------ creation
    @classmethod
    def for_uas(
        cls, invite: Request, *, local_tag: str, local_seq: int, peer: Addr, transport: str
    ) -> Dialog:
        """The dialog our 2xx/1xx to ``invite`` creates (§12.1.1).

        Raises :class:`SipParseError` if From, To, Call-ID, CSeq or Contact
        do not parse. Without a Contact (RFC 2543 peers) the From URI is the
        remote target.
        """
        from_ = invite.from_
        return cls(
            call_id=invite.call_id,
            local_tag=local_tag,
            remote_tag=from_.tag or "",
            local_party=strip_tag(invite.headers.get("To") or ""),
            remote_party=strip_tag(invite.headers.get("From") or ""),
            remote_target=_target(invite.contact) or str(from_.uri),
            peer=peer,
            transport=transport,
            local_seq=local_seq,
            remote_seq=invite.cseq.seq,
            route_set=[r.strip() for r in invite.headers.get_all("Record-Route")],
        )

    @classmethod
    def for_uac(cls, invite: Request, response: Response, *, peer: Addr, transport: str) -> Dialog:
        """The dialog a 2xx (or 1xx with a To tag) to our ``invite`` creates (§12.1.2)."""
        to = response.to
        if not to.tag:
            raise SipParseError("To: the response that creates a dialog has no tag")
        return cls(
            call_id=invite.call_id,
            local_tag=invite.from_.tag or "",
            remote_tag=to.tag,
            local_party=strip_tag(invite.headers.get("From") or ""),
            remote_party=strip_tag(invite.headers.get("To") or ""),
            remote_target=_target(response.contact) or invite.uri,
            peer=peer,
            transport=transport,
            local_seq=invite.cseq.seq,
            remote_seq=None,
            route_set=[r.strip() for r in reversed(response.headers.get_all("Record-Route"))],
        )

    # ------------------------------------------------------------- updates
    def accept_remote_seq(self, seq: int) -> bool:
        """§12.2.2: False if ``seq`` is lower than the last one (answer 500); else record it."""
        if self.remote_seq is not None and seq < self.remote_seq:
            return False
        self.remote_seq = seq
        return True

    def refresh_target(self, message: Request | Response) -> None:
        """A target-refresh request or its 2xx: the Contact becomes the remote target."""
        try:
            target = _target(message.contact)
        except SipParseError:
            return
        if target is not None:
            self.remote_target = target

    def next_seq(self) -> int:
        """Advance the local CSeq for a new request (ACK and CANCEL reuse theirs)."""
        if self.local_seq >= MAX_SEQ:
            raise SipUsageError(f"dialog {self.call_id}: local CSeq exhausted at {MAX_SEQ}")
        self.local_seq += 1
        return self.local_seq

    # -------------------------------------------------------------- building
    def _uri_and_routes(self) -> tuple[str, list[str]]:
        """Request-URI and Route values by §12.2.1.1 (loose or strict first hop)."""
        if not self.route_set:
            return self.remote_target, []
        first = self.route_set[0]
        try:
            uri = NameAddr.parse(first, "Route").uri
        except SipParseError:
            return self.remote_target, list(self.route_set)
        if not isinstance(uri, SipUri) or "lr" in uri.params:
            return self.remote_target, list(self.route_set)
        strict = str(uri).split("?")[0]  # a strict router takes its URI as Request-URI
        return strict, [*self.route_set[1:], f"<{self.remote_target}>"]

    def request(
        self,
        method: str,
        *,
        sent_by: str,
        branch: str,
        contact: str | None = None,
        body: bytes = b"",
        content_type: str | None = None,
        headers: list[tuple[str, str]] | None = None,
        seq: int | None = None,
    ) -> Request:
        """A request in this dialog (§12.2.1.1).

        ``sent_by`` is our ``host:port`` for the Via (with ``;rport``, RFC
        3581); the CSeq advances unless ``seq`` is given (the ACK of a 2xx
        carries its INVITE's number, §13.2.2.4).
        """
        number = self.next_seq() if seq is None else seq
        uri, routes = self._uri_and_routes()
        items = [("Via", f"SIP/2.0/{self.transport.upper()} {sent_by};branch={branch};rport")]
        items += [("Route", r) for r in routes]
        items += [
            ("Max-Forwards", "70"),
            ("From", f"{self.local_party};tag={self.local_tag}"),
            ("To", f"{self.remote_party};tag={self.remote_tag}"),
            ("Call-ID", self.call_id),
            ("CSeq", f"{number} {method}"),
        ]
        if contact is not None:
            items.append(("Contact", contact))
        items += headers or []
        if content_type is not None:
            items.append(("Content-Type", content_type))
        return make_request(method, uri, items, body)

    def ack(
        self,
        invite_seq: int,
        *,
        sent_by: str,
        branch: str,
        body: bytes = b"",
        content_type: str | None = None,
    ) -> Request:
        """The ACK of a 2xx to our INVITE with CSeq ``invite_seq`` (new branch, same number)."""
        return self.request(
            "ACK",
            sent_by=sent_by,
            branch=branch,
            body=body,
            content_type=content_type,
            seq=invite_seq,
        )
