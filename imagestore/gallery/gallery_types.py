"""What each gallery type holds (issue 15; the spec's Features/SecurityType table and the
direct-shared and community limits):

- ``SecurityType`` ``TrustedLaunch`` and ``ConfidentialVM`` only in Private galleries; the
  ``…Supported`` types and every other feature everywhere;
- no encrypted versions (``publishingProfile.targetRegions[].encryption``) in a shared
  (Groups or Community) gallery;
- in a shared gallery a version is created in the gallery's own region (replicate afterwards).

Refusals are 400 ``InvalidParameter`` naming the field (Azure's code is undocumented).
"""

from __future__ import annotations

from typing import Any

from ..errors import InvalidArgument
from . import sharing

#: the SecurityType values only a Private gallery may hold
PRIVATE_ONLY_SECURITY_TYPES = ("TrustedLaunch", "ConfidentialVM")


def check_definition(gallery: str, gallery_props: dict, features: list[dict] | None) -> None:
    """Refuse a definition feature the gallery's type does not support."""
    perm = sharing.permissions_of(gallery_props)
    if perm == sharing.PRIVATE:
        return
    for f in features or ():
        if f.get("name") == "SecurityType" and f.get("value") in PRIVATE_ONLY_SECURITY_TYPES:
            raise InvalidArgument(
                f"properties.features: SecurityType {f['value']} is supported in Private "
                f"galleries only, and gallery '{gallery}' is shared ({perm}); use "
                f"{f['value']}Supported", target="properties.features")


def check_version(gallery: str, gallery_props: dict, gallery_location: str, location: str,
                  target_regions: Any) -> None:  # noqa: ANN401 - the request's list
    """Refuse an encrypted version, or one outside the gallery's region, in a shared
    gallery."""
    perm = sharing.permissions_of(gallery_props)
    field = "properties.publishingProfile.targetRegions"
    for i, tr in enumerate(target_regions or ()):
        if isinstance(tr, dict) and tr.get("encryption"):
            why = (f"an encrypted image version can't be created in gallery '{gallery}', "
                   f"which is shared ({perm})" if perm != sharing.PRIVATE
                   else "not supported by imagestore")
            raise InvalidArgument(f"{field}[{i}].encryption: {why}",
                                  target=f"{field}[{i}].encryption")
    if perm == sharing.PRIVATE:
        return
    if location.lower() != gallery_location.lower():
        raise InvalidArgument(
            f"location: a version in shared gallery '{gallery}' ({perm}) is created in the "
            f"gallery's region '{gallery_location}', not '{location}' (replicate it to other "
            f"regions with target regions)", target="location")
