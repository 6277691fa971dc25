"""Every SQL statement of the directory and RBAC tables (migration ``0007_directory``):
tenants, subscriptions, users, groups, group members, role assignments; and the custom role
definitions of ``0011_custom_roles``.

Portable SQL in SQLite's style (``?`` placeholders), run on either backend through the
:class:`~.backends.Database` seam like :mod:`.repository`. The rules (who may be a member,
what a role allows) live in :mod:`imagestore.identity`; this module only stores rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from . import db
from .backends import Database
from .validate import iso, now_utc


class DirectoryRepository:
    """The directory's rows in the gallery database of one store."""

    def __init__(self, con: Database) -> None:
        self.con = con

    @contextmanager
    def transaction(self) -> Iterator[DirectoryRepository]:
        """One write transaction: all of it is committed, or none of it."""
        with db.transaction(self.con):
            yield self

    def _one(self, sql: str, args: tuple = ()) -> Any:
        return self.con.execute(sql, args).fetchone()

    def _all(self, sql: str, args: tuple = ()) -> list[Any]:
        return self.con.execute(sql, args).fetchall()

    @staticmethod
    def _now() -> str:
        return iso(now_utc())

    # -- tenants and subscriptions -------------------------------------------------------------

    def add_tenant(self, tenant_id: str, display_name: str, domain: str) -> None:
        self.con.execute("INSERT INTO ad_tenants(id, display_name, domain, created) "
                         "VALUES (?,?,?,?)", (tenant_id, display_name, domain, self._now()))

    def tenant(self, ident: str) -> tuple | None:
        """(id, display_name, domain, created) by id or domain."""
        return self._one("SELECT id, display_name, domain, created FROM ad_tenants "
                         "WHERE lower(id) = lower(?) OR domain = ?", (ident, ident))

    def tenants(self) -> list[tuple]:
        return self._all("SELECT id, display_name, domain, created FROM ad_tenants ORDER BY "
                         "created, id")

    def add_subscription(self, sub_id: str, name: str, tenant_id: str) -> None:
        self.con.execute("INSERT INTO ad_subscriptions(id, name, tenant_id, created) "
                         "VALUES (?,?,?,?)", (sub_id, name, tenant_id, self._now()))

    def subscription(self, sub_id: str) -> tuple | None:
        """(id, name, tenant_id, created)."""
        return self._one("SELECT id, name, tenant_id, created FROM ad_subscriptions "
                         "WHERE lower(id) = lower(?)", (sub_id,))

    def subscriptions(self) -> list[tuple]:
        return self._all("SELECT id, name, tenant_id, created FROM ad_subscriptions "
                         "ORDER BY created, id")

    # -- users and groups ------------------------------------------------------------------

    def add_user(self, object_id: str, tenant_id: str, upn: str, display_name: str) -> None:
        self.con.execute("INSERT INTO ad_users(object_id, tenant_id, upn, display_name, "
                         "created) VALUES (?,?,?,?,?)",
                         (object_id, tenant_id, upn, display_name, self._now()))

    def user(self, ident: str) -> tuple | None:
        """(object_id, tenant_id, upn, display_name, created) by object id or UPN."""
        return self._one("SELECT object_id, tenant_id, upn, display_name, created FROM "
                         "ad_users WHERE lower(object_id) = lower(?) OR upn = ?",
                         (ident, ident))

    def users(self) -> list[tuple]:
        return self._all("SELECT object_id, tenant_id, upn, display_name, created FROM "
                         "ad_users ORDER BY upn")

    def add_group(self, object_id: str, tenant_id: str, display_name: str,
                  mail_nickname: str) -> None:
        self.con.execute("INSERT INTO ad_groups(object_id, tenant_id, display_name, "
                         "mail_nickname, created) VALUES (?,?,?,?,?)",
                         (object_id, tenant_id, display_name, mail_nickname, self._now()))

    def group(self, ident: str) -> tuple | None:
        """(object_id, tenant_id, display_name, mail_nickname, created) by id or name."""
        return self._one("SELECT object_id, tenant_id, display_name, mail_nickname, created "
                         "FROM ad_groups WHERE lower(object_id) = lower(?) OR "
                         "display_name = ?", (ident, ident))

    def groups(self) -> list[tuple]:
        return self._all("SELECT object_id, tenant_id, display_name, mail_nickname, created "
                         "FROM ad_groups ORDER BY display_name")

    def add_member(self, group_id: str, member_id: str, member_type: str) -> None:
        self.con.execute("INSERT INTO ad_group_members(group_id, member_id, member_type) "
                         "VALUES (?,?,?)", (group_id, member_id, member_type))

    def remove_member(self, group_id: str, member_id: str) -> int:
        return self.con.execute("DELETE FROM ad_group_members WHERE group_id = ? AND "
                                "member_id = ?", (group_id, member_id)).rowcount

    def members(self, group_id: str) -> list[tuple]:
        """(member_id, member_type) of one group (direct members)."""
        return self._all("SELECT member_id, member_type FROM ad_group_members WHERE "
                         "group_id = ? ORDER BY member_id", (group_id,))

    def groups_of(self, member_id: str) -> list[str]:
        """The groups ``member_id`` is a direct member of."""
        return [r[0] for r in self._all("SELECT group_id FROM ad_group_members WHERE "
                                        "member_id = ?", (member_id,))]

    # -- role assignments --------------------------------------------------------------------

    def add_assignment(self, ident: str, principal_id: str, principal_type: str, role_id: str,
                       scope: str, created_by: str) -> None:
        self.con.execute(
            "INSERT INTO role_assignments(id, principal_id, principal_type, role_id, scope, "
            "scope_key, created, created_by) VALUES (?,?,?,?,?,?,?,?)",
            (ident, principal_id, principal_type, role_id, scope, scope.lower(), self._now(),
             created_by))

    _A = ("SELECT id, principal_id, principal_type, role_id, scope, created, created_by "
          "FROM role_assignments ")

    def assignment(self, principal_id: str, role_id: str, scope: str) -> tuple | None:
        return self._one(self._A + "WHERE principal_id = ? AND role_id = ? AND scope_key = ?",
                         (principal_id, role_id, scope.lower()))

    def assignments(self) -> list[tuple]:
        """Every assignment: (id, principal_id, principal_type, role_id, scope, created,
        created_by)."""
        return self._all(self._A + "ORDER BY scope_key, created, id")

    def assignments_of(self, principal_ids: list[str]) -> list[tuple]:
        """The assignments of any of these principals."""
        if not principal_ids:
            return []
        marks = ",".join("?" * len(principal_ids))
        return self._all(self._A + f"WHERE principal_id IN ({marks})", tuple(principal_ids))

    def delete_assignment(self, ident: str) -> int:
        return self.con.execute("DELETE FROM role_assignments WHERE id = ?",
                                (ident,)).rowcount

    # -- custom role definitions (0011_custom_roles) -----------------------------------------

    _R = ("SELECT id, name, description, permissions, assignable_scopes, created, created_by, "
          "updated, updated_by FROM role_definitions ")

    def add_role(self, ident: str, name: str, description: str, permissions: str,
                 assignable_scopes: str, by: str) -> None:
        now = self._now()
        self.con.execute(
            "INSERT INTO role_definitions(id, name, name_key, description, permissions, "
            "assignable_scopes, created, created_by, updated, updated_by) "
            "VALUES (?,?,?,?,?,?,?,?,?,?)",
            (ident, name, name.lower(), description, permissions, assignable_scopes, now, by,
             now, by))

    def update_role(self, ident: str, name: str, description: str, permissions: str,
                    assignable_scopes: str, by: str) -> int:
        return self.con.execute(
            "UPDATE role_definitions SET name = ?, name_key = ?, description = ?, "
            "permissions = ?, assignable_scopes = ?, updated = ?, updated_by = ? WHERE id = ?",
            (name, name.lower(), description, permissions, assignable_scopes, self._now(), by,
             ident)).rowcount

    def role(self, ident: str) -> tuple | None:
        """(id, name, description, permissions, assignable_scopes, created, created_by,
        updated, updated_by) by GUID or name (any case)."""
        return self._one(self._R + "WHERE lower(id) = lower(?) OR name_key = lower(?)",
                         (ident, ident))

    def roles(self) -> list[tuple]:
        return self._all(self._R + "ORDER BY name_key")

    def delete_role(self, ident: str) -> int:
        return self.con.execute("DELETE FROM role_definitions WHERE id = ?", (ident,)).rowcount

    def role_in_use(self, role_id: str) -> int:
        """How many assignments use the role."""
        return self._one("SELECT count(*) FROM role_assignments WHERE role_id = ?",
                         (role_id,))[0]
