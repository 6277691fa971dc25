"""The hostile corpus through the real CLI: every malformed file gives its one-line error and
documented exit code, and the store is left exactly as it was."""

from __future__ import annotations

import os

import pytest

from fixtures import hostile_qcow2, hostile_vhd, hostile_vhdx
from tests.helpers import store_tree_snapshot


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> list[tuple[str, str]]:
    out = []
    for gen, sub in ((hostile_vhd, "vhd"), (hostile_vhdx, "vhdx"), (hostile_qcow2, "qcow2")):
        d = str(tmp_path_factory.mktemp(f"hostile-{sub}"))
        out += [(os.path.join(d, name), expect) for name, expect in gen.generate(d)]
    return out


def test_corpus_is_large_enough(corpus):
    assert len(corpus) >= 30


def test_every_hostile_file_refused_cleanly(run, corpus, tmp_path):
    seed = tmp_path / "seed.raw"
    seed.write_bytes(b"\x01" * 4096)
    run.json("store", "ingest", str(seed))
    before = store_tree_snapshot(run.store)
    failures = []
    for path, expect in corpus:
        r = run("store", "ingest", path)
        ok = (
            r.exit_code in (4, 6)
            and r.stderr.startswith("error: ")
            and r.stderr.count("\n") == 1
            and expect in r.stderr
            and "Traceback" not in r.stderr
        )
        if not ok:
            failures.append((os.path.basename(path), r.exit_code, r.stderr.strip(), expect))
    assert not failures, failures
    assert store_tree_snapshot(run.store) == before
