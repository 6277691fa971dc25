"""Galleries and their image definitions (``galleries``, ``images``)."""

from __future__ import annotations

from ...errors import NotFound
from ..validate import iso, now_utc
from .base import RepositoryBase, sub_of
from .rows import DefinitionRow, GalleryRow, dumps

_I_SQL = (
    f"SELECT i.*, g.rg AS rg, g.name AS gallery, {sub_of('g')} FROM images i "
    "JOIN galleries g ON g.id = i.gallery_id "
)


class GalleriesMixin(RepositoryBase):
    """Galleries."""

    def find_gallery(self, rg: str, name: str) -> GalleryRow | None:
        """The gallery, or None."""
        return self._find_named("galleries", GalleryRow, rg, name)

    def gallery(self, rg: str, name: str) -> GalleryRow:
        """The gallery; NotFound when there is none."""
        row = self.find_gallery(rg, name)
        if row is None:
            raise NotFound(f"gallery '{name}' not found in resource group '{rg}'",
                           target="galleryName")
        return row

    def list_galleries(self, rg: str | None = None) -> list[GalleryRow]:
        """Galleries of a resource group (all when ``rg`` is None), by name."""
        return self._list_named("galleries", GalleryRow, rg)

    def insert_gallery(self, rg: str, name: str, location: str, tags: dict, props: dict) -> None:
        """(In a transaction.) A new gallery row."""
        self.con.execute(
            "INSERT INTO galleries(rg, name, location, tags, props, created) VALUES (?,?,?,?,?,?)",
            (rg, name, location, dumps(tags), dumps(props), iso(now_utc())))

    def update_gallery(self, pk: int, props: dict, tags: dict) -> None:
        """(In a transaction.) New properties and tags."""
        self.con.execute("UPDATE galleries SET props = ?, tags = ? WHERE id = ?",
                         (dumps(props), dumps(tags), pk))

    def delete_gallery(self, pk: int) -> None:
        """(In a transaction.)"""
        self.con.execute("DELETE FROM galleries WHERE id = ?", (pk,))


class DefinitionsMixin(GalleriesMixin):
    """Image definitions (a definition names its gallery)."""

    def find_definition(self, gallery: GalleryRow, name: str) -> DefinitionRow | None:
        """The gallery's definition ``name``, or None."""
        row = self._one(_I_SQL + "WHERE i.gallery_id = ? AND i.name = ?", (gallery.id, name))
        return DefinitionRow.from_sql(row) if row else None

    def definition(self, rg: str, gallery: str, name: str) -> DefinitionRow:
        """The definition; NotFound naming the gallery or the definition."""
        g = self.gallery(rg, gallery)
        row = self.find_definition(g, name)
        if row is None:
            raise NotFound(f"image definition '{gallery}/{name}' not found in resource group "
                           f"'{rg}'", target="galleryImageName")
        return row

    def list_definitions(self, gallery: GalleryRow) -> list[DefinitionRow]:
        """The gallery's definitions, by name."""
        rows = self._all(_I_SQL + "WHERE i.gallery_id = ? ORDER BY i.name", (gallery.id,))
        return [DefinitionRow.from_sql(r) for r in rows]

    def definition_names(self, gallery_pk: int) -> list[str]:
        """Names of the gallery's definitions."""
        return [r[0] for r in self._all(
            "SELECT name FROM images WHERE gallery_id = ? ORDER BY name", (gallery_pk,))]

    def definition_with_identifier(self, gallery_pk: int, publisher: str, offer: str,
                                   sku: str) -> str | None:
        """Name of the gallery's definition with this publisher/offer/sku, if any."""
        row = self._one("SELECT name FROM images WHERE gallery_id = ? AND publisher = ? AND "
                        "offer = ? AND sku = ?", (gallery_pk, publisher, offer, sku))
        return row[0] if row else None

    def insert_definition(self, gallery_pk: int, name: str, location: str, tags: dict,
                          props: dict) -> None:
        """(In a transaction.) ``props["identifier"]`` gives publisher, offer and sku."""
        ident = props["identifier"]
        self.con.execute(
            "INSERT INTO images(gallery_id, name, location, tags, props, publisher, offer, sku, "
            "created) VALUES (?,?,?,?,?,?,?,?,?)",
            (gallery_pk, name, location, dumps(tags), dumps(props), ident["publisher"],
             ident["offer"], ident["sku"], iso(now_utc())))

    def update_definition(self, pk: int, props: dict, tags: dict) -> None:
        """(In a transaction.)"""
        self.con.execute("UPDATE images SET props = ?, tags = ? WHERE id = ?",
                         (dumps(props), dumps(tags), pk))

    def delete_definition(self, pk: int) -> None:
        """(In a transaction.)"""
        self.con.execute("DELETE FROM images WHERE id = ?", (pk,))
