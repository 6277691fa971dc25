"""Capture intents on a PostgreSQL gallery shared by two "hosts" (tests/gallery/
test_postgres.py's pattern): a capture on host a is SIGKILLed inside the transaction that
would commit its version row, i.e. after its manifest is published. Host b's gc leaves it
(a's ``local`` is a's own directory, and a's pid means nothing on b); a's gc removes the
orphan manifest and frees its chunks; a's retry then succeeds. A manifest a published with
``store ingest`` survives both."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from tests.gallery.test_postgres import DEF, Host
from tests.helpers import make_random

pytestmark = pytest.mark.one_pass

V = ["sig", "image-version", "create", "-r", "g", "-i", "d", "-e", "1.0.0", "--os-vhd-uri"]

#: the capture, killed where its version row would commit (the intent ends in that
#: transaction, so the row never lands and the manifest is left published)
KILLED = textwrap.dedent("""
    import os, sys
    from imagestore.gallery import capture_intents
    capture_intents.CaptureIntent.end = lambda self: os.kill(os.getpid(), 9)
    from imagestore.cli.main import main
    sys.argv = ["imagestore", *sys.argv[1:]]
    main()
""")


def _manifests(store: str) -> set[str]:
    d = os.path.join(store, "regions", "local", "manifests")
    return {n[:-3] for n in os.listdir(d) if n.endswith(".mf")}


def test_killed_capture_on_postgres_is_collected_by_its_own_store(pg_url, tmp_path):
    a, b = Host(tmp_path, "a", pg_url), Host(tmp_path, "b", pg_url)
    src = make_random(str(tmp_path / "os.raw"), 2, seed=5)
    kept = make_random(str(tmp_path / "kept.raw"), 2, seed=6)
    a.json("sig", "create", "-r", "g")
    a.json("sig", "image-definition", "create", "-r", "g", "-i", "d", *DEF)
    user = a.json("store", "ingest", kept)["digest"]
    p = subprocess.run([sys.executable, "-c", KILLED, "--store", a.store, *V, src],
                       env=a.env, capture_output=True, text=True, timeout=120)
    assert p.returncode == -9, (p.returncode, p.stderr)
    orphans = _manifests(a.store) - {user}
    assert len(orphans) == 1, _manifests(a.store)
    assert a.json("store", "verify")["manifestsChecked"] == 2
    b.json("store", "gc")  # not b's to clean
    assert _manifests(a.store) == orphans | {user}
    gc = a.json("store", "gc")
    assert gc["removedChunks"] > 0, gc
    assert _manifests(a.store) == {user}
    assert a.json("store", "verify")["unreferencedChunks"] == 0
    a(*V, src)
    v = a.json("sig", "image-version", "show", "-r", "g", "-i", "d", "-e", "1.0.0")
    assert v["properties"]["provisioningState"] == "Succeeded", v
    assert _manifests(a.store) == orphans | {user}
