"""A 32 TiB dynamic VHDX with three far-apart patterns: captured through its BAT in seconds,
written back as VHDX, checked by qemu-io; formats and filesystems that cannot hold it are
refused before any byte is written."""

from __future__ import annotations

import os
import subprocess

from tests.helpers import need

TiB = 1 << 40
MiB = 1 << 20
PATTERNS = [(0xA1, 0), (0xB2, 16 * TiB + 5 * MiB), (0xC3, 32 * TiB - 2 * MiB)]


def qemu_io(fmt: str, path: str, cmd: str) -> str:
    need("qemu-io")
    p = subprocess.run(["qemu-io", "-f", fmt, "-c", cmd, path], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    return p.stdout + p.stderr


def test_32tib_vhdx_capture_and_write_back(run, tmp_path):
    need("qemu-img")
    src = str(tmp_path / "giant.vhdx")
    subprocess.run(["qemu-img", "create", "-q", "-f", "vhdx", src, "32T"], check=True)
    for pat, off in PATTERNS:
        qemu_io("vhdx", src, f"write -P {pat} {off} 1M")
    res = run.json("store", "ingest", src)
    assert res["virtualSize"] == 32 * TiB and res["sourceFormat"] == "vhdx-dynamic"
    assert res["dataBytes"] == 3 * MiB and res["chunks"] == 3 * MiB // res["chunkSize"]
    out = str(tmp_path / "back.vhdx")
    run.json("store", "materialize", res["digest"], "--path", out, "--format", "vhdx")
    assert os.stat(out).st_blocks * 512 < 200 * MiB  # sparse: data + BAT, not 32 TiB
    for pat, off in PATTERNS:
        text = qemu_io("vhdx", out, f"read -P {pat} {off} 1M")
        assert "verification failed" not in text.lower(), text
    # holes around the data read as zeros
    text = qemu_io("vhdx", out, f"read -P 0 {16 * TiB} 5M")
    assert "verification failed" not in text.lower()
    info = subprocess.run(["qemu-img", "info", "--output=json", out], capture_output=True, text=True, check=True)
    assert '"virtual-size": 35184372088832' in info.stdout


def test_too_large_refused_before_writing(run, tmp_path):
    src = str(tmp_path / "giant.vhdx")
    subprocess.run(["qemu-img", "create", "-q", "-f", "vhdx", src, "32T"], check=True)
    qemu_io("vhdx", src, "write -P 0x5 1G 64k")
    digest = run.json("store", "ingest", src)["digest"]
    for fmt, text in (("vhd", "2040 GiB"), ("vhd-fixed", "2040 GiB"), ("raw", "16 TiB")):
        out = tmp_path / f"x.{fmt}"
        r = run("store", "materialize", digest, "--path", str(out), "--format", fmt)
        assert r.exit_code == 11, r.stderr
        assert text in r.stderr and r.stderr.count("\n") == 1
        assert not out.exists()
        assert [p for p in os.listdir(tmp_path) if p.startswith(".")] == []
