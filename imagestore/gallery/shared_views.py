"""Consumer views of shared and community galleries (issue 15): read-only regional proxies
computed from the publisher's rows on every request, never stored copies, so a share removed
or reset stops access with the next request.

- ``/SharedGalleries/{S}-{NAME}`` (``{S}`` the publisher's subscription, ``NAME`` the gallery
  name upper-cased, as ``identifier.uniqueName``): visible to a :class:`Viewer` whose
  subscription is among the share's subscriptions, or whose tenant — the caller's, or the
  home tenant of the subscription looked through — is among its tenants.
- ``/CommunityGalleries/{prefix}-{guid}``: visible to everyone while the community is enabled.

A view exposes only the fields of the SDK models ``SharedGallery*`` / ``CommunityGallery*``:
no ARM id or resource group, description, tags, sharing profile, source, target regions,
replication status, safety profile, encryption or provisioning state. A gallery is seen in
its own location; a version where its replication has completed. Anything not visible is
``ResourceNotFound`` (404) with the same message whether it does not exist or is not shared
with the caller: the view never tells which.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import NotFound
from . import ids, latest, resources, sharing, soft_delete
from .repository import DefinitionRow, GalleryRow, ReplicationState, Repository, VersionRow

SHARED, COMMUNITY = "shared", "community"
COMMUNITY_TYPES = {"gallery": "Microsoft.Compute/Locations/CommunityGallery",
                   "image": "Microsoft.Compute/Locations/CommunityGalleryImage",
                   "version": "Microsoft.Compute/Locations/CommunityGalleryImageVersion"}
#: the definition fields a consumer sees (SharedGalleryImageProperties)
IMAGE_FIELDS = ("osType", "osState", "endOfLifeDate", "identifier", "recommended",
                "disallowed", "hyperVGeneration", "features", "purchasePlan", "architecture",
                "privacyStatementUri", "eula")
_REF = re.compile(r"^/(?P<kind>SharedGalleries|CommunityGalleries)/(?P<gallery>[^/]+)/Images/"
                  r"(?P<image>[^/]+)/Versions/(?P<version>[^/]+)$", re.IGNORECASE)


@dataclass(frozen=True)
class Viewer:
    """Who looks: the subscription of the request (the path's), the caller's tenant, and
    the subscription's home tenant (a tenant share reaches every subscription of the
    tenant, and every principal of it)."""

    subscription: str
    tenant: str
    subscription_tenant: str | None = None


def publisher_subscription(row: GalleryRow) -> str:
    """The subscription a gallery lives in."""
    return row["subscription"] if "subscription" in row.keys() else ids.SUBSCRIPTION


def unique_name(row: GalleryRow) -> str:
    return f"{publisher_subscription(row)}-{row.name.upper()}"


def is_shared_reference(text: str | None) -> bool:
    """Whether a gallery image reference names a shared or community version."""
    return bool(text) and _REF.match(text.strip()) is not None


class ConsumerViews:
    """The views over one repository."""

    def __init__(self, repo: Repository) -> None:
        self.repo = repo

    # -- which galleries --------------------------------------------------------------------

    def _shared_with(self, props: dict, viewer: Viewer, *, tenant_only: bool | None) -> bool:
        if sharing.permissions_of(props) != sharing.GROUPS:
            return False
        by_sub = viewer.subscription.lower() in sharing.group_ids(props, sharing.SUBSCRIPTIONS)
        tenants = sharing.group_ids(props, sharing.TENANTS)
        by_tenant = any(t and t.lower() in tenants
                        for t in (viewer.tenant, viewer.subscription_tenant))
        if tenant_only is None:
            return by_sub or by_tenant
        return by_tenant if tenant_only else by_sub

    def _shared_rows(self, viewer: Viewer, location: str, *,
                     tenant_only: bool | None) -> list[GalleryRow]:
        return [r for r in self.repo.list_galleries(None)
                if r.location.lower() == location.lower()
                and self._shared_with(r.properties, viewer, tenant_only=tenant_only)]

    def _shared_row(self, viewer: Viewer, location: str, name: str) -> GalleryRow:
        for r in self._shared_rows(viewer, location, tenant_only=None):
            if unique_name(r).lower() == name.lower():
                return r
        raise NotFound(f"The shared gallery '{name}' was not found in location '{location}', "
                       f"or it is not shared with subscription '{viewer.subscription}' or "
                       f"tenant '{viewer.tenant}'.", target="galleryUniqueName")

    def _community_row(self, location: str, name: str) -> GalleryRow:
        for r in self.repo.list_galleries(None):
            p = r.properties
            if (r.location.lower() == location.lower() and sharing.community_enabled(p)
                    and name.lower() in (n.lower() for n in sharing.public_names(p))):
                return r
        raise NotFound(f"The community gallery '{name}' was not found in location "
                       f"'{location}'.", target="publicGalleryName")

    def _gallery(self, kind: str, location: str, name: str, viewer: Viewer | None) -> GalleryRow:
        if kind == SHARED:
            assert viewer is not None
            return self._shared_row(viewer, location, name)
        return self._community_row(location, name)

    @staticmethod
    def _canonical(kind: str, g: GalleryRow, name: str) -> str:
        """The gallery's name as it publishes it (names match in any case; views and ids
        carry the published spelling, not the caller's)."""
        if kind == SHARED:
            return unique_name(g)
        return next(n for n in sharing.public_names(g.properties) if n.lower() == name.lower())

    # -- rows below a gallery ---------------------------------------------------------------

    def _definition(self, g: GalleryRow, image: str, base: str) -> DefinitionRow:
        d = self.repo.find_definition(g, image)
        if d is None:
            raise NotFound(f"The image '{image}' was not found in gallery '{base}'.",
                           target="galleryImageName")
        return d

    def _visible(self, v: VersionRow, location: str) -> bool:
        if v.state.value != "Succeeded":
            return False
        if soft_delete.gone(self.repo, v):  # past its hard-deletion time (issue 15)
            return False
        reg = self.repo.region_of(v.id, location)
        return reg is not None and reg.state == ReplicationState.COMPLETED

    def _version(self, d: DefinitionRow, version: str, location: str, base: str) -> VersionRow:
        if version.lower() == "latest":
            try:
                return latest.latest_version(self.repo, d, location)
            except NotFound:
                raise NotFound(f"The image '{d.name}' of gallery '{base}' has no version "
                               f"that qualifies as latest in location '{location}'.",
                               target="galleryImageVersionName") from None
        for v in self.repo.list_versions(d):
            if v.name == version and self._visible(v, location):
                return v
        raise NotFound(f"The image version '{version}' of image '{d.name}' was not found in "
                       f"gallery '{base}' in location '{location}'.",
                       target="galleryImageVersionName")

    # -- JSON -------------------------------------------------------------------------------

    @staticmethod
    def _prefix(kind: str, name: str) -> str:
        return f"/{'SharedGalleries' if kind == SHARED else 'CommunityGalleries'}/{name}"

    def _gallery_json(self, kind: str, g: GalleryRow, name: str) -> dict:
        out: dict = {"name": name, "location": g.location}
        if kind == COMMUNITY:
            out["type"] = COMMUNITY_TYPES["gallery"]
        out["identifier"] = {"uniqueId": self._prefix(kind, name)}
        props: dict = {"artifactTags": {}}
        if kind == COMMUNITY:
            info = g.properties["sharingProfile"]["communityGalleryInfo"]
            props["communityMetadata"] = {
                "publisherUri": info["publisherUri"], "publisherContact": info["publisherContact"],
                "eula": info["eula"], "publicNames": list(info["publicNames"])}
        out["properties"] = props
        return out

    def _image_json(self, kind: str, d: DefinitionRow, base: str, location: str) -> dict:
        src = resources.image_json(d)["properties"]
        out: dict = {"name": d.name, "location": location}
        if kind == COMMUNITY:
            out["type"] = COMMUNITY_TYPES["image"]
        out["identifier"] = {"uniqueId": f"{self._prefix(kind, base)}/Images/{d.name}"}
        props = {k: src[k] for k in IMAGE_FIELDS if k in src}
        props["artifactTags"] = {}
        out["properties"] = props
        return out

    def _version_json(self, kind: str, v: VersionRow, base: str, location: str) -> dict:
        full = resources.version_json(v, self.repo.disks_of(v.id), [])["properties"]
        pp = full["publishingProfile"]
        out: dict = {"name": v.name, "location": location}
        if kind == COMMUNITY:
            out["type"] = COMMUNITY_TYPES["version"]
        out["identifier"] = {
            "uniqueId": f"{self._prefix(kind, base)}/Images/{v.image}/Versions/{v.name}"}
        props: dict = {"publishedDate": pp["publishedDate"]}
        if pp.get("endOfLifeDate"):
            props["endOfLifeDate"] = pp["endOfLifeDate"]
        props["excludeFromLatest"] = bool(pp.get("excludeFromLatest"))
        sp = full["storageProfile"]
        storage: dict = {}
        if "osDiskImage" in sp:
            storage["osDiskImage"] = _disk(sp["osDiskImage"])
        if sp.get("dataDiskImages"):
            storage["dataDiskImages"] = [{**_disk(x), "lun": x["lun"]}
                                         for x in sp["dataDiskImages"]]
        props["storageProfile"] = storage
        props["artifactTags"] = {}
        out["properties"] = props
        return out

    # -- the public API ---------------------------------------------------------------------

    def list_shared(self, viewer: Viewer, location: str, *, shared_to_tenant: bool = False) -> list[dict]:
        """The shared galleries in ``location`` shared with the viewer's subscription (or,
        ``shared_to_tenant``, with its tenant)."""
        return [self._gallery_json(SHARED, r, unique_name(r))
                for r in self._shared_rows(viewer, location, tenant_only=shared_to_tenant)]

    def list_community(self, location: str) -> list[dict]:
        """The community galleries enabled in ``location`` (``sig list-community``), one
        entry per public name."""
        out = []
        for r in self.repo.list_galleries(None):
            p = r.properties
            if r.location.lower() == location.lower() and sharing.community_enabled(p):
                out += [self._gallery_json(COMMUNITY, r, n) for n in sharing.public_names(p)]
        return sorted(out, key=lambda g: g["name"].lower())

    def gallery(self, kind: str, location: str, name: str, viewer: Viewer | None = None) -> dict:
        g = self._gallery(kind, location, name, viewer)
        location = g.location  # the region's own spelling
        name = self._canonical(kind, g, name)
        return self._gallery_json(kind, g, name)

    def images(self, kind: str, location: str, name: str,
               viewer: Viewer | None = None) -> list[dict]:
        g = self._gallery(kind, location, name, viewer)
        location = g.location  # the region's own spelling
        name = self._canonical(kind, g, name)
        return [self._image_json(kind, d, name, location) for d in self.repo.list_definitions(g)]

    def image(self, kind: str, location: str, name: str, image: str,
              viewer: Viewer | None = None) -> dict:
        g = self._gallery(kind, location, name, viewer)
        location = g.location  # the region's own spelling
        name = self._canonical(kind, g, name)
        return self._image_json(kind, self._definition(g, image, name), name, location)

    def versions(self, kind: str, location: str, name: str, image: str,
                 viewer: Viewer | None = None) -> list[dict]:
        g = self._gallery(kind, location, name, viewer)
        location = g.location  # the region's own spelling
        name = self._canonical(kind, g, name)
        d = self._definition(g, image, name)
        return [self._version_json(kind, v, name, location)
                for v in self.repo.list_versions(d, active_only=True)  # not soft-deleted ones
                if self._visible(v, location)]

    def version(self, kind: str, location: str, name: str, image: str, version: str,
                viewer: Viewer | None = None) -> dict:
        g = self._gallery(kind, location, name, viewer)
        location = g.location  # the region's own spelling
        name = self._canonical(kind, g, name)
        d = self._definition(g, image, name)
        return self._version_json(kind, self._version(d, version, location, name), name,
                                  location)

    def resolve(self, reference: str, viewer: Viewer, location: str,
                field: str = "properties.creationData.galleryImageReference") -> tuple[VersionRow, str]:
        """``/SharedGalleries/{n}/Images/{i}/Versions/{v|latest}`` or
        ``/CommunityGalleries/…`` -> (the version row behind it, the consumer's id of that
        version: ``latest`` resolved) for a consumer in ``location``; NotFound when the
        viewer does not see it (the share is the authorization: no RBAC on the publisher's
        gallery). Errors name only the consumer's ids, never the private resource."""
        m = _REF.match(reference.strip())
        if m is None:
            raise NotFound(f"{field}: '{reference}' is not /SharedGalleries/NAME/Images/IMAGE/"
                           f"Versions/VERSION or /CommunityGalleries/…", target=field)
        kind = SHARED if m["kind"].lower() == "sharedgalleries" else COMMUNITY
        g = self._gallery(kind, location, m["gallery"], viewer)
        location = g.location
        name = self._canonical(kind, g, m["gallery"])
        d = self._definition(g, m["image"], name)
        v = self._version(d, m["version"], location, name)
        soft_delete.check_usable(self.repo, v)  # a soft-deleted one only until its end
        return v, f"{self._prefix(kind, name)}/Images/{d.name}/Versions/{v.name}"


def _disk(d: dict) -> dict:
    return {"diskSizeGB": d["sizeInGB"], "hostCaching": d["hostCaching"]}
