"""`imagestore bench` runs through the CLI in tiny mode and prints its tables (a smoke test;
the real numbers are in benchmarks/README.md, never asserted here)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    not all(shutil.which(t) for t in ("qemu-img", "mkfs.ext4")),
    reason="qemu-img and mkfs.ext4 are needed (.ci/run installs qemu-utils and e2fsprogs)",
)


def _imagestore(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "imagestore.cli.main", *args],
        capture_output=True, text=True, timeout=timeout,
    )


def test_bench_capture_tiny_prints_a_table_with_ratios(tmp_path):
    wd = tmp_path / "wd"
    p = _imagestore("bench", "capture", "--tiny", "--workdir", str(wd), "-o", "table")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    header = lines[0].split()
    for col in ("Name", "Tool", "Seconds", "Bytes", "MB/s", "Ratio"):
        assert col in header, header
    assert set(lines[1].replace(" ", "")) == {"-"}
    body = "\n".join(lines[2:])
    for what in ("capture raw -> store", "vs qemu-img convert -O raw", "vs cp --sparse=always",
                 "capture dynamic VHD", "re-capture", "create disk store -> raw",
                 "create disk store -> vhdx", "convert dynamic VHD -> fixed VHD"):
        assert what in body, what
    # every reference row carries a positive ratio
    ratio_col = lines[0].index("Ratio")
    refs = [ln for ln in lines[2:] if ln.startswith("  vs ")]
    assert refs
    for ln in refs:
        assert float(ln[ratio_col:].split()[0]) > 0, ln
    assert "ratio = imagestore time / reference time" in p.stderr
    assert os.listdir(wd) == []  # scratch files cleaned up


def test_bench_machine_tiny_json(tmp_path):
    p = _imagestore("bench", "machine", "--tiny", "--workdir", str(tmp_path), "-o", "json")
    assert p.returncode == 0, p.stderr
    rows = json.loads(p.stdout)
    names = [r["name"] for r in rows]
    assert any("write + fsync" in n for n in names)
    assert [r["cache"] for r in rows if r["name"] == "sequential read to /dev/null"] == ["cold", "warm"]
    for r in rows:
        assert r["seconds"] >= 0 and r["bytes"] > 0 and "ratio" in r and "MB/s" in r


def test_bench_bad_input_is_one_line(tmp_path):
    p = _imagestore("bench", "capture", "--tiny", "--image", str(tmp_path / "missing.raw"))
    assert p.returncode != 0
    assert p.stderr.strip().count("\n") == 0 and "missing.raw" in p.stderr
    p = _imagestore("bench", "chunk-sizes", "--tiny", "--chunk-sizes", "3K")
    assert p.returncode != 0 and "--chunk-size" in p.stderr
