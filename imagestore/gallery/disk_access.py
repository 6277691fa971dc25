"""Export grants of disks (``Disks - Grant Access`` / ``Revoke Access``): while a disk has an
unexpired grant it is ``diskState: ActiveSAS`` and its bytes can be read, as a fixed VHD,
through the grant's SAS URL (signed by :mod:`imagestore.identity.sas`, served by the REST
API's export routes).

A grant is kept in the disk's stored properties under ``_access`` (``id``, ``access``,
``expires``, ``granted``; never shown in the JSON), so it survives restarts and needs no
schema of its own. A disk has at most one grant: a new grant replaces the previous one (its
URL stops working), ``revoke`` removes it, and one past its expiry is as good as none.
Deleting a disk with an active grant is refused, as a disk being exported is in use.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ..errors import Conflict, InvalidArgument, OperationNotAllowed
from ..formats import open_disk
from ..formats.vhd_export import FixedVhdView
from . import arm_disk, ids, validate
from .arm_disk import ACCESS_KEY, parse_time
from .repository import DiskRow, Repository

ACCESS_LEVELS = ("None", "Read", "Write")
FILE_FORMATS = ("VHD", "VHDX")
#: ``durationInSeconds`` is an int32 in the REST API
MAX_DURATION = 2**31 - 1


@dataclass(frozen=True)
class Grant:
    """One disk's export grant."""

    id: str
    disk_id: str
    access: str
    expires: datetime
    granted: datetime

    def active(self, now: datetime | None = None) -> bool:
        """Not expired yet."""
        return (now or datetime.now(UTC)) < self.expires


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def grant_of(row: DiskRow) -> Grant | None:
    """The grant recorded on a disk row (expired or not), or None."""
    rec = row.properties.get(ACCESS_KEY)
    if not rec:
        return None
    return Grant(rec["id"], ids.disk_id(row.subscription, row.rg, row.name), rec["access"],
                 parse_time(rec["expires"]), parse_time(rec["granted"]))


class DiskAccess:
    """Grant, revoke and look up export grants over the repository."""

    def __init__(self, repo: Repository) -> None:
        self.repo = repo

    def grant(self, rg: str, name: str, grant_id: str, *, access: str = "Read",
              duration_in_seconds: int, file_format: str | None = None,
              now: datetime | None = None) -> Grant:
        """Record a grant of ``access`` for ``duration_in_seconds`` on the disk (replacing any
        earlier one). ``grant_id`` is a fresh random id (:func:`imagestore.identity.sas.new_grant_id`)."""
        access = validate.enum("access", access, ACCESS_LEVELS)
        if access == "None":
            raise InvalidArgument("access: 'None' grants nothing; use 'Read'", target="access")
        if access == "Write":
            raise OperationNotAllowed(
                f"access: 'Write' is for uploading into a disk created with createOption "
                f"Upload, which imagestore does not have; disk '{name}' can be granted 'Read'",
                target="access")
        if (isinstance(duration_in_seconds, bool) or not isinstance(duration_in_seconds, int)
                or not 1 <= duration_in_seconds <= MAX_DURATION):
            raise InvalidArgument(f"durationInSeconds: {duration_in_seconds!r} must be an "
                                  f"integer from 1 to {MAX_DURATION}",
                                  target="durationInSeconds")
        if file_format is not None:
            file_format = validate.enum("fileFormat", file_format, FILE_FORMATS)
            if file_format == "VHDX":
                raise InvalidArgument("fileFormat: imagestore exports disks as VHD only (the "
                                      "format Azure exports disks in)", target="fileFormat")
        now = now or datetime.now(UTC)
        expires = now.replace(microsecond=0) + timedelta(seconds=duration_in_seconds)
        with self.repo.transaction():
            row = self.repo.disk(rg, name)
            props = row.properties
            if props.get("diskState") not in (None, "Unattached"):
                raise Conflict(f"disk '{name}' is {props['diskState']}; only an unattached "
                               f"disk can be exported", target="diskName")
            props[ACCESS_KEY] = {"id": grant_id, "access": access, "expires": _iso(expires),
                                 "granted": _iso(now)}
            self.repo.update_disk_props(row.id, props)
        return Grant(grant_id, ids.disk_id(row.subscription, row.rg, row.name), access, expires,
                     now.replace(microsecond=0))

    def revoke(self, rg: str, name: str) -> bool:
        """Remove the disk's grant (its URL stops working at once). True when there was one."""
        with self.repo.transaction():
            row = self.repo.disk(rg, name)
            props = row.properties
            had = props.pop(ACCESS_KEY, None) is not None
            if had:
                self.repo.update_disk_props(row.id, props)
        return had

    def holder(self, grant_id: str) -> tuple[DiskRow, Grant] | None:
        """The disk that holds grant ``grant_id`` now (active or expired), or None (revoked,
        replaced, or never granted)."""
        for row in self.repo.disks_with_grant(grant_id):
            g = grant_of(row)
            if g is not None and g.id == grant_id:
                return row, g
        return None



def check_deletable(row: DiskRow, now: datetime | None = None) -> None:
    """Refuse to delete a disk that is being exported (an active grant)."""
    g = grant_of(row)
    if g is not None and g.active(now):
        raise OperationNotAllowed(
            f"disk '{row.name}' has active export access (ActiveSAS) until "
            f"{_iso(g.expires)}; revoke it first (endGetAccess / disk revoke-access)",
            target="diskName")


def export_view(row: DiskRow) -> FixedVhdView:
    """The disk's file opened as the fixed VHD Azure exports: its bytes and a footer made of
    the disk's ``uniqueId`` and creation time (the same on every request). The caller closes
    ``view.reader``."""
    props = arm_disk.disk_json(row)["properties"]
    reader = open_disk(row.path, source_format="raw" if row.format == "raw" else "auto")
    try:
        created = props.get("timeCreated") or row.created
        stamp = int(datetime.fromisoformat(created.replace("Z", "+00:00")).timestamp())
        return FixedVhdView(reader, unique_id=props["uniqueId"], timestamp=stamp)
    except BaseException:
        reader.close()
        raise
