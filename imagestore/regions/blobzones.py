"""Zones of a blob region: containers in storage accounts, named by URL.

A **blob region** has zones that are containers (``https://ACCOUNT.blob.core.windows.net/C`` or
``http://127.0.0.1:PORT/ACCOUNT/C`` for Azurite) instead of directories. Copy slot ``k`` of a
zone is the zone's container itself for ``k == 0`` and the container ``C-copyK`` in the same
account for ``k > 0`` (created by imagestore on first use): *a copy is a container*, so damage
to one copy never touches another. ``Standard_ZRS`` keeps each copy in a distinct storage
account (zones are picked one per account).

Credentials are never written to ``region.json`` or printed: a key, SAS or connection string
given to ``region create`` is kept in ``regions/<name>/credentials.json`` (mode 0600, like the
Azure CLI's own credential cache); environment variables work too (``store/azblob.py``).
This module keeps, per process, which region (and so which cache directory and credential)
each zone URL belongs to: the registry attaches every blob region it reads.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass

from ..azblob import (
    Credential,
    container_client,
    parse_blob_url,
    resolve_credential,
    retry_policy,
    service_errors,
)
from ..errors import InvalidArgument, NotFound
from ..fsutil import atomic_write
from ..store.container import ContainerStore, cache_name
from ..store.layout import CasConfig

STORAGE = "azure-blob"
CREDENTIALS_FILE = "credentials.json"
_COPY_RE = re.compile(r"^(.*)-copy([1-9][0-9]*)$")


@dataclass(frozen=True)
class Attachment:
    region_dir: str
    secrets: dict[str, Credential]  # account endpoint -> credential


_ATTACHED: dict[str, Attachment] = {}


def is_blob(loc: str) -> bool:
    return isinstance(loc, str) and loc.lower().startswith(("https://", "http://"))


def slot_url(zone: str, k: int) -> str:
    if k == 0:
        return zone
    url = f"{zone}-copy{k}"
    parse_blob_url(url, "--copies", need_blob=False)  # the container name must stay valid
    return url


def zone_of(url: str) -> tuple[str, int]:
    """(zone URL, slot number) of a slot URL."""
    if url in _ATTACHED:
        return url, 0
    m = _COPY_RE.match(url)
    if m and m.group(1) in _ATTACHED:
        return m.group(1), int(m.group(2))
    return url, 0


def load_secrets(region_dir: str) -> dict[str, Credential]:
    try:
        with open(os.path.join(region_dir, CREDENTIALS_FILE), encoding="utf-8") as f:
            raw = json.load(f)
    except (OSError, ValueError):
        return {}
    return {ep: Credential(c["kind"], c.get("secret")) for ep, c in raw.items()
            if isinstance(c, dict) and "kind" in c}


def save_secrets(region_dir: str, secrets: dict[str, Credential]) -> None:
    doc = {ep: {"kind": c.kind, "secret": c.secret} for ep, c in secrets.items()
           if c.kind != "anonymous"}
    if doc:
        atomic_write(os.path.join(region_dir, CREDENTIALS_FILE),
                     (json.dumps(doc, indent=2) + "\n").encode(), mode=0o600)


def attach(region_dir: str, zones: tuple[str, ...] | list[str],
           secrets: dict[str, Credential] | None = None) -> None:
    att = Attachment(region_dir, secrets if secrets is not None else load_secrets(region_dir))
    for z in zones:
        _ATTACHED[z] = att


def _attachment(url: str) -> tuple[Attachment, int]:
    zone, k = zone_of(url)
    att = _ATTACHED.get(zone)
    if att is None:
        raise NotFound(f"{url}: not a zone of any registered blob region")
    return att, k


def credential_for(url: str) -> Credential:
    att, _k = _attachment(url)
    bu = parse_blob_url(url, "zone", need_blob=False)
    return resolve_credential(bu.account, att.secrets.get(bu.account.endpoint))


def open_blob_slot(url: str, cfg: CasConfig, *, create: bool = True) -> ContainerStore:
    att, k = _attachment(url)
    bu = parse_blob_url(url, "zone", need_blob=False)
    cred = resolve_credential(bu.account, att.secrets.get(bu.account.endpoint))
    cache = os.path.join(att.region_dir, "cache", cache_name(url))
    return ContainerStore.attach(bu.account, bu.container, cred, cache, cfg, create=create,
                                 make_container=k > 0)


def zone_present(zone: str) -> bool:
    """True when the zone's container holds a blob store (``cas.json``)."""
    bu = parse_blob_url(zone, "zone", need_blob=False)
    c = container_client(bu.account, bu.container, credential_for(zone))
    with service_errors(zone):
        from azure.core.exceptions import ResourceNotFoundError

        try:
            return c.get_blob_client("cas.json").exists()
        except ResourceNotFoundError:
            return False


def copy_slots(zone: str) -> list[tuple[int, str]]:
    """(k, URL) of the copy containers ``C-copyK`` of a zone that hold a blob store."""
    bu = parse_blob_url(zone, "zone", need_blob=False)
    cred = credential_for(zone)
    from azure.storage.blob import BlobServiceClient

    if cred.kind == "connection-string":
        svc = BlobServiceClient.from_connection_string(cred.secret, retry_policy=retry_policy())
    else:
        c = ({"account_name": bu.account.account, "account_key": cred.secret}
             if cred.kind == "key" else cred.secret if cred.kind == "sas" else None)
        svc = BlobServiceClient(bu.account.endpoint, credential=c, retry_policy=retry_policy())
    out = []
    with service_errors(bu.account.endpoint):
        for c in svc.list_containers(name_starts_with=f"{bu.container}-copy"):
            m = _COPY_RE.match(c.name)
            if m and m.group(1) == bu.container:
                url = bu.account.container_url(c.name)
                if svc.get_container_client(c.name).get_blob_client("cas.json").exists():
                    out.append((int(m.group(2)), url))
    return sorted(out)


def account_of(zone: str) -> str:
    return parse_blob_url(zone, "zone", need_blob=False).account.endpoint


def delete_data(zone: str) -> None:
    """Remove imagestore's blobs from a zone's container and its copy containers (which
    imagestore created; the zone's own container is the user's and stays)."""
    for k, url in [(0, zone), *copy_slots(zone)]:
        bu = parse_blob_url(url, "zone", need_blob=False)
        c = container_client(bu.account, bu.container, credential_for(zone))
        with service_errors(url):
            if k > 0:
                c.delete_container()
                continue
            for b in list(c.list_blobs()):
                if b.name == "cas.json" or b.name.startswith(("packs/", "manifests/")):
                    c.delete_blob(b.name)


def check_explicit(account_key: str | None, sas_token: str | None,
                   connection_string: str | None) -> Credential | None:
    given = [x for x in (account_key, sas_token, connection_string) if x]
    if len(given) > 1:
        raise InvalidArgument("--account-key, --sas-token and --connection-string: give one")
    if account_key:
        return Credential("key", account_key)
    if sas_token:
        return Credential("sas", sas_token.lstrip("?"))
    if connection_string:
        return Credential("connection-string", connection_string)
    return None
