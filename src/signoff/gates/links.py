"""E-mailed decision links: signed, expiring, single-use, bound to one approver and one gate.

A link's token is ``<payload>.<signature>``: the payload names the gate, the approver, the
decision and the expiry; the signature is an HMAC-SHA256 with the server's secret. Only the
token's sha256 is stored, with its use, so a token read from the database cannot be replayed
and a used token is refused. Links are built from the configured public base URL, never from
a request's Host header.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass

from signoff.domain.records import LinkToken
from signoff.errors import SignoffError

__all__ = [
    "MAX_TOKEN_LENGTH",
    "LinkError",
    "LinkGoneError",
    "LinkSigner",
    "MintedLink",
    "same_secret",
    "token_hash",
]

# A genuine token is about 200 characters; anything much longer is refused unread.
MAX_TOKEN_LENGTH = 1000


class LinkError(SignoffError):
    """A link that is malformed, forged, expired, used, or no longer applies."""


class LinkGoneError(LinkError):
    """A genuine link that worked once and never will again: it expired, or it was used."""


@dataclass(frozen=True, slots=True)
class MintedLink:
    """A fresh link: the URL to send and the record to store (hash only)."""

    url: str
    token: str
    record: LinkToken


def token_hash(token: str) -> str:
    """What the store keeps of a token."""
    return hashlib.sha256(token.encode()).hexdigest()


def same_secret(expected: str, given: str | None) -> bool:
    """Whether ``given`` equals ``expected``, compared in constant time, for any input.

    Every check of a signature or CSRF value goes through here. ``hmac.compare_digest`` on
    ``str`` refuses non-ASCII text with a TypeError, and such text comes straight from URLs,
    forms and cookies, so both sides are compared as UTF-8 bytes. An empty or missing value
    never matches.
    """
    if not given or not expected:
        return False
    try:
        given_bytes = given.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: not text any secret of ours is made of
        return False
    return hmac.compare_digest(expected.encode("utf-8"), given_bytes)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class LinkSigner:
    """Mints and checks decision links with one secret."""

    def __init__(self, secret: bytes, base_url: str) -> None:
        if len(secret) < 16:
            raise SignoffError("the link secret must be at least 16 bytes")
        self._secret = secret
        self.base_url = base_url.rstrip("/")

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self._secret, payload.encode(), hashlib.sha256).digest())

    def mint(self, *, gate_id: str, user: str, decision: str, expires_at: float) -> MintedLink:
        """A link for ``user`` to ``decision`` (approve/reject) ``gate_id`` until ``expires_at``."""
        body = {"g": gate_id, "u": user, "d": decision, "e": int(expires_at), "n": _nonce()}
        payload = _b64(json.dumps(body, separators=(",", ":"), sort_keys=True).encode())
        token = f"{payload}.{self._sign(payload)}"
        record = LinkToken(
            token_hash=token_hash(token),
            gate_id=gate_id,
            user=user,
            decision=decision,
            expires_at=float(int(expires_at)),
            used_at=None,
        )
        return MintedLink(url=f"{self.base_url}/links/{token}", token=token, record=record)

    def read(self, token: str, *, now: float) -> dict[str, object]:
        """The payload of a genuine, unexpired token (not yet checked against the store)."""
        payload, sep, signature = token.partition(".")
        if not sep or not payload or not signature or len(token) > MAX_TOKEN_LENGTH:
            raise LinkError("this link is not a signoff decision link")
        if not same_secret(self._sign(payload), signature):
            raise LinkError("this link's signature does not match: it was altered or forged")
        try:
            body = json.loads(_unb64(payload))
        except (ValueError, UnicodeDecodeError) as exc:
            raise LinkError("this link is damaged") from exc
        if not isinstance(body, dict) or {"g", "u", "d", "e"} - body.keys():
            raise LinkError("this link is damaged")
        if float(body["e"]) <= now:
            raise LinkGoneError("this link has expired; ask for a new one or decide in signoff")
        return body

    def csrf_for(self, token: str, cookie: str) -> str:
        """The form's CSRF value: bound to the link and to the browser's CSRF cookie."""
        return self._sign(f"csrf:{token_hash(token)}:{cookie}")

    def check_csrf(self, token: str, cookie: str | None, value: str | None) -> bool:
        """Whether a link form's CSRF value matches its link and the browser's cookie."""
        if not cookie:
            return False
        return same_secret(self.csrf_for(token, cookie), value)


def _nonce() -> str:
    return secrets.token_urlsafe(12)
