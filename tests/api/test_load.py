"""A short run of the load test (`imagestore bench api` records the real numbers in
benchmarks/README.md): concurrent clients, mixed reads and writes, zero 5xx, no lost write,
every version created through the long-running PUT Succeeded."""

from __future__ import annotations

import pytest

from imagestore.bench.api_load import run_load

pytestmark = pytest.mark.one_pass


def test_short_load_no_5xx_no_lost_writes(server, tmp_path):
    res = run_load(server.url, server.token(), str(tmp_path), clients=8, duration=3,
                   write_every=10, versions=2)
    s = res.summary()
    assert s["serverErrors"] == 0, s
    # how many writes fit in 3 s depends on the machine's load; that some were acked and none
    # lost does not
    assert s["writesLost"] == 0 and s["writesAcked"] >= 1, s
    assert s["versionsCreated"] == 2 and s["versionsFailed"] == 0, s
    assert set(s["statuses"]) <= {"200", "201"}, s
    # every acknowledged definition is listed (paging at page size 2 walks them all)
    c = server.client()
    names, url = set(), f"{res.writes_acked[0].rsplit('/', 1)[0]}?api-version=2026-03-03"
    while url:
        page = c.get(url).json()
        names |= {d["name"] for d in page["value"]}
        url = page.get("nextLink")
    assert {w.rsplit("/", 1)[1] for w in res.writes_acked} <= names
