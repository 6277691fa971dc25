"""``api-version`` handling: which versions each resource provider accepts, and ARM's two
refusals (missing, unknown).

The versions are those azure-mgmt-compute 39.0.0 sends (read from its generated operations:
galleries, images and versions default to ``2026-03-03`` and list ``2025-03-03`` and
``2025-12-03`` as supported; disks send ``2026-03-02``) and the older stable versions other
clients (az, Terraform's azurerm, Pulumi, older SDKs) send. The request and response shapes
of the gallery resources did not change between them in the parts imagestore implements.
"""

from __future__ import annotations

from .errors import ApiError

#: GalleryRP (galleries, images, versions, and their operations)
GALLERY_API_VERSIONS: tuple[str, ...] = (
    "2026-03-03", "2025-12-03", "2025-03-03", "2024-03-03", "2023-07-03", "2022-08-03",
    "2022-03-03", "2022-01-03", "2021-10-01", "2021-07-01",
)
#: DiskRP (disks, snapshots)
DISK_API_VERSIONS: tuple[str, ...] = (
    "2026-03-02", "2025-01-02", "2024-03-02", "2023-10-02", "2023-04-02", "2023-01-02",
    "2022-07-02",
)
#: ComputeRP (virtual machines, managed images, scale sets) — for later resource families
COMPUTE_API_VERSIONS: tuple[str, ...] = (
    "2026-04-01", "2025-11-01", "2025-04-01", "2024-11-01", "2024-07-01", "2024-03-01",
    "2023-09-01", "2023-07-01", "2023-03-01",
)
#: operation status resources answer to every version a resource family accepts
OPERATION_API_VERSIONS: tuple[str, ...] = tuple(
    dict.fromkeys(GALLERY_API_VERSIONS + DISK_API_VERSIONS + COMPUTE_API_VERSIONS))


def check(query: dict[str, str], accepted: tuple[str, ...]) -> str:
    """The request's api-version, if accepted; else ARM's 400."""
    v = query.get("api-version")
    if v is None or v == "":
        raise ApiError(400, "MissingApiVersionParameter",
                       "The api-version query parameter (?api-version=) is required for all "
                       "requests.")
    if v not in accepted:
        raise ApiError(400, "InvalidApiVersionParameter",
                       f"The api-version '{v}' is invalid. The supported versions are "
                       f"'{','.join(accepted)}'.", target="api-version")
    return v
