"""Dialog state (RFC 3261 §12) and in-dialog request building, sans I/O."""

from __future__ import annotations

from dataclasses import dataclass, field

from media.sip.headers import MAGIC_COOKIE
from media.sip.message import Request, make_request

Addr = tuple[str, int]


@dataclass
class Dialog:
    """One dialog: identifiers, sequence numbers, route set and remote target.

    ``peer`` is the transport address the far end used: in-dialog requests go
    there (symmetric signalling, as Asterisk does behind NAT), whatever its
    Contact says.
    """

    call_id: str
    local_tag: str
    remote_tag: str
    local_uri: str
    remote_uri: str
    remote_target: str
    peer: Addr
    transport: str
    local_cseq: int
    remote_cseq: int | None = None
    route_set: list[str] = field(default_factory=list)

    def accept_remote_cseq(self, cseq: int) -> bool:
        """RFC 3261 §12.2.2: a lower CSeq than the last one is out of order (500)."""
        if self.remote_cseq is not None and cseq < self.remote_cseq:
            return False
        self.remote_cseq = cseq
        return True

    def request(
        self,
        method: str,
        *,
        via: str,
        contact: str,
        branch: str,
        body: bytes = b"",
        content_type: str | None = None,
        extra: list[tuple[str, str]] | None = None,
        cseq: int | None = None,
    ) -> Request:
        """A request in this dialog; CSeq advances unless ``cseq`` is given (ACK)."""
        if cseq is None:
            self.local_cseq += 1
            cseq = self.local_cseq
        assert branch.startswith(MAGIC_COOKIE)
        headers = [("Via", f"{via};branch={branch};rport")]
        headers += [("Route", r) for r in self.route_set]
        headers += [
            ("Max-Forwards", "70"),
            ("From", f"<{self.local_uri}>;tag={self.local_tag}"),
            ("To", f"<{self.remote_uri}>;tag={self.remote_tag}"),
            ("Call-ID", self.call_id),
            ("CSeq", f"{cseq} {method}"),
            ("Contact", contact),
        ]
        headers += extra or []
        if content_type:
            headers.append(("Content-Type", content_type))
        return make_request(method, self.remote_target, headers, body)
