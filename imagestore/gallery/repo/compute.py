"""Virtual machines and scale sets of the compute layer (``compute_vms``, ``compute_vmss``)."""

from __future__ import annotations

from ..validate import iso, now_utc
from .base import RepositoryBase, select_table
from .rows import VmRow, VmssRow, dumps


class ComputeMixin(RepositoryBase):
    """VMs and scale sets."""

    def find_vm(self, rg: str, name: str) -> VmRow | None:
        """The VM (or scale set instance) named ``name``, or None."""
        return self._find_named("compute_vms", VmRow, rg, name)

    def list_vms(self, rg: str | None = None) -> list[VmRow]:
        """Standalone VMs (not scale set instances) of a resource group, all when None."""
        if rg is None:
            rows = self._all(select_table("compute_vms") + "WHERE vmss_id IS NULL "
                             "ORDER BY rg, name")
        else:
            rows = self._all(select_table("compute_vms") + "WHERE vmss_id IS NULL AND rg = ? "
                             "ORDER BY name", (rg,))
        return [VmRow.from_sql(r) for r in rows]

    def insert_vm(self, rg: str, name: str, location: str, tags: dict, props: dict, *,
                  vmss_id: int | None = None, instance_id: int | None = None) -> int:
        """(In a transaction.) Returns the row id."""
        cur = self.con.execute(
            "INSERT INTO compute_vms(rg, name, location, tags, props, vmss_id, instance_id, "
            "created) VALUES (?,?,?,?,?,?,?,?)",
            (rg, name, location, dumps(tags), dumps(props), vmss_id, instance_id,
             iso(now_utc())))
        return int(cur.lastrowid)

    def update_vm(self, pk: int, props: dict) -> None:
        """(In a transaction.)"""
        self.con.execute("UPDATE compute_vms SET props = ? WHERE id = ?", (dumps(props), pk))

    def delete_vm(self, pk: int) -> None:
        """(In a transaction.)"""
        self.con.execute("DELETE FROM compute_vms WHERE id = ?", (pk,))

    def find_vmss(self, rg: str, name: str) -> VmssRow | None:
        """The scale set, or None."""
        return self._find_named("compute_vmss", VmssRow, rg, name)

    def list_vmss(self, rg: str | None = None) -> list[VmssRow]:
        """Scale sets of a resource group (all when None), by name."""
        return self._list_named("compute_vmss", VmssRow, rg)

    def insert_vmss(self, rg: str, name: str, location: str, tags: dict, props: dict) -> int:
        """(In a transaction.) Returns the row id."""
        cur = self.con.execute(
            "INSERT INTO compute_vmss(rg, name, location, tags, props, created) "
            "VALUES (?,?,?,?,?,?)",
            (rg, name, location, dumps(tags), dumps(props), iso(now_utc())))
        return int(cur.lastrowid)

    def update_vmss(self, pk: int, props: dict) -> None:
        """(In a transaction.)"""
        self.con.execute("UPDATE compute_vmss SET props = ? WHERE id = ?", (dumps(props), pk))

    def delete_vmss(self, pk: int) -> None:
        """(In a transaction; its instance rows go with it.)"""
        self.con.execute("DELETE FROM compute_vms WHERE vmss_id = ?", (pk,))
        self.con.execute("DELETE FROM compute_vmss WHERE id = ?", (pk,))

    def vmss_instances(self, vmss_pk: int) -> list[VmRow]:
        """The scale set's instances by instance id."""
        return [VmRow.from_sql(r) for r in self._all(
            select_table("compute_vms") + "WHERE vmss_id = ? ORDER BY instance_id", (vmss_pk,))]
