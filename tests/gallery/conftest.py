"""The gallery tests run on SQLite (the store's gallery.sqlite), or — with
``IMAGESTORE_TEST_DATABASE=postgres`` — each against a fresh PostgreSQL database
(``IMAGESTORE_DATABASE_URL`` set for the test and every process it starts)."""

from __future__ import annotations

import pytest

from ..pg import gallery_tests_on_postgres


@pytest.fixture(autouse=True)
def _gallery_database(request, monkeypatch):
    if gallery_tests_on_postgres():
        marker = request.node.get_closest_marker("sqlite_gallery")
        if marker is not None:
            pytest.skip(f"SQLite only: {marker.args[0] if marker.args else 'per-store database'}")
        url = request.getfixturevalue("pg_cluster").new_database()
        monkeypatch.setenv("IMAGESTORE_DATABASE_URL", url)
    yield
