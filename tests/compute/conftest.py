"""Fixtures of the compute tests: the boot fixture disks (built offline by
fixtures/vm/build-boot-disks.sh, cached under build/vm-fixture/<hash of the scripts>), a
gallery with Gen1 / Gen2 Trusted Launch / specialized definitions, SSH keys."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIXTURE_DIR = ROOT / "fixtures" / "vm"
MiB = 1 << 20
IN_CI = bool(os.environ.get("CI") or os.environ.get("IMAGESTORE_CI"))
BOOT_TOOLS = ("qemu-system-x86_64", "swtpm", "sfdisk", "mkfs.fat", "mcopy", "syslinux", "cpio",
              "dpkg-deb", "apt-get")
KEY = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ0Ht7kGlTXvyyoqjX7cJ9ZB8vPj1n8GJtY0pN7pBfZa "
       "tester@imagestore")


def missing_or_fail(what: str) -> None:
    """A missing boot prerequisite: a failure in CI (.ci/run installs it), a skip elsewhere."""
    if IN_CI:
        pytest.fail(f"{what} (scripts/setup.sh installs it)")
    pytest.skip(what)


def fixture_hash() -> str:
    h = hashlib.sha256()
    for name in ("build-boot-disks.sh", "init.sh"):
        h.update((FIXTURE_DIR / name).read_bytes())
    return h.hexdigest()[:16]


@pytest.fixture(scope="session")
def boot_disks() -> dict[str, str]:
    """{'gen1': path, 'gen2': path} of the fixture disks, built once per script version."""
    for tool in BOOT_TOOLS:
        if shutil.which(tool) is None:
            missing_or_fail(f"{tool} is not installed")
    if not os.path.isfile("/usr/share/OVMF/OVMF_CODE_4M.secboot.fd"):
        missing_or_fail("OVMF (Debian package ovmf) is not installed")
    out = ROOT / "build" / "vm-fixture" / fixture_hash()
    if not (out / "gen2.raw").exists():
        p = subprocess.run(["bash", str(FIXTURE_DIR / "build-boot-disks.sh"), str(out)],
                           capture_output=True, text=True, timeout=600)
        if p.returncode != 0:
            pytest.fail(f"boot fixture build failed: {p.stderr[-2000:]}")
    return {"gen1": str(out / "gen1.raw"), "gen2": str(out / "gen2.raw")}


def data_disk(path: Path, marker: str, size: int = 8 * MiB) -> str:
    """A raw data disk whose first bytes are ``marker`` (the guest prints them)."""
    with open(path, "wb") as fh:
        fh.truncate(size)
        fh.write(marker.encode())
    return str(path)


def small_os_disk(path: Path, size: int = 4 * MiB) -> str:
    """A tiny non-bootable OS disk, for the rule tests that never boot."""
    with open(path, "wb") as fh:
        fh.truncate(size)
        fh.write(b"\x33" * 4096)
    return str(path)


@pytest.fixture
def ssh_key(tmp_path) -> str:
    p = tmp_path / "id.pub"
    p.write_text(KEY + "\n")
    return str(p)
