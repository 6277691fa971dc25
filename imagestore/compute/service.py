"""The compute layer in one object, over a store's :class:`~imagestore.gallery.service.GalleryService`::

    gallery = GalleryService(home)
    compute = ComputeService(gallery)
    compute.vms.create("rg", "vm1", "g/d", admin_username="azureuser", ssh_key_values=[key])
    compute.vms.start("rg", "vm1")
    compute.vmss.create("rg", "ss", "g/d", instance_count=2, admin_username=...)
"""

from __future__ import annotations

from ..gallery.service import GalleryService
from .vms import VirtualMachines
from .vmss import ScaleSets


class ComputeService:
    """``vms`` and ``vmss`` over one gallery."""

    def __init__(self, gallery: GalleryService) -> None:
        self.gallery = gallery
        self.vms = VirtualMachines(gallery)
        self.vmss = ScaleSets(gallery, self.vms)
