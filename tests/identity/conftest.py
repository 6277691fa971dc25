"""Fixtures of the identity tests."""

from __future__ import annotations

import pytest

from imagestore.home import Home
from imagestore.identity import directory


@pytest.fixture(params=["sqlite", "postgres"])
def directory_of(request, tmp_path, monkeypatch):
    """An open directory of a new store, on SQLite and on PostgreSQL (``d.home`` is its
    store); a user ``u@x.example`` exists."""
    if request.param == "postgres":
        monkeypatch.setenv("IMAGESTORE_DATABASE_URL",
                           request.getfixturevalue("pg_cluster").new_database())
    home = Home.open(str(tmp_path / "store"))
    with directory.open_directory(home) as d:
        d.home = home
        directory.create_user(d, "u@x.example", "U")
        yield d
    home.close()
