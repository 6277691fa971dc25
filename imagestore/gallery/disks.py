"""Disks (``Microsoft.Compute/disks``) created from image versions: each one a new,
independent disk file written from the version's manifest, registered as a resource.

``location`` reads the region's copies of the version with fail-over: every chunk comes from
the first copy that has a good one (the version's copies in placement order, then any other
slot of the region). A shallow version's disk is streamed from its source file after the
fingerprint check, holding one of the version's deployment slots (see :mod:`.shallow`)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager

from ..errors import Conflict, InvalidArgument, NotFound, OperationNotAllowed, StoreBusy
from ..formats import WRITE_FORMATS, new_disk_file, open_disk
from ..home import Home
from ..regions.replicas import materialize_from_copies
from ..store.lock import StoreLock
from . import arm_disk, disk_access, ids, resources, shallow, shared_views, sources, validate
from . import linked as linked_mod
from .placement import Placement
from .progress import Observer, TaskKind, TaskProgress
from .repository import ReplicationState, Repository, VersionDisk, VersionRow
from .shared_views import Viewer
from .validate import iso, now_utc
from .versions import DEFAULT_LOCATION, Versions

_REF = "properties.creationData.galleryImageReference"

_SOURCE = "properties.creationData.sourceResourceId"

EXTENSIONS = {"raw": "raw", "vhd": "vhd", "vhd-fixed": "vhd", "vhdx": "vhdx", "vhdx-fixed": "vhdx",
              "qcow2": "qcow2"}


class Disks:
    """The disk operations over the repository."""

    def __init__(self, home: Home, repo: Repository, placement: Placement,
                 versions: Versions) -> None:
        self.home = home
        self.repo = repo
        self.placement = placement
        self.versions = versions

    def disks_dir(self) -> str:
        """The store's own directory of disk files (the default ``--path``)."""
        return os.path.join(self.home.root, "disks")

    def _lock_path(self) -> str:
        return os.path.join(self.home.root, "disks.lock")  # not in disks/: users list that

    @contextmanager
    def creating(self) -> Iterator[None]:
        """Held (shared ``<store>/disks.lock``) by every creation of a file in :meth:`disks_dir` from
        before its first write until its disk row is committed: who holds the exclusive lock
        knows that a file there no row records was left by a killed creation."""
        with StoreLock(self._lock_path(), exclusive=False):
            yield

    def _reclaim_default_path(self, name: str, fmt: str) -> None:
        """Remove the file at a new disk's default path when no disk row records it and no
        creation is under way (a kill between publishing the file and committing its row)."""
        ext = EXTENSIONS.get((fmt or "raw").lower())
        if ext is None or "/" in name or name.startswith("."):
            return
        path = os.path.join(self.disks_dir(), f"{name}.{ext}")
        if not os.path.isfile(path) or os.path.islink(path):
            return
        try:
            with StoreLock(self._lock_path(), exclusive=True, timeout=0):
                if os.path.isfile(path) and not self.repo.disk_at_path(path):
                    os.unlink(path)
        except StoreBusy:
            pass  # another creation is under way: the file may be its; the Conflict stands

    def create(
        self, rg: str, name: str, reference: str | None = None, *, lun: int | None = None,
        source: str | None = None,
        fmt: str = "raw", path: str | None = None, location: str | None = None,
        tags: dict | None = None, observer: Observer | None = None, threads: int = 2,
        linked: bool = False, viewer: Viewer | None = None,
    ) -> dict:
        """Write a new disk file and register it (:meth:`_create`). Under :meth:`creating`;
        a file a killed creation left at the default path is removed first."""
        validate.disk_name(name)
        if path is None:
            self._reclaim_default_path(name, fmt)
        with self.creating():
            return self._create(rg, name, reference, lun=lun, source=source, fmt=fmt,
                                path=path, location=location, tags=tags, observer=observer,
                                threads=threads, linked=linked, viewer=viewer)

    def _create(
        self, rg: str, name: str, reference: str | None = None, *, lun: int | None = None,
        source: str | None = None,
        fmt: str = "raw", path: str | None = None, location: str | None = None,
        tags: dict | None = None, observer: Observer | None = None, threads: int = 2,
        linked: bool = False, viewer: Viewer | None = None,
    ) -> dict:
        """Write a new disk file from an image version (``reference``: a version id, or a
        definition id meaning its latest version in ``location``) and register it. ``lun``
        picks a data disk (default the OS disk). Or copy a snapshot or another disk
        (``source``: name or ARM id; ``creationData.createOption`` Copy). ``linked`` (qcow2,
        vhdx; a version only) writes a small overlay over the version's shared read-only
        parent instead (:mod:`.linked`). ``reference`` may also be a consumer's
        ``/SharedGalleries/…/Versions/{v|latest}`` or ``/CommunityGalleries/…`` id, resolved
        as ``viewer`` sees it (the share is the authorization; :mod:`.shared_views`).
        Returns the disk's JSON."""
        validate.resource_group(rg)
        validate.disk_name(name)
        fmt = validate.enum("properties.localStorage.format", fmt or "raw", WRITE_FORMATS)
        if (reference is None) == (source is None):
            raise InvalidArgument(
                f"{_SOURCE}: give exactly one source: a gallery image version "
                f"(creationData.galleryImageReference.id) or a snapshot or disk to copy "
                f"(creationData.sourceResourceId)", target=_SOURCE)
        if linked:
            linked_mod.check_format(fmt)
            if source is not None:
                raise InvalidArgument(
                    f"{_SOURCE}: a linked disk is made from a gallery image version, not a "
                    f"copy of a snapshot or disk", target=_SOURCE)
        if source is not None:
            if lun is not None:
                raise InvalidArgument(
                    "properties.creationData.galleryImageReference.lun: only with a gallery "
                    "image reference", target="properties.creationData.galleryImageReference.lun")
            return self._create_copy(rg, name, source, fmt=fmt, path=path, location=location,
                                     tags=tags, observer=observer, threads=threads)
        location = self.placement.require_region(location or DEFAULT_LOCATION)
        if lun is not None and (isinstance(lun, bool) or not 0 <= lun <= validate.MAX_LUN):
            raise InvalidArgument(
                f"properties.creationData.galleryImageReference.lun: '{lun}' must be an integer from 0 to "
                f"{validate.MAX_LUN}", target="properties.creationData.galleryImageReference.lun")
        if self.repo.find_disk(rg, name):
            raise Conflict(f"disk '{name}' already exists in resource group '{rg}'",
                           target="diskName")
        if shared_views.is_shared_reference(reference):
            if viewer is None:
                raise InvalidArgument(f"{_REF}: a shared or community image needs the "
                                      f"consumer's subscription and tenant", target=_REF)
            vrow, vid = shared_views.ConsumerViews(self.repo).resolve(reference, viewer,
                                                                      location, field=_REF)
        else:
            vrow = self.versions.resolve(reference, rg, location)
            vid = ids.version_id(vrow.subscription, vrow.rg, vrow.gallery, vrow.image, vrow.name)
        reg = self.repo.region_of(vrow.id, location)
        if reg is None:
            raise NotFound(f"location: image version '{vid}' is not replicated to region "
                           f"'{location}'", target="location")
        if reg.state != ReplicationState.COMPLETED:
            raise Conflict(f"location: image version '{vid}' is not available in region "
                           f"'{location}' yet (replication {reg.state})", target="location")
        drow = self._disk_image(vrow, vid, lun)
        if drow.shallow_path and _is_url(path):
            raise InvalidArgument("properties.localStorage.path: a Shallow version's disk is "
                                  "created as a local file, not in blob storage",
                                  target="properties.localStorage.path")
        path = self._new_path(name, path, fmt)
        if linked:
            return self._create_linked(rg, name, vrow, vid, drow, lun, reference, path, fmt,
                                       location, tags, observer, threads)
        task = TaskProgress(observer, TaskKind.DISK, name)
        try:
            if drow.shallow_path:
                virtual_size, written = self._from_shallow(vrow, drow, path, fmt, task)
            else:
                res = self._from_copies(vrow, location, drow.digest, path, fmt, threads, task)
                virtual_size, written = res.virtual_size, res.written_bytes
        finally:
            task.close()
        props = self._properties(vrow, vid, drow, lun, reference, path, fmt, virtual_size,
                                 written)
        return self._register(rg, name, location, tags, props, path, fmt)

    def _new_path(self, name: str, path: str | None, fmt: str) -> str:
        if path is None:
            path = os.path.join(self.home.root, "disks", f"{name}.{EXTENSIONS[fmt]}")
            os.makedirs(os.path.dirname(path), exist_ok=True)
        if _is_url(path):  # a fixed VHD in a page blob; an existing blob is refused by the writer
            from ..azblob import parse_blob_url

            return parse_blob_url(path, "properties.localStorage.path").url
        path = os.path.abspath(os.path.expanduser(path))
        if os.path.lexists(path):
            raise Conflict(f"properties.localStorage.path: {path} already exists", target="properties.localStorage.path")
        return path

    def _register(self, rg: str, name: str, location: str, tags: dict | None, props: dict,
                  path: str, fmt: str, parent_pk: int | None = None) -> dict:
        """Insert the disk row for the file just written at ``path`` (removed again when the
        row cannot be inserted); ``parent_pk``: the linked parent it pins, in the same
        transaction."""
        try:
            with self.repo.transaction():
                if self.repo.find_disk(rg, name):
                    raise Conflict(f"disk '{name}' already exists in resource group '{rg}'",
                                   target="diskName")
                self.repo.insert_disk(rg, name, location, tags or {}, props, path, fmt)
                if parent_pk is not None:
                    self.repo.link_disk(self.repo.disk(rg, name).id, parent_pk)
        except BaseException:
            try:
                if _is_url(path):
                    _delete_blob(path)
                else:
                    os.unlink(path)
            except FileNotFoundError:
                pass
            raise
        return self.show(rg, name)

    def _create_linked(self, rg: str, name: str, vrow: VersionRow, vid: str,
                       drow: VersionDisk, lun: int | None, reference: str, path: str,
                       fmt: str, location: str, tags: dict | None,
                       observer: Observer | None, threads: int) -> dict:
        """A linked disk: the version disk's parent in ``location`` (made once), an overlay
        over it at ``path``, and the disk row pinning the parent."""
        task = TaskProgress(observer, TaskKind.DISK, name)

        def make(p: str, pfmt: str) -> None:
            if drow.shallow_path:
                self._from_shallow(vrow, drow, p, pfmt, task)
            else:
                self._materialize_parent(vrow, location, drow.digest, p, pfmt, threads, task)

        key = drow.digest or f"shallow-{vrow.id}-{drow.lun}"
        try:
            with linked_mod._lock(self.home.root):
                parent = linked_mod.ensure_parent(self.repo, self.home.root, location, key,
                                                  fmt, make)
                size = linked_mod.write_overlay(parent, path, fmt, parent.virtual_size)
                props = self._properties(vrow, vid, drow, lun, reference, path, fmt,
                                         parent.virtual_size, 0)
                props["localStorage"]["linked"] = {
                    "parentPath": parent.path, "parentFormat": parent.format,
                    "parentDigest": drow.digest or None, "fileBytes": size}
                return self._register(rg, name, location, tags, props, path, fmt,
                                      parent_pk=parent.id)
        finally:
            task.close()

    def _materialize_parent(self, vrow: VersionRow, location: str, digest: str, path: str,
                            fmt: str, threads: int, task: TaskProgress) -> None:
        """A linked parent from the region's copies: with one copy straight from its store
        (chunks stored uncompressed are then reflinked where the filesystem can), else with
        fail-over across the copies."""
        from ..store.materialize import materialize

        pp = vrow.properties["publishingProfile"]
        tr = next((t for t in pp["targetRegions"] if t["name"].lower() == location.lower()), {})
        paths = self.placement.read_slots(location, int(tr.get("regionalReplicaCount") or 1),
                                          tr.get("storageAccountType") or "Standard_LRS")
        slots = self.placement.open_slots_holding(paths, digest)
        try:
            if not slots:
                raise NotFound(f"location: no copy of manifest {digest} in region "
                               f"'{location}'", target="location")
            if len(slots) == 1 and hasattr(slots[0], "payload_fd"):
                materialize(slots[0], digest, path, fmt=fmt, threads=threads, progress=task)
            else:
                materialize_from_copies(slots, digest, path, fmt=fmt, overwrite=False,
                                        threads=threads, progress=task)
        finally:
            for s in slots:
                s.close()

    def flatten(self, rg: str, name: str) -> dict:
        """Make a linked disk independent: its file rewritten with its current content (the
        parent's bytes included) and its parent unpinned. Stop VMs using it first."""
        row = self.repo.disk(rg, name)
        parent = self.repo.parent_of_disk(row.id)
        if parent is None:
            raise Conflict(f"disk '{name}' is not a linked disk (nothing to flatten)",
                           target="diskName")
        with linked_mod._lock(self.home.root):
            written = linked_mod.flatten(row.path, row.format, os.path.dirname(parent.path))
            props = row.properties
            ls = props.setdefault("localStorage", {})
            ls.pop("linked", None)
            ls["writtenBytes"] = written
            ls["flattened"] = iso(now_utc())
            with self.repo.transaction():
                self.repo.unlink_disk(row.id)
                self.repo.update_disk_props(row.id, props)
        return self.show(rg, name)

    def _create_copy(self, rg: str, name: str, source: str, *, fmt: str, path: str | None,
                     location: str | None, tags: dict | None, observer: Observer | None,
                     threads: int) -> dict:
        """``az disk create --source``: a new disk file with the bytes of a snapshot (from the
        store) or of another disk (its file as it is now), in the source's region."""
        src = sources.resolve(self.repo, source, rg, field=_SOURCE)
        if location is not None:
            loc = self.placement.require_region(location)
            if loc.lower() != src.location.lower():
                raise InvalidArgument(f"location: {src.label} is in region '{src.location}'; a "
                                      f"copy is made in the source's region", target="location")
        location = self.placement.require_region(src.location)
        if self.repo.find_disk(rg, name):
            raise Conflict(f"disk '{name}' already exists in resource group '{rg}'",
                           target="diskName")
        if src.kind == "disk":
            src_path, src_fmt = src.disk_file(_SOURCE)
        path = self._new_path(name, path, fmt)
        task = TaskProgress(observer, TaskKind.DISK, name)
        try:
            if src.kind == "snapshot":
                digest = src.row.digest
                paths = self.placement.read_slots(location, 1, "Standard_LRS")
                slots = self.placement.open_slots_holding(paths, digest)
                try:
                    if not slots:
                        raise NotFound(f"{_SOURCE}: no copy of snapshot '{src.row.name}' "
                                       f"(manifest {digest}) in region '{location}'",
                                       target=_SOURCE)
                    res = materialize_from_copies(slots, digest, path, fmt=fmt,
                                                  overwrite=False, threads=threads,
                                                  progress=task)
                finally:
                    for s in slots:
                        s.close()
                virtual_size, written = res.virtual_size, res.written_bytes
            else:
                digest = None
                virtual_size, written = copy_disk_file(src_path, src_fmt, path, fmt, task,
                                                       allow_parent_dir=src.parent_dir)
        finally:
            task.close()
        props: dict = dict(src.carried)
        cd: dict = {"createOption": "Copy", "sourceResourceId": src.id}
        if src.unique_id:
            cd["sourceUniqueId"] = src.unique_id
        props.update({
            "creationData": cd,
            "diskSizeGB": resources.size_in_gb(virtual_size),
            "diskSizeBytes": virtual_size,
            "timeCreated": iso(now_utc()),
            "provisioningState": "Succeeded",
            "diskState": "Unattached",
            "uniqueId": arm_disk.new_unique_id(),
            "localStorage": {"path": path, "format": fmt, "virtualSize": virtual_size,
                             "writtenBytes": written, "manifestDigest": digest,
                             "requestedSource": source},
        })
        return self._register(rg, name, location, tags, props, path, fmt)

    def _disk_image(self, vrow: VersionRow, vid: str, lun: int | None) -> VersionDisk:
        disks = self.repo.disks_of(vrow.id)
        want = -1 if lun is None else lun
        drow = next((d for d in disks if d.lun == want), None)
        if drow is None:
            luns = ", ".join(str(d.lun) for d in disks if d.lun >= 0) or "none"
            if lun is None:
                raise NotFound(f"properties.creationData.galleryImageReference.id: image version '{vid}' has no OS "
                               f"disk image", target="properties.creationData.galleryImageReference.id")
            raise NotFound(
                f"properties.creationData.galleryImageReference.lun: image version '{vid}' has no data disk image "
                f"with LUN {lun} (data disk LUNs: {luns})",
                target="properties.creationData.galleryImageReference.lun")
        return drow

    @staticmethod
    def _properties(vrow: VersionRow, vid: str, drow: VersionDisk, lun: int | None,
                    reference: str, path: str, fmt: str, virtual_size: int, written: int) -> dict:
        props: dict = arm_disk.carried_over(vrow.definition_properties, lun)
        props.update({
            "creationData": arm_disk.creation_data(vid, lun),
            "diskSizeGB": resources.size_in_gb(virtual_size),
            "diskSizeBytes": virtual_size,
            "timeCreated": iso(now_utc()),
            "provisioningState": "Succeeded",
            "diskState": "Unattached",
            "uniqueId": arm_disk.new_unique_id(),
            "localStorage": {
                "path": path,
                "format": fmt,
                "virtualSize": virtual_size,
                "writtenBytes": written,
                "manifestDigest": drow.digest or None,
                "requestedReference": reference,
            },
        })
        return props

    def _from_copies(self, vrow: VersionRow, location: str, digest: str, path: str, fmt: str,
                     threads: int, task: TaskProgress):
        pp = vrow.properties["publishingProfile"]
        tr = next((t for t in pp["targetRegions"] if t["name"].lower() == location.lower()), {})
        paths = self.placement.read_slots(location, int(tr.get("regionalReplicaCount") or 1),
                                          tr.get("storageAccountType") or "Standard_LRS")
        slots = self.placement.open_slots_holding(paths, digest)
        try:
            if not slots:
                raise NotFound(f"location: no copy of manifest {digest} in region "
                               f"'{location}' (the region's copies need repair from a good copy)",
                               target="location")
            return materialize_from_copies(slots, digest, path, fmt=fmt, overwrite=False,
                                           threads=threads, progress=task)
        finally:
            for s in slots:
                s.close()

    def _from_shallow(self, vrow: VersionRow, drow: VersionDisk, path: str, fmt: str,
                      task: TaskProgress) -> tuple[int, int]:
        what = f"image version '{vrow.label}'"
        fp = json.loads(drow.fingerprint or "{}")
        src = drow.shallow_path
        with shallow.deploy_slot(self.home.root, f"v{vrow.id}", what):
            shallow.check(src, fp, what)
            out = shallow.create_disk_from_source(src, path, fmt, progress=task)
            try:
                shallow.check(src, fp, what)  # changed while it was read: the disk is not valid
            except Exception:
                os.unlink(path)
                raise
        return out

    def show(self, rg: str, name: str) -> dict:
        """The disk's JSON (NotFound when there is none)."""
        return resources.disk_json(self.repo.disk(rg, name))

    def list(self, rg: str | None = None) -> list[dict]:
        """Disks of ``rg`` (all resource groups when None)."""
        return [resources.disk_json(r) for r in self.repo.list_disks(rg)]

    def delete(self, rg: str, name: str, *, delete_file: bool = False) -> None:
        """Unregister the disk; ``delete_file`` also removes its file."""
        with self.repo.transaction():
            row = self.repo.disk(rg, name)
            disk_access.check_deletable(row)
            owner = (json.loads(row.props).get("localStorage") or {}).get("attachedTo")
            if owner:  # a VM's disk (compute layer): detach it by deleting the VM first
                raise OperationNotAllowed(f"Disk {name} is attached to VM {owner}.",
                                          target="diskName")
            self.repo.delete_disk(row.id)
        if delete_file:
            if _is_url(row.path):  # a disk written into a page blob
                _delete_blob(row.path)
                return
            try:
                os.unlink(row.path)
            except FileNotFoundError:
                pass


def copy_disk_file(src: str, source_format: str, path: str, fmt: str,
                   task: TaskProgress, allow_parent_dir: str | None = None) -> tuple[int, int]:
    """Copy a disk file's content (its allocated extents, zero blocks left out) to a new disk
    file at ``path`` in ``fmt`` (temp file, fsync, rename). The source must not change while
    it is read (then nothing is left at ``path``). ``allow_parent_dir``: where a differencing
    or linked disk's parent may also be (the store). Returns (virtual size, bytes written)."""
    from ..accel import nonzero_runs

    step = 1 << 20
    reader = open_disk(src, source_format=source_format, allow_parent_dir=allow_parent_dir)
    try:
        extents = list(reader.extents())
        total = sum(n for _o, n in extents)
        written = done = 0
        with new_disk_file(path, reader.virtual_size, fmt) as writer:
            for off, n in extents:
                pos, end = off, min(off + n, reader.virtual_size)
                while pos < end:
                    m = min(step, end - pos)
                    data = reader.read(pos, m)
                    mv = memoryview(data)
                    for a, b in nonzero_runs(data):
                        writer.write(pos + a, mv[a:b])
                        written += b - a
                    pos += m
                    done += m
                    task(done, total)
            reader.check_unchanged()
        return writer.virtual_size, written
    finally:
        reader.close()


def _is_url(path: str | None) -> bool:
    return bool(path) and path.lower().startswith(("https://", "http://"))


def _delete_blob(url: str) -> None:
    from ..azblob import blob_client, parse_blob_url, resolve_credential

    bu = parse_blob_url(url, "path")
    try:
        blob_client(bu, resolve_credential(bu.account)).delete_blob()
    except Exception:  # noqa: BLE001 - the original error is the one to report
        pass
