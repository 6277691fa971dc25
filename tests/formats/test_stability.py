"""Source stability: a source that changes while it is captured is refused, nothing published.

Deterministic: the test hook ``IMAGESTORE_TEST_PAUSE_READ=<marker>`` makes the capture's
reader pause after its first data read (it creates ``<marker>.paused`` and waits for
``<marker>.go``); the test changes the source in that pause. Each case must exit non-zero with
one line naming the source, leave no manifest and no version, and ``store verify`` clean.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from imagestore.formats import SourceChanged, open_disk
from imagestore.formats.base import PAUSE_ENV
from tests.helpers import need, run_imagestore

MiB = 1 << 20
CONFLICT = 5


def make_raw(path: Path, mib: int = 8, seed: int = 1) -> Path:
    """A raw disk with data in every 2 MiB group, so reads continue after the pause."""
    rnd = random.Random(seed)
    with open(path, "wb") as f:
        for _ in range(mib):
            f.write(rnd.randbytes(MiB // 2) + bytes(MiB // 2))
    return path


def make_vhdx(path: Path, tmp: Path) -> Path:
    need("qemu-img")
    raw = make_raw(tmp / f"{path.name}.src")
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "vhdx", "-o", "block_size=1M",
                    str(raw), str(path)], check=True)
    return path


def manifests(store: str) -> list[str]:
    d = os.path.join(store, "regions", "local", "manifests")
    return sorted(f for f in os.listdir(d) if f.endswith(".mf")) if os.path.isdir(d) else []


def paused_run(args: list[str], marker: Path, change) -> subprocess.CompletedProcess:  # noqa: ANN001
    """Run imagestore with the read pause; call ``change()`` while it is paused."""
    env = dict(os.environ, **{PAUSE_ENV: str(marker)})
    p = subprocess.Popen([sys.executable, "-m", "imagestore.cli.main", *args], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not os.path.exists(f"{marker}.paused"):
        if p.poll() is not None or time.monotonic() > deadline:
            out, err = p.communicate()
            pytest.fail(f"capture never paused (exit {p.returncode}): {err}")
        time.sleep(0.01)
    change()
    Path(f"{marker}.go").touch()
    out, err = p.communicate(timeout=120)
    return subprocess.CompletedProcess(args, p.returncode, out, err)


def overwrite_tail(p: Path) -> None:
    with open(p, "r+b") as f:  # same size: only the times and the bytes tell
        f.seek(os.path.getsize(p) - 3 * MiB)
        f.write(b"\x5a" * MiB)


def replace_file(p: Path) -> None:
    tmp = p.with_name(p.name + ".new")
    tmp.write_bytes(p.read_bytes())  # identical bytes, another file
    os.replace(tmp, p)


CHANGES = {
    "truncate": lambda p: os.truncate(p, os.path.getsize(p) // 2),
    "overwrite": overwrite_tail,
    "delete": lambda p: os.unlink(p),
    "replace": replace_file,
}


@pytest.mark.parametrize("fmt", ["raw", "vhdx"])
@pytest.mark.parametrize("change", sorted(CHANGES))
def test_source_changed_mid_ingest_is_refused(tmp_path, store_dir, fmt, change):
    src = make_raw(tmp_path / "disk.raw") if fmt == "raw" else make_vhdx(tmp_path / "disk.vhdx", tmp_path)
    run_imagestore("--store", store_dir, "init")  # the store exists before
    r = paused_run(["--store", store_dir, "store", "ingest", str(src)], tmp_path / "m",
                   lambda: CHANGES[change](src))
    assert r.returncode == CONFLICT, (r.returncode, r.stderr)
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.startswith(f"error: {src}: the file changed while it was being ")
    assert r.stdout == ""
    assert manifests(store_dir) == []
    v = run_imagestore("--store", store_dir, "store", "verify", check=False)
    assert v.returncode == 0, v.stderr


def test_unchanged_source_with_pause_is_captured(tmp_path, store_dir):
    """The control: the same pause without a change publishes, so the hook alone is not what
    makes the cases above fail."""
    src = make_raw(tmp_path / "disk.raw")
    r = paused_run(["--store", store_dir, "store", "ingest", str(src)], tmp_path / "m",
                   lambda: None)
    assert r.returncode == 0, r.stderr
    assert len(manifests(store_dir)) == 1


def test_source_changed_mid_version_create_publishes_no_version(tmp_path, store_dir):
    src = make_raw(tmp_path / "os.raw")
    base = ["--store", store_dir]
    run_imagestore(*base, "sig", "create", "-r", "g")
    run_imagestore(*base, "sig", "image-definition", "create", "-r", "g", "-i", "d", "-p", "P",
                   "-f", "O", "-s", "S", "--os-type", "Linux")
    r = paused_run([*base, "sig", "image-version", "create", "-r", "g", "-i", "d", "-e", "1.0.0",
                    "--os-vhd-uri", str(src)], tmp_path / "m", lambda: overwrite_tail(src))
    assert r.returncode != 0 and "the file changed while it was being captured" in r.stderr, (
        r.returncode, r.stderr)
    assert "Traceback" not in r.stderr
    assert manifests(store_dir) == []
    out = run_imagestore(*base, "sig", "image-version", "list", "-r", "g", "-i", "d")
    assert out.stdout.strip() == "[]", out.stdout
    assert run_imagestore(*base, "store", "verify", check=False).returncode == 0


def test_short_read_is_an_error_not_zeros(tmp_path):
    """In process: a raw file truncated after opening raises SourceChanged on the read that
    crosses the new end, instead of returning zeros; check_unchanged names what changed."""
    src = make_raw(tmp_path / "d.raw", mib=4)
    r = open_disk(str(src))
    try:
        assert r.read(0, MiB) == src.read_bytes()[:MiB]
        r.check_unchanged()  # nothing changed yet
        os.truncate(src, 3 * MiB)
        with pytest.raises(SourceChanged, match="it ends at 3145728"):
            r.read(2 * MiB, 2 * MiB)
        with pytest.raises(SourceChanged, match=r"changed while it was being captured \(size"):
            r.check_unchanged()
    finally:
        r.close()


def test_vhd_metadata_change_detected_with_times_restored(tmp_path):
    """A change that restores size and mtime is still caught: the VHD footer's digest (and
    the change time) differ."""
    need("qemu-img")
    raw = make_raw(tmp_path / "s.raw", mib=4)
    vhd = tmp_path / "d.vhd"
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "vpc", str(raw), str(vhd)],
                   check=True)
    st = os.stat(vhd)
    r = open_disk(str(vhd))
    try:
        with open(vhd, "r+b") as f:
            f.seek(st.st_size - 512 + 72)  # inside the unique id of the footer
            f.write(b"\x00\x01\x02\x03")
        os.utime(vhd, ns=(st.st_atime_ns, st.st_mtime_ns))
        with pytest.raises(SourceChanged, match="change time.*the bytes at offset"):
            r.check_unchanged()
    finally:
        r.close()


@pytest.mark.parametrize("change", ["overwrite", "truncate"])
def test_convert_of_a_changing_source_leaves_no_disk(tmp_path, change):
    """formats.convert: the source changed after the first piece (from the progress callback,
    which runs between reads) -> SourceChanged, and no output file appears."""
    from imagestore.formats.convert import convert

    src = make_raw(tmp_path / "d.raw")
    dst = tmp_path / "out.vhdx"
    calls = []

    def progress(done: int, total: int) -> None:
        if not calls:
            CHANGES[change](src)
        calls.append(done)

    with pytest.raises(SourceChanged, match="changed while it was being (converted|read)"):
        convert(str(src), str(dst), "vhdx", threads=1, progress=progress)
    assert calls and not dst.exists()
    assert [p for p in os.listdir(tmp_path) if p.startswith(".out.vhdx")] == []
