"""The gallery library API in one object: :class:`GalleryService` opens a store's gallery
and offers one service per resource type over a shared repository::

    svc = GalleryService(home, runner=...)
    svc.galleries.create("rg", "g")
    svc.definitions.create("rg", "g", "d", publisher="P", offer="O", sku="S", os_type="Linux")
    svc.versions.create("rg", "g", "d", "1.0.0", os_vhd_uri="disk.vhdx")
    svc.disks.create("rg", "vm1-os", "g/d")

The flat methods (``create_gallery``, ``show_version`` …) are the same operations under the
names the CLI has always used. ``runner`` runs queued replication work
(:class:`imagestore.worker.WorkerRunner`); without one, queued work waits for
``imagestore worker``.
"""

from __future__ import annotations

from ..home import Home
from . import ids
from .definitions import Definitions
from .disk_access import DiskAccess
from .disks import Disks
from .galleries import Galleries
from .managed_images import ManagedImages
from .operations import Operations
from .placement import Placement, RegionLookup
from .replication import Log, Replication
from .repository import Repository, VersionRow
from .resource_groups import ResourceGroups
from .snapshots import Snapshots
from .versions import Versions, WorkRunner


class GalleryService:
    """The gallery of one store: ``galleries``, ``definitions``, ``versions``, ``disks``,
    ``snapshots``, ``managed_images`` and ``replication`` (the queued work), over one :class:`~.repository.Repository`.
    ``region_lookup`` overrides which regions exist (tests)."""

    def __init__(self, home: Home, *, region_lookup: RegionLookup | None = None,
                 runner: WorkRunner | None = None, log: Log | None = None) -> None:
        self.home = home
        self.repo = Repository(home.gallery_database)
        self.placement = Placement(home, self.repo, region_lookup=region_lookup)
        self.galleries = Galleries(self.repo, self.placement)
        self.definitions = Definitions(self.repo, self.placement)
        self.versions = Versions(self.repo, self.placement, runner)
        self.soft_delete = self.versions.soft_delete  # soft-deleted versions (issue 15)
        self.disks = Disks(home, self.repo, self.placement, self.versions)
        self.snapshots = Snapshots(self.repo, self.placement)
        self.managed_images = ManagedImages(self.repo, self.placement)
        self.disk_access = DiskAccess(self.repo)  # export grants (issue 12)
        self.replication = Replication(home, self.repo, self.placement, log=log)
        self.operations = Operations(self.repo, self.versions)  # REST API (issue 12)
        self.groups = ResourceGroups(self.repo)  # resource groups in subscriptions (issue 15)

    @property
    def con(self):  # noqa: ANN201 - a backends.Database
        """The repository's connection (tests and diagnostics)."""
        return self.repo.con

    @property
    def runner(self) -> WorkRunner | None:
        """What runs queued work."""
        return self.versions.runner

    @runner.setter
    def runner(self, runner: WorkRunner | None) -> None:
        self.versions.runner = runner

    def close(self) -> None:
        """Close the database connection."""
        self.repo.close()

    # -- regions -----------------------------------------------------------------------------

    def region_exists(self, name: str) -> bool:
        """Whether region ``name`` exists."""
        return self.placement.region_exists(name)

    def require_region(self, name: str, field: str = "location") -> str:
        """The canonical name of region ``name`` (NotFound naming ``field``)."""
        return self.placement.require_region(name, field)

    def holds_only_copy(self, region: str) -> list[str]:
        """Ids of the versions whose only Completed copy is in ``region``."""
        return self.versions.holding_only_copy(region)

    def versions_targeting(self, region: str) -> list[str]:
        """Ids of the versions that have ``region`` among their target regions."""
        return self.versions.targeting(region)

    def snapshots_and_images_in(self, region: str) -> list[str]:
        """Ids of the snapshots and managed images whose data lives in ``region``."""
        sub = self.repo.subscription_of
        return [ids.snapshot_id(sub(rg), rg, n) if kind == "snapshot" else
                ids.managed_image_id(sub(rg), rg, n)
                for kind, rg, n in self.repo.snapshots_and_images_in(region)]

    # -- flat names ----------------------------------------------------------------------------

    def create_gallery(self, rg: str, name: str, **kw) -> dict:
        """See :meth:`.galleries.Galleries.create`."""
        return self.galleries.create(rg, name, **kw)

    def show_gallery(self, rg: str, name: str, **kw) -> dict:
        """See :meth:`.galleries.Galleries.show`."""
        return self.galleries.show(rg, name, **kw)

    def list_galleries(self, rg: str | None = None) -> list[dict]:
        """See :meth:`.galleries.Galleries.list`."""
        return self.galleries.list(rg)

    def update_gallery(self, rg: str, name: str, **kw) -> dict:
        """See :meth:`.galleries.Galleries.update`."""
        return self.galleries.update(rg, name, **kw)

    def delete_gallery(self, rg: str, name: str) -> None:
        """See :meth:`.galleries.Galleries.delete`."""
        self.galleries.delete(rg, name)

    def create_image(self, rg: str, gallery: str, name: str, **kw) -> dict:
        """See :meth:`.definitions.Definitions.create`."""
        return self.definitions.create(rg, gallery, name, **kw)

    def show_image(self, rg: str, gallery: str, name: str) -> dict:
        """See :meth:`.definitions.Definitions.show`."""
        return self.definitions.show(rg, gallery, name)

    def list_images(self, rg: str, gallery: str) -> list[dict]:
        """See :meth:`.definitions.Definitions.list`."""
        return self.definitions.list(rg, gallery)

    def update_image(self, rg: str, gallery: str, name: str, **kw) -> dict:
        """See :meth:`.definitions.Definitions.update`."""
        return self.definitions.update(rg, gallery, name, **kw)

    def delete_image(self, rg: str, gallery: str, name: str) -> None:
        """See :meth:`.definitions.Definitions.delete`."""
        self.definitions.delete(rg, gallery, name)

    def create_version(self, rg: str, gallery: str, image: str, version: str, **kw) -> dict:
        """See :meth:`.versions.Versions.create`."""
        return self.versions.create(rg, gallery, image, version, **kw)

    def show_version(self, rg: str, gallery: str, image: str, version: str, *,
                     expand: str | None = None) -> dict:
        """See :meth:`.versions.Versions.show`."""
        return self.versions.show(rg, gallery, image, version, expand=expand)

    def list_versions(self, rg: str, gallery: str, image: str) -> list[dict]:
        """See :meth:`.versions.Versions.list`."""
        return self.versions.list(rg, gallery, image)

    def update_version(self, rg: str, gallery: str, image: str, version: str, **kw) -> dict:
        """See :meth:`.versions.Versions.update`."""
        return self.versions.update(rg, gallery, image, version, **kw)

    def delete_version(self, rg: str, gallery: str, image: str, version: str) -> list[str]:
        """See :meth:`.versions.Versions.delete`."""
        return self.versions.delete(rg, gallery, image, version)

    def wait_version(self, rg: str, gallery: str, image: str, version: str, **kw) -> None:
        """See :meth:`.versions.Versions.wait`."""
        self.versions.wait(rg, gallery, image, version, **kw)

    def latest_version(self, rg: str, gallery: str, image: str, region: str = "local") -> dict:
        """See :meth:`.versions.Versions.latest`."""
        return self.versions.latest(rg, gallery, image, region)

    def version_pk(self, rg: str, gallery: str, image: str, version: str) -> int:
        """The version's row id (what jobs refer to)."""
        return self.versions.row(rg, gallery, image, version).id

    def version_row_by_pk(self, pk: int) -> VersionRow | None:
        """The version with this row id, or None."""
        return self.repo.version_by_pk(pk)
