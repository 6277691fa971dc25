"""``vm generalize --deprovision``: a best-effort, offline cleanup of a Linux OS disk, in the
spirit of ``waagent -deprovision`` / ``virt-sysprep`` but much smaller. For every ext2/3/4
filesystem on the raw OS disk (whole disk, or MBR/GPT partitions) it uses ``debugfs -w``
(e2fsprogs) to remove the SSH host keys (``/etc/ssh/ssh_host_*``), empty
``/etc/machine-id``, remove cloud-init's ``/var/lib/cloud/instance`` link (so cloud-init
treats the next boot as a first boot) and the regular files directly in ``/var/log``. It is NOT a guarantee that no secret or identity is left (user
accounts, shell histories elsewhere, other filesystems such as XFS or LVM, and qcow2 OS
disks are not touched); it reports what it removed."""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess

from ..errors import InvalidArgument, NotFound

EXT_MAGIC_OFFSET = 1024 + 56


def _partitions(path: str) -> list[int]:
    """Byte offsets of candidate filesystems: 0 and each MBR/GPT partition."""
    out = [0]
    with open(path, "rb") as fh:
        mbr = fh.read(512)
        if len(mbr) == 512 and mbr[510:512] == b"\x55\xaa":
            for i in range(4):
                e = mbr[446 + 16 * i: 462 + 16 * i]
                ptype, lba = e[4], struct.unpack("<I", e[8:12])[0]
                if ptype == 0xEE:
                    fh.seek(512)
                    hdr = fh.read(92)
                    if hdr[:8] == b"EFI PART":
                        start, count, size = struct.unpack("<QII", hdr[72:88])
                        fh.seek(start * 512)
                        table = fh.read(min(count, 128) * size)
                        for j in range(min(count, 128)):
                            ent = table[j * size:(j + 1) * size]
                            if ent[:16] != b"\0" * 16:
                                out.append(struct.unpack("<Q", ent[32:40])[0] * 512)
                elif ptype and lba:
                    out.append(lba * 512)
    return out


def _is_ext(path: str, offset: int) -> bool:
    with open(path, "rb") as fh:
        fh.seek(offset + EXT_MAGIC_OFFSET)
        return fh.read(2) == b"\x53\xef"


def _debugfs(dev: str, cmds: list[str]) -> str:
    p = subprocess.run(["debugfs", "-w", "-f", "-", dev], input="\n".join(cmds) + "\n",
                       capture_output=True, text=True)
    return p.stdout + p.stderr


def deprovision_disk(path: str, fmt: str) -> list[str]:
    """Clean the ext filesystems of a raw OS disk; returns what was removed."""
    if fmt != "raw":
        raise InvalidArgument(f"--deprovision works on raw OS disks only; this VM's OS disk is "
                              f"{fmt} (make the VM with the copy OS disk mode)",
                              target="properties.storageProfile.osDisk")
    if shutil.which("debugfs") is None:
        raise NotFound("debugfs is not installed (Debian package 'e2fsprogs')")
    removed: list[str] = []
    for off in _partitions(path):
        if not _is_ext(path, off):
            continue
        dev = f"{path}?offset={off}" if off else path
        listing = _debugfs(dev, ["ls -p /etc/ssh"])
        names = re.findall(r"^/\d+/\d+/\d+/\d+/([^/]+)/", listing, re.M)
        ssh = [n for n in names if n.startswith("ssh_host_")]
        cmds = [f"rm /etc/ssh/{n}" for n in ssh]
        cmds.append("rm /etc/machine-id")
        cmds.append("write /dev/null /etc/machine-id")
        logs = _debugfs(dev, ["ls -p /var/log"])
        for line in logs.splitlines():
            m = re.match(r"^/\d+/(\d+)/\d+/\d+/([^/]+)/", line)
            if m and m.group(1).startswith("10") and m.group(2) not in (".", ".."):
                cmds.append(f"rm /var/log/{m.group(2)}")
                removed.append(f"{off}:/var/log/{m.group(2)}")
        cmds += ["rm /var/lib/cloud/instance", "rmdir /var/lib/cloud/instance"]
        _debugfs(dev, cmds)
        removed += [f"{off}:/etc/ssh/{n}" for n in ssh] + [f"{off}:/etc/machine-id (emptied)",
                                                          f"{off}:/var/lib/cloud/instance"]
        os.sync()
    return removed
