"""`imagestore convert SRC DST`: flags as qemu-img users expect them (-O = --format), JSON
result, one-line errors with their exit codes, no store touched."""

from __future__ import annotations

import json
import os
import random
import subprocess

from tests.helpers import fails, need, run_imagestore

MiB = 1 << 20


def _raw(path, size: int = 6 * MiB) -> str:
    rnd = random.Random(3)
    with open(path, "wb") as f:
        f.truncate(size)
        f.seek(MiB)
        f.write(rnd.randbytes(MiB + 4096))
    return str(path)


def test_convert_with_format_and_qemu_style_O(run, store_dir, tmp_path):
    need("qemu-img")
    src = _raw(tmp_path / "a.raw")
    out1, out2 = str(tmp_path / "b.vhdx"), str(tmp_path / "c.vhdx")
    res = run.json("convert", src, out1, "--format", "vhdx", "-o", "json")
    assert res == {"source": src, "sourceFormat": "raw", "path": out1, "format": "vhdx",
                   "virtualSize": 6 * MiB, "readBytes": MiB + 4096, "writtenBytes": MiB + 4096}
    r = run("convert", "-O", "VHDX", src, out2)  # case-insensitive, as --format elsewhere
    assert r.exit_code == 0, r.stderr
    with open(out1, "rb") as a, open(out2, "rb") as b:
        assert len(a.read()) == len(b.read())
    p = subprocess.run(["qemu-img", "compare", "-f", "raw", "-F", "vhdx", src, out2],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stdout
    # the default output format is raw, like qemu-img's
    out3 = str(tmp_path / "d.img")
    assert run.json("convert", out2, out3)["format"] == "raw"
    with open(src, "rb") as a, open(out3, "rb") as b:
        assert a.read() == b.read()
    assert not os.path.exists(store_dir)  # convert needs no store and makes none


def test_convert_errors_are_one_line_with_exit_codes(run, tmp_path):
    src = _raw(tmp_path / "a.raw")
    dst = tmp_path / "b.raw"
    dst.write_bytes(b"old")
    fails(run("convert", src, str(dst)), 5, str(dst), "file exists", "--force")
    assert dst.read_bytes() == b"old"
    r = run("convert", src, str(dst), "--force")
    assert r.exit_code == 0 and dst.stat().st_size == 6 * MiB
    fails(run("convert", src, src, "--force"), 3, "is the source image itself")
    fails(run("convert", str(tmp_path / "missing.vhd"), str(tmp_path / "x.raw")), 4, "missing.vhd")
    (tmp_path / "empty").write_bytes(b"")
    fails(run("convert", str(tmp_path / "empty"), str(tmp_path / "x.raw")), 6, "empty")
    r = run("convert", src, str(tmp_path / "x.qed"), "-O", "qed")
    assert r.exit_code == 2 and "qed" in r.stderr  # a usage error, as for every --format
    assert sorted(os.listdir(tmp_path)) == ["a.raw", "b.raw", "empty"]


def test_convert_help_and_console_script(tmp_path):
    p = run_imagestore("convert", "--help")
    assert "-O, --format" in p.stdout and "Example:" in p.stdout
    src = _raw(tmp_path / "a.raw")
    p = run_imagestore("convert", src, str(tmp_path / "b.vhd"), "-O", "vhd", "-o", "json")
    assert json.loads(p.stdout)["format"] == "vhd"
