"""Bearer tokens: JWTs signed by a key kept in the store.

``issue(store, subject)`` makes a token, ``verify(store, token)`` checks one and returns its
:class:`Claims`. Both the CLI (``imagestore token create``), the REST server (every request)
and the OAuth2 token endpoint use these two functions and nothing else.

**Key**: 32 random bytes in ``<store>/identity/token-signing.key`` (mode 0600, directory
0700), created on first use atomically — written to a temp file, fsynced, then published with
``link()`` so that two processes creating it at once agree on one key (the loser reads the
winner's). HS256 (HMAC-SHA256): only this store can issue or check its tokens; a token of
another store fails the signature check (its ``kid``, the key's fingerprint, says so).

**Claims** (Entra ID access-token names): ``oid`` (principal object id), ``tid`` (tenant),
``sub``, ``name`` (the assignee as given), ``xms_rbac`` (true on tokens of directory
principals: RBAC applies; absent on the store owner's tokens, see
:mod:`imagestore.identity.authorize`), ``aud`` (``https://management.azure.com/`` by
default: what ARM clients ask a token for), ``iss``, ``iat``, ``nbf``, ``exp``.
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import jwt

from ..errors import InvalidArgument, Unauthenticated, from_oserror
from . import keyfile
from .account import TENANT

ALGORITHM = "HS256"
KEY_DIR = "identity"
KEY_FILE = "token-signing.key"
KEY_BYTES = 32
#: the audience ARM clients request (scope ``https://management.azure.com/.default``)
DEFAULT_AUDIENCE = "https://management.azure.com/"
#: audiences a token may carry to be accepted by the server: ARM's, with and without the
#: trailing slash, and the older ``management.core.windows.net`` that az still uses
AUDIENCES = (
    "https://management.azure.com/", "https://management.azure.com",
    "https://management.core.windows.net/", "https://management.core.windows.net",
)
DEFAULT_EXPIRES_IN = 3600
MAX_EXPIRES_IN = 366 * 24 * 3600
#: clock skew tolerated on exp/nbf/iat (seconds)
LEEWAY = 30
_OID_NAMESPACE = uuid.UUID("5c2a6d4e-9a57-4f39-9f53-6b0f1c1a7e11")


@dataclass(frozen=True)
class Claims:
    """A verified token's claims."""

    oid: str
    tid: str
    sub: str
    name: str
    aud: str
    iat: int
    exp: int
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    #: the verified auxiliary tokens of the request (``x-ms-authorization-auxiliary``,
    #: :mod:`.auxiliary`), empty unless the server found some
    aux: tuple[Claims, ...] = field(default=(), repr=False, compare=False)


def key_path(store: Any) -> str:
    """Where the store's signing key lives."""
    return keyfile.key_path(store, KEY_FILE)


#: path -> (inode, mtime_ns, key): a server verifies every request; the key file is read again
#: only when it is replaced
_KEYS: dict[str, tuple[int, int, bytes]] = {}


def _read_key(path: str) -> bytes:
    st = os.stat(path)
    hit = _KEYS.get(path)
    if hit is not None and hit[:2] == (st.st_ino, st.st_mtime_ns):
        return hit[2]
    with open(path, "rb") as f:
        key = f.read()
        st = os.fstat(f.fileno())
    if len(key) != KEY_BYTES:
        raise Unauthenticated(f"{path}: token signing key is damaged ({len(key)} bytes, "
                              f"expected {KEY_BYTES})", code="InvalidAuthenticationToken")
    _KEYS[path] = (st.st_ino, st.st_mtime_ns, key)
    return key


def signing_key(store: Any, *, create: bool = True) -> bytes:
    """The store's signing key, created on first use (atomically, mode 0600)."""
    path = key_path(store)
    try:
        return _read_key(path)
    except FileNotFoundError:
        if not create:
            raise Unauthenticated("this store has issued no tokens yet (no signing key)",
                                  code="InvalidAuthenticationToken") from None
    except OSError as e:
        raise from_oserror(e, path) from None
    try:
        keyfile.create_new(path, KEY_BYTES)
        return _read_key(path)
    except OSError as e:
        raise from_oserror(e, path) from None


def key_id(key: bytes) -> str:
    """The key's fingerprint (the JWT header's ``kid``)."""
    return hashlib.sha256(b"imagestore-token-key:" + key).hexdigest()[:16]


def object_id(subject: str, tenant: str = TENANT) -> str:
    """The principal's object id: the subject itself when it is a GUID, else a stable
    GUID derived from tenant and subject."""
    try:
        return str(uuid.UUID(subject))
    except ValueError:
        return str(uuid.uuid5(_OID_NAMESPACE, f"{tenant}/{subject}"))


def issuer(tenant: str) -> str:
    """The ``iss`` claim: Entra ID's v1 issuer form for the tenant."""
    return f"https://sts.imagestore.local/{tenant}/"


def issue(store: Any, subject: str, tenant: str = TENANT, expires_in: int = DEFAULT_EXPIRES_IN,
          *, audience: str = DEFAULT_AUDIENCE, extra: dict[str, Any] | None = None,
          now: float | None = None) -> str:
    """A signed token for ``subject`` (a user or service principal name, or an object id).
    ``expires_in`` seconds (1 .. one year; a negative value is allowed only through ``now``
    for tests of expiry)."""
    if not subject or not isinstance(subject, str):
        raise InvalidArgument("assignee: must be a non-empty principal name", target="assignee")
    if not isinstance(expires_in, int) or not 1 <= expires_in <= MAX_EXPIRES_IN:
        raise InvalidArgument(f"expiresIn: {expires_in!r} must be 1..{MAX_EXPIRES_IN} seconds",
                              target="expiresIn")
    key = signing_key(store)
    t = int(now if now is not None else time.time())
    claims: dict[str, Any] = {
        "aud": audience, "iss": issuer(tenant), "iat": t, "nbf": t, "exp": t + expires_in,
        "oid": object_id(subject, tenant), "tid": tenant, "sub": object_id(subject, tenant),
        "name": subject, "ver": "1.0",
    }
    claims.update(extra or {})
    return jwt.encode(claims, key, algorithm=ALGORITHM, headers={"kid": key_id(key)})


def verify(store: Any, token: str, *, audiences: tuple[str, ...] | list[str] = AUDIENCES,
           now: float | None = None) -> Claims:
    """Check ``token`` (signature by this store's key, expiry, audience, required claims);
    :class:`~imagestore.errors.Unauthenticated` with ARM's code when it fails."""
    if not token or not isinstance(token, str):
        raise Unauthenticated("the access token is missing", code="AuthenticationFailed")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise Unauthenticated("the access token is malformed (not a JWT)",
                              code="InvalidAuthenticationToken") from None
    if header.get("alg") != ALGORITHM:
        raise Unauthenticated(f"the access token's algorithm {header.get('alg')!r} is not "
                              f"accepted", code="InvalidAuthenticationToken")
    key = signing_key(store, create=False)
    if header.get("kid") not in (None, key_id(key)):
        raise Unauthenticated("the access token was signed by another store's key",
                              code="InvalidAuthenticationToken")
    options = {"require": ["exp", "iat", "aud", "oid", "tid"]}
    try:
        if now is None:
            c = jwt.decode(token, key, algorithms=[ALGORITHM], audience=list(audiences),
                           leeway=LEEWAY, options=options)
        else:  # verify as of ``now`` (tests): check exp/nbf ourselves
            c = jwt.decode(token, key, algorithms=[ALGORITHM], audience=list(audiences),
                           options={**options, "verify_exp": False, "verify_nbf": False,
                                    "verify_iat": False})
            if c["exp"] + LEEWAY < now:
                raise jwt.ExpiredSignatureError("expired")
    except jwt.ExpiredSignatureError:
        raise Unauthenticated("the access token has expired",
                              code="ExpiredAuthenticationToken") from None
    except jwt.InvalidAudienceError:
        raise Unauthenticated("the access token's audience is not accepted by this server",
                              code="InvalidAuthenticationTokenAudience") from None
    except jwt.InvalidSignatureError:
        raise Unauthenticated("the access token's signature is invalid (tampered, or "
                              "signed by another store)",
                              code="InvalidAuthenticationToken") from None
    except jwt.PyJWTError as e:
        raise Unauthenticated(f"the access token is invalid: {e}",
                              code="InvalidAuthenticationToken") from None
    return Claims(oid=str(c["oid"]), tid=str(c["tid"]), sub=str(c.get("sub", c["oid"])),
                  name=str(c.get("name", c["oid"])), aud=str(c["aud"]), iat=int(c["iat"]),
                  exp=int(c["exp"]), raw=c)
