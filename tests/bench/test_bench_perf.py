"""`imagestore bench capture` reports wall and CPU seconds (user, sys) per path, cold and warm,
and with --peers the peers it found (borg, restic) with their stored bytes, naming what it
skipped. Smoke tests in tiny mode: fields and shapes, never a timed assertion."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from tests.helpers import need, run_imagestore


@pytest.fixture(autouse=True)
def _tools():
    for tool in ("qemu-img", "mkfs.ext4", "debugfs"):
        need(tool)


def _bench(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return run_imagestore("bench", *args, check=False, timeout=120, env=env)


def test_capture_both_caches_reports_cpu_and_pair_ratios(tmp_path):
    wd = tmp_path / "wd"
    p = _bench("capture", "--tiny", "--size", "16M", "--cache", "both", "--only", "capture,disks", "--workdir", str(wd),
               "-o", "json")
    assert p.returncode == 0, p.stderr
    rows = json.loads(p.stdout)
    for mode in ("cold", "warm"):
        names = [r["name"] for r in rows if r["cache"] == mode]
        assert "capture dynamic VHD -> store (ingest)" in names
        assert "create disk store -> vhdx (materialize)" in names
    timed = [r for r in rows if "user" in r]
    assert len(timed) == len(rows)  # every row carries its CPU seconds
    for r in timed:
        assert r["user"] >= 0 and r["sys"] >= 0 and r["cpuPerGB"] is not None
    ours = [r for r in rows if r["tool"] == "imagestore" and "capture raw" in r["name"]]
    assert all(r["user"] + r["sys"] > 0 for r in ours)  # our own threads' CPU is counted
    q = [r for r in rows if r["tool"] == "qemu-img"]
    assert q and all(r["user"] + r["sys"] > 0 for r in q)  # the child's CPU is counted
    for r in rows:
        if r["name"].startswith("  vs "):
            assert r["pairRatio"] > 0 and r["ratio"] > 0
    assert "cache both" in p.stderr and "best of 1" in p.stderr
    assert os.listdir(wd) == []


def _path_without(tools: tuple[str, ...], where) -> str:
    """A PATH whose directories hold everything of today's PATH but ``tools``."""
    bindir = where / "bin"
    bindir.mkdir()
    for d in os.environ.get("PATH", "").split(os.pathsep):
        if not os.path.isdir(d):
            continue
        for name in os.listdir(d):
            src = os.path.join(d, name)
            if name in tools or (bindir / name).exists() or not os.access(src, os.X_OK):
                continue
            os.symlink(src, bindir / name)
    return str(bindir)


def test_peers_missing_are_named_and_nothing_is_installed(tmp_path):
    env = dict(os.environ, PATH=_path_without(("borg", "restic"), tmp_path))
    p = _bench("capture", "--tiny", "--size", "16M", "--cache", "warm", "--peers", "--only", "none",
               "--workdir", str(tmp_path / "wd"), "-o", "json", env=env)
    assert p.returncode == 0, p.stderr
    rows = json.loads(p.stdout)
    assert rows == []  # only the peers' comparison was asked for, and there are none
    assert "peers: none; skipped (not installed): borg, restic" in p.stderr
    p = _bench("capture", "--only", "capture,typo", env=env)
    assert p.returncode == 3 and "--only: 'typo'" in p.stderr and p.stderr.count("\n") == 1
    assert shutil.which("borg", path=env["PATH"]) is None  # still not there


@pytest.mark.one_pass
def test_peers_rows_with_stored_bytes(tmp_path):
    for tool in ("borg", "restic"):
        need(tool)
    wd = tmp_path / "wd"
    p = _bench("capture", "--tiny", "--size", "16M", "--cache", "warm", "--peers", "--only", "none",
               "--workdir", str(wd), "-o", "json")
    assert p.returncode == 0, p.stderr
    rows = json.loads(p.stdout)
    assert "peers: borg, restic" in p.stderr and "skipped" not in p.stderr
    byname = {}
    for r in rows:
        byname.setdefault(r["name"], []).append(r)
    first = byname["capture raw -> store (peers' comparison)"][0]
    growth = byname["capture v2 after v1 -> store (growth)"][0]
    assert first["storedBytes"] > 0 and growth["storedBytes"] > 0
    assert growth["storedBytes"] < first["storedBytes"]  # v2 adds its changes, not a copy
    tools = {r["tool"] for r in rows if r["name"].startswith("  vs borg") or r["name"].startswith("  vs restic")}
    assert tools == {"borg", "restic"}
    for r in rows:
        if r["tool"] in ("borg", "restic") and "storedBytes" in r:
            assert r["storedBytes"] > 0 and r["storedRatio"] > 0
    assert any(r["name"].startswith("  vs borg extract") for r in rows)
    assert os.listdir(wd) == []
