"""Subscriptions and resource groups (issue 15): the ``resource_groups`` rows, and the
resource groups resources name without one."""

from __future__ import annotations

from .. import ids
from ..validate import iso, now_utc
from .base import RepositoryBase
from .rows import ResourceGroupRow, dumps


class ResourceGroupsMixin(RepositoryBase):
    """Subscriptions and resource groups."""

    def subscription_id(self, sub: str) -> str | None:
        """The subscription's id as stored (ids compare case-insensitively), or None when the
        directory has no such subscription."""
        row = self._one("SELECT id FROM ad_subscriptions WHERE lower(id) = lower(?)", (sub,))
        return row[0] if row else None

    def subscription_of(self, rg: str) -> str:
        """The subscription resource group ``rg`` belongs to: its row's, or the local one
        when it has none (implicit groups, every store made before rows existed)."""
        row = self._one("SELECT subscription_id FROM resource_groups WHERE name = ?", (rg,))
        return row[0] if row else ids.SUBSCRIPTION

    def find_resource_group(self, name: str) -> ResourceGroupRow | None:
        """The resource group's row (names are unique in the store), or None."""
        row = self._one("SELECT * FROM resource_groups WHERE name = ?", (name,))
        return ResourceGroupRow.from_sql(row) if row else None

    def list_resource_groups(self, subscription: str | None = None) -> list[ResourceGroupRow]:
        """The resource groups with rows (of one subscription, or all), by name."""
        if subscription is None:
            rows = self._all("SELECT * FROM resource_groups ORDER BY name")
        else:
            rows = self._all("SELECT * FROM resource_groups WHERE lower(subscription_id) = "
                             "lower(?) ORDER BY name", (subscription,))
        return [ResourceGroupRow.from_sql(r) for r in rows]

    def insert_resource_group(self, subscription: str, name: str, location: str,
                              tags: dict) -> None:
        """(In a transaction.)"""
        self.con.execute(
            "INSERT INTO resource_groups(subscription_id, name, location, tags, created) "
            "VALUES (?,?,?,?,?)", (subscription, name, location, dumps(tags), iso(now_utc())))

    def update_resource_group(self, pk: int, location: str, tags: dict) -> None:
        """(In a transaction.)"""
        self.con.execute("UPDATE resource_groups SET location = ?, tags = ? WHERE id = ?",
                         (location, dumps(tags), pk))

    def delete_resource_group(self, pk: int) -> None:
        """(In a transaction.)"""
        self.con.execute("DELETE FROM resource_groups WHERE id = ?", (pk,))

    #: the tables whose rows live in a resource group (``rg`` column)
    _RG_TABLES = ("galleries", "disks", "snapshots", "managed_images", "compute_vms",
                  "compute_vmss")

    def resource_group_in_use(self, rg: str) -> bool:
        """Whether any resource lives in resource group ``rg``."""
        union = " UNION ALL ".join(f"SELECT 1 FROM {t} WHERE rg = ?" for t in self._RG_TABLES)
        return self._one(f"SELECT 1 FROM ({union}) u LIMIT 1",
                         (rg,) * len(self._RG_TABLES)) is not None

    def implicit_resource_groups(self) -> list[str]:
        """Names of the resource groups that hold resources but have no row (the local
        subscription's implicit groups), by name; one spelling per group."""
        union = " UNION ".join(f"SELECT rg FROM {t}" for t in self._RG_TABLES)
        seen: dict[str, str] = {}
        for (rg,) in self._all(f"SELECT rg FROM ({union}) u WHERE NOT EXISTS (SELECT 1 FROM "
                               f"resource_groups r WHERE r.name = u.rg) ORDER BY rg"):
            seen.setdefault(rg.lower(), rg)
        return sorted(seen.values(), key=str.lower)
