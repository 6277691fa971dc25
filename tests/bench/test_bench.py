"""`imagestore bench` runs through the CLI in tiny mode and prints its tables (a smoke test;
the real numbers are in benchmarks/README.md, never asserted here)."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from imagestore.bench.report import Goal
from tests.helpers import need, run_imagestore


@pytest.fixture(autouse=True)
def _tools():
    for tool in ("qemu-img", "mkfs.ext4", "debugfs"):
        need(tool)


def _imagestore(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return run_imagestore(*args, check=False, timeout=timeout)


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
    # goals are stated in words, never as internal labels such as "<=1.0 (issue 2)"
    assert "issue" not in body and "<=" not in body
    assert Goal.AT_LEAST_AS_FAST in body and Goal.RECAPTURE in body


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


def test_bench_replicate_tiny_full_incremental_fanout(tmp_path):
    wd = tmp_path / "wd"
    p = _imagestore("bench", "replicate", "--tiny", "--workdir", str(wd), "-o", "json")
    assert p.returncode == 0, p.stderr
    rows = json.loads(p.stdout)
    names = [r["name"] for r in rows]
    assert names[0].startswith("full replication of v1") and names[1].startswith("  vs cp -r")
    assert names[2].startswith("incremental replication of v2")
    assert names[3] == "  vs full replication of v2 -> new region"
    assert names[4].startswith("fan-out of v1 to 3") and names[5].startswith("  vs 3 replications")
    for r in rows:
        assert r["seconds"] > 0 and r["bytes"] > 0 and r["sentBytes"] > 0 and r["cache"] == "cold"
    for r in rows[1::2]:
        assert r["ratio"] > 0
    assert rows[1]["target"] == Goal.AT_LEAST_AS_FAST and rows[3]["target"] == Goal.INCREMENTAL
    full, cp, incr, full2 = rows[:4]
    assert full["sentBytes"] == full["bytes"]  # every record of v1 crossed over
    assert cp["sentBytes"] >= full["bytes"]  # the pack files hold at least those records
    # v2 sends about the changed chunks: more than the changed bytes (whole chunks), far less
    # than a full copy of v2
    assert incr["changedBytes"] > 0
    assert incr["sentBytes"] < full2["sentBytes"] / 2
    assert rows[4]["sentBytes"] == 3 * full["sentBytes"]
    assert "ratio = imagestore time / reference time" in p.stderr
    assert os.listdir(wd) == []  # scratch files cleaned up
    # generated data of a chosen compressibility and change rate
    p = _imagestore("bench", "replicate", "--tiny", "--size", "16M", "--compressibility", "0.5",
                    "--change-rate", "0.05", "--workdir", str(wd), "-o", "json")
    assert p.returncode == 0, p.stderr
    rows = json.loads(p.stdout)
    assert len(rows) == 6 and 0 < rows[2]["sentBytes"] < rows[3]["sentBytes"]
    assert "compressibility 0.5" in p.stderr
    assert os.listdir(wd) == []


def test_bench_chunk_sizes_tiny_rows_per_size(tmp_path):
    wd = tmp_path / "wd"
    p = _imagestore("bench", "chunk-sizes", "--tiny", "--chunk-sizes", "64K,1M", "--workdir",
                    str(wd), "-o", "json")
    assert p.returncode == 0, p.stderr
    rows = json.loads(p.stdout)
    assert [r["chunkSize"] for r in rows] == ["64K", "1M"]
    small, big = rows
    for r in rows:
        assert r["changedBytes"] > 0 and 0 < r["v2NewBytes"] and r["indexBytes"] > 0
        assert r["manifestRawBytes"] == 28 + 28 * r["chunks"] and r["manifestBytes"] > 0
    assert small["changedBytes"] == big["changedBytes"]  # the same v2 for every size
    assert small["chunks"] > big["chunks"]
    assert os.listdir(wd) == []


def test_bench_sparse_rows_keep_holes(tmp_path):
    need("qemu-io")
    p = _imagestore("bench", "sparse", "--workdir", str(tmp_path), "-o", "json")
    assert p.returncode == 0, p.stderr
    rows = json.loads(p.stdout)
    assert len(rows) == 3 and all(r["peakRSS_MiB"] > 0 for r in rows)
    assert rows[1]["allocatedOut"] == 5 << 20  # the 15 TiB disk created back holds its 5 MiB only
    assert rows[0]["target"] == Goal.SPARSE_CAPTURE and rows[2]["target"] == Goal.SPARSE_FAST
