"""Talking to Azure Blob Storage (or Azurite) with the official ``azure-storage-blob`` client:
account/container URLs, credentials the Azure way, and one-line errors.

**Locations.** A container is named by its URL without secrets:
``https://ACCOUNT.blob.core.windows.net/CONTAINER`` (virtual-host style) or, for Azurite and
other emulators on an IP address or ``localhost``, ``http://127.0.0.1:10000/ACCOUNT/CONTAINER``
(path style). A blob is named by ``CONTAINER_URL/BLOB``.

**Credentials**, first found wins (the variables ``az storage`` reads):

1. an explicit credential passed by the caller (``--account-key``, ``--sas-token``, or a
   connection string), which region commands keep in a 0600 file beside ``region.json``;
2. a SAS in the URL's query string (``?sv=…&sig=…``);
3. ``AZURE_STORAGE_CONNECTION_STRING`` (used when its blob endpoint is the URL's account);
4. ``AZURE_STORAGE_KEY`` (with the account name taken from the URL);
5. ``AZURE_STORAGE_SAS_TOKEN``;
6. none (anonymous: a public container, read-only).

Secrets never appear in a location string, in JSON output or in an error message.

**Errors** of the service are translated into the :mod:`imagestore.errors` hierarchy by
:func:`translate` (one line naming the URL): a malformed URL is :class:`InvalidArgument`, a
missing container or blob :class:`NotFound`, a refused key or SAS :class:`AccessDenied`, a
service that cannot be reached :class:`IOFailure`.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit, urlunsplit

from .errors import AccessDenied, Conflict, ImagestoreError, InvalidArgument, IOFailure, NotFound

CONTAINER_RE = re.compile(r"^(?=.{3,63}$)[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9]))*$")
ACCOUNT_RE = re.compile(r"^[a-z0-9]{3,24}$")
#: retries of one request (connection errors, 5xx); small so a bad host fails fast
RETRIES = 3


def is_url(text: str) -> bool:
    return isinstance(text, str) and text.lower().startswith(("https://", "http://"))


def _path_style(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


@dataclass(frozen=True)
class AccountUrl:
    """A storage account's blob endpoint, e.g. ``https://acct.blob.core.windows.net``."""

    endpoint: str  # scheme://host[:port][/account for path style], no trailing slash
    account: str
    sas: str | None = None  # a SAS token found in the query string

    def container_url(self, container: str) -> str:
        return f"{self.endpoint}/{container}"


def parse_account_url(url: str, field: str = "--storage-account-url") -> AccountUrl:
    """Parse an account endpoint; anything after the account (a path) is refused."""
    parts = _split(url, field)
    host = parts.hostname or ""
    segs = [s for s in parts.path.split("/") if s]
    if _path_style(host):
        if len(segs) != 1:
            raise InvalidArgument(
                f"{field}: '{_public(url)}' must be http(s)://HOST:PORT/ACCOUNT for an emulator"
            )
        account, endpoint_path = segs[0], "/" + segs[0]
    else:
        if segs:
            raise InvalidArgument(
                f"{field}: '{_public(url)}' must be the account endpoint only "
                f"(https://ACCOUNT.blob.core.windows.net); give the container with --container"
            )
        account, endpoint_path = host.split(".")[0], ""
    if not ACCOUNT_RE.match(account):
        raise InvalidArgument(f"{field}: '{account}' is not a storage account name "
                              f"(3-24 lowercase letters and digits)")
    endpoint = urlunsplit((parts.scheme.lower(), parts.netloc.lower(), endpoint_path, "", ""))
    return AccountUrl(endpoint, account, _sas_of(parts.query))


@dataclass(frozen=True)
class BlobUrl:
    """A blob (or, with ``blob == ""``, a container) named by URL."""

    account: AccountUrl
    container: str
    blob: str

    @property
    def container_url(self) -> str:
        return self.account.container_url(self.container)

    @property
    def url(self) -> str:
        return f"{self.container_url}/{self.blob}" if self.blob else self.container_url


def parse_blob_url(url: str, field: str, *, need_blob: bool = True) -> BlobUrl:
    """Parse ``…/CONTAINER/BLOB`` (or ``…/CONTAINER`` when ``need_blob`` is False)."""
    parts = _split(url, field)
    host = parts.hostname or ""
    segs = parts.path.split("/")[1:]
    n_account = 1 if _path_style(host) else 0
    if len(segs) < n_account + 1 or not all(segs[: n_account + 1]):
        raise InvalidArgument(f"{field}: '{_public(url)}' names no container")
    account = segs[0] if n_account else host.split(".")[0]
    container = segs[n_account]
    blob = "/".join(segs[n_account + 1:])
    if need_blob and not blob:
        raise InvalidArgument(f"{field}: '{_public(url)}' names a container, not a blob")
    check_container(container, field)
    if not ACCOUNT_RE.match(account):
        raise InvalidArgument(f"{field}: '{account}' is not a storage account name")
    endpoint_path = f"/{account}" if n_account else ""
    endpoint = urlunsplit((parts.scheme.lower(), parts.netloc.lower(), endpoint_path, "", ""))
    return BlobUrl(AccountUrl(endpoint, account, _sas_of(parts.query)), container, blob)


def check_account_of(url: str | None, account: str, field: str) -> None:
    """``account`` (a name, an endpoint URL or an ARM resource id ending in the name) must be
    the storage account of the blob ``url`` (a local path passes)."""
    if not url or not is_url(url):
        return
    bu = parse_blob_url(url, field)
    a = account.strip().rstrip("/")
    if a.lower() == bu.account.endpoint.lower() or a.split("/")[-1].lower() == bu.account.account:
        return
    if is_url(a) and parse_account_url(a, field).endpoint == bu.account.endpoint:
        return
    raise InvalidArgument(f"{field}: '{a}' is not the storage account of {bu.url} "
                          f"('{bu.account.account}')")


def check_container(name: str, field: str = "--container") -> str:
    if not CONTAINER_RE.match(name or ""):
        raise InvalidArgument(
            f"{field}: '{name}' is not a container name (3-63 lowercase letters, digits and "
            f"single hyphens, starting and ending with a letter or digit)"
        )
    return name


def _split(url: str, field: str):
    if not is_url(url):
        raise InvalidArgument(f"{field}: '{_public(url)}' is not an http(s):// URL")
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as e:
        raise InvalidArgument(f"{field}: '{_public(url)}' is not a valid URL ({e})") from None
    if not parts.hostname:
        raise InvalidArgument(f"{field}: '{_public(url)}' has no host")
    return parts


def _sas_of(query: str) -> str | None:
    return query if query and "sig" in parse_qs(query) else None


def _public(url: str) -> str:
    """``url`` without its query string (which may hold a SAS signature)."""
    return str(url).split("?", 1)[0]


# -- credentials -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Credential:
    """How to authenticate to one account. ``kind`` is ``key``, ``sas``, ``connection-string``
    or ``anonymous``; ``secret`` is never printed."""

    kind: str
    secret: str | None = None

    def __repr__(self) -> str:  # never show the secret
        return f"Credential({self.kind})"


def _cs_fields(cs: str) -> dict[str, str]:
    out = {}
    for part in cs.split(";"):
        if "=" in part:
            k, v = part.split("=", 1)
            out[k.strip().lower()] = v.strip()
    return out


def connection_string_matches(cs: str, account: AccountUrl) -> bool:
    f = _cs_fields(cs)
    ep = f.get("blobendpoint")
    if ep:
        return ep.rstrip("/").lower() == account.endpoint.lower()
    return f.get("accountname", "").lower() == account.account


def resolve_credential(account: AccountUrl, explicit: Credential | None = None) -> Credential:
    if explicit is not None and explicit.kind != "anonymous":
        return explicit
    if account.sas:
        return Credential("sas", account.sas)
    cs = os.environ.get("AZURE_STORAGE_CONNECTION_STRING")
    if cs and connection_string_matches(cs, account):
        return Credential("connection-string", cs)
    key = os.environ.get("AZURE_STORAGE_KEY")
    if key:
        return Credential("key", key)
    sas = os.environ.get("AZURE_STORAGE_SAS_TOKEN")
    if sas:
        return Credential("sas", sas.lstrip("?"))
    return Credential("anonymous")


def retry_policy():
    """Retry a failed request (connection error, 5xx, throttling) RETRIES times, about a
    second apart: the SDK's default (15 s, then 45 s, …) makes a mistyped host hang a minute."""
    from azure.storage.blob import LinearRetry

    return LinearRetry(backoff=1, random_jitter_range=0.5, retry_total=RETRIES)


def container_client(account: AccountUrl, container: str, cred: Credential, **kw):
    """An ``azure.storage.blob.ContainerClient`` for ``container`` with ``cred``."""
    from azure.storage.blob import ContainerClient

    opts = {"retry_policy": retry_policy(), "connection_timeout": 10, "read_timeout": 60, **kw}
    if cred.kind == "connection-string":
        return ContainerClient.from_connection_string(cred.secret, container, **opts)
    if cred.kind == "key":
        c = {"account_name": account.account, "account_key": cred.secret}
    elif cred.kind == "sas":
        c = cred.secret
    else:
        c = None
    return ContainerClient(account.endpoint, container, credential=c, **opts)


def blob_client(url: BlobUrl, cred: Credential, **kw):
    return container_client(url.account, url.container, cred, **kw).get_blob_client(url.blob)


# -- errors ----------------------------------------------------------------------------------


def translate(err: Exception, what: str) -> ImagestoreError:
    """One-line imagestore error for an azure-core exception about ``what`` (a URL)."""
    from azure.core.exceptions import (
        ClientAuthenticationError,
        HttpResponseError,
        ResourceExistsError,
        ResourceNotFoundError,
        ServiceRequestError,
        ServiceResponseError,
    )

    what = _public(what)
    code = getattr(err, "error_code", None) or ""
    status = getattr(err, "status_code", None)
    if isinstance(err, ClientAuthenticationError) or status == 403 or "Authentication" in code \
            or "Authorization" in code:
        return AccessDenied(f"{what}: access denied by the storage service "
                            f"({code or status or 'authentication failed'}): check the account "
                            f"key, SAS or connection string")
    if isinstance(err, ResourceNotFoundError) or status == 404:
        if code == "ContainerNotFound":
            return NotFound(f"{what}: container not found")
        return NotFound(f"{what}: {'blob' if code == 'BlobNotFound' else 'resource'} not found")
    if isinstance(err, ResourceExistsError) or status == 409:
        return Conflict(f"{what}: {code or 'conflict'}")
    if isinstance(err, (ServiceRequestError, ServiceResponseError)):
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        reason = re.sub(r"<[^>]*>", "", reason)[:160]
        return IOFailure(f"{what}: cannot reach the storage service ({reason})")
    if isinstance(err, HttpResponseError):
        msg = (getattr(err, "reason", None) or str(err).splitlines()[0])[:160]
        if status == 400:
            return InvalidArgument(f"{what}: the storage service refused the request "
                                   f"({code or msg})")
        return IOFailure(f"{what}: storage service error {status} ({code or msg})")
    if isinstance(err, ValueError):  # the SDK's own argument checks (a malformed key)
        return InvalidArgument(f"{what}: {str(err).splitlines()[0][:160]}")
    return IOFailure(f"{what}: {type(err).__name__}: {str(err).splitlines()[0][:160]}")


@contextmanager
def service_errors(what: str) -> Iterator[None]:
    """Translate azure-core (and credential) errors raised inside into imagestore errors."""
    from azure.core.exceptions import AzureError

    try:
        yield
    except ImagestoreError:
        raise
    except AzureError as e:
        raise translate(e, what) from None
    except ValueError as e:
        if "key" in str(e).lower() or "credential" in str(e).lower() or "base64" in str(e).lower() \
                or "padding" in str(e).lower():
            raise AccessDenied(f"{_public(what)}: the account key is not valid base64") from None
        raise
