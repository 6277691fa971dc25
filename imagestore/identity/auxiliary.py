"""Auxiliary tokens: ``x-ms-authorization-auxiliary: Bearer <t1>[, Bearer <t2>[, Bearer
<t3>]]``, ARM's way for one request to carry the caller's tokens of other tenants (the
cross-tenant case: an app creating a disk in a tenant-2 subscription from a tenant-1 gallery
version sends its tenant-2 token as ``Authorization`` and its tenant-1 token here).

Rules (ARM's where documented, MicrosoftDocs ``authenticate-multi-tenant.md``; the rest
decided and written in docs/architecture.md):

- at most 3 tokens, comma-separated, each ``Bearer <token>``; an empty header is no header;
- each must verify as the primary token does (this store's key, audience, expiry): an
  expired one is 401 ``ExpiredAuthenticationToken``, a malformed, tampered or foreign-store
  one 401 ``InvalidAuthenticationToken``;
- each must be the same caller as the primary token — the same application (``appid``) for a
  service principal, the same object id for a user — in another tenant than the primary's
  and than the others' (401 ``InvalidAuthenticationToken`` otherwise);
- they are used only for linked resources in their tenant's subscriptions
  (:mod:`.linked`), never for the request's own action.

Every refusal names the header and the token's position, never echoes the token.
"""

from __future__ import annotations

from typing import Any

from ..errors import Unauthenticated
from . import tokens

HEADER = "x-ms-authorization-auxiliary"
MAX_TOKENS = 3
#: longest header accepted (three tokens of a few KiB each)
MAX_HEADER = 3 * 16384


def _bad(message: str, code: str = "InvalidAuthenticationToken") -> Unauthenticated:
    return Unauthenticated(f"Authentication failed. The '{HEADER}' header {message}", code=code)


def parse(value: str | None) -> list[str]:
    """The tokens of the header's value (empty for no header)."""
    if value is None or not value.strip():
        return []
    if len(value) > MAX_HEADER:
        raise _bad(f"is longer than {MAX_HEADER} characters.")
    parts = [p.strip() for p in value.split(",")]
    if len(parts) > MAX_TOKENS:
        raise _bad(f"carries {len(parts)} tokens; at most {MAX_TOKENS} are accepted.")
    out = []
    for i, part in enumerate(parts, start=1):
        scheme, _, tok = part.partition(" ")
        tok = tok.strip()
        if scheme.lower() != "bearer" or not tok or " " in tok:
            raise _bad(f"is not 'Bearer <token>[, Bearer <token>...]' (entry {i}).")
        out.append(tok)
    return out


def same_caller(primary: tokens.Claims, aux: tokens.Claims) -> bool:
    """Whether ``aux`` is the primary token's caller (same app, or same user)."""
    app = primary.raw.get("appid")
    if app is not None:
        return aux.raw.get("appid") == app and aux.raw.get("idtyp") == "app"
    return aux.oid == primary.oid and aux.raw.get("xms_rbac") is True


def verify(store: Any, value: str | None, primary: tokens.Claims, *,  # noqa: ANN401
           audiences: tuple[str, ...] | list[str] = tokens.AUDIENCES,
           now: float | None = None) -> tuple[tokens.Claims, ...]:
    """The verified auxiliary tokens of a request whose primary token is ``primary``."""
    out: list[tokens.Claims] = []
    seen = {primary.tid.lower()}
    for i, tok in enumerate(parse(value), start=1):
        try:
            c = tokens.verify(store, tok, audiences=audiences, now=now)
        except Unauthenticated as e:
            raise _bad(f"token {i}: {e.message}", code=e.code) from None
        if not same_caller(primary, c):
            raise _bad(f"token {i} is not for the same caller as the Authorization token "
                       f"(the same application or user, in another tenant).")
        if c.tid.lower() in seen:
            raise _bad(f"token {i} is for tenant '{c.tid}', which another token of the "
                       f"request already names.")
        seen.add(c.tid.lower())
        out.append(c)
    return tuple(out)
