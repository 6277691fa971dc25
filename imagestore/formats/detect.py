"""Format detection by content, and the refusal of everything that is not a supported disk.

Supported sources are VHDX (``vhdxfile`` at offset 0), qcow2 versions 2 and 3 (``QFI\xfb``
and the version at offset 0), VHD (``conectix`` at offset 0 for
dynamic and differencing disks, a 512-byte footer at the end for fixed ones) and raw disks.
Anything else is refused with :class:`BadImage` naming what the file is:

- other disk image formats (qcow version 1 and qcow2 versions other than 2 and 3, QED, VMDK sparse extents and descriptors, VDI,
  Parallels, LUKS) and ISO 9660 / UDF optical images, by their magic numbers;
- compressed files and archives (gzip, xz, zstd, bzip2, lz4, zip, 7z, tar);
- a damaged VHD footer: a ``conectix`` cookie near the end of the file but not where a footer
  starts (a truncated fixed VHD, or one with bytes appended), or a footer whose checksum
  fails (reported by the VHD reader);
- a file whose extension promises a container (``.vhd``/``.avhd``: VHD, ``.vhdx``/``.avhdx``:
  VHDX) that its content does not have;
- as a raw disk: a file whose first 4 KiB are text (valid UTF-8 without NUL or control
  characters, with a line break: no disk image starts like that, a boot sector, partition
  table or file system superblock has binary fields and zeros), or whose size is not a whole
  number of 512-byte sectors.

``source_format="raw"`` skips all of it: the caller says the bytes are the disk.
"""

from __future__ import annotations

import os
import struct

from ..errors import BadImage
from .source import pread_any

#: accepted values of ``source_format``
SOURCE_FORMATS = ("auto", "raw")

SECTOR = 512
TEXT_PROBE = 4096
#: where a damaged VHD footer's cookie is looked for: the last this many bytes
FOOTER_PROBE = 1024

VHD_COOKIE = b"conectix"
VHDX_SIGNATURE = b"vhdxfile"
QCOW_MAGIC = b"QFI\xfb"

#: the extensions that promise a container, and the formats that keep the promise
PROMISES = {
    ".vhd": ("VHD", ("vhd", "vhd-fixed")),
    ".avhd": ("VHD", ("vhd", "vhd-fixed")),
    ".vhdx": ("VHDX", ("vhdx",)),
    ".avhdx": ("VHDX", ("vhdx",)),
    ".qcow2": ("qcow2", ("qcow2",)),
}

_QEMU_HINT = "convert it first, e.g. `qemu-img convert -O vhdx {name} {stem}.vhdx`"


def _refuse(path: str, what: str, hint: str) -> BadImage:
    return BadImage(f"{path}: this is {what}, not a supported disk image (raw, VHD, VHDX or "
                    f"qcow2); "
                    f"{hint}")


def _foreign(path: str, head: bytes, size: int, iso: bytes) -> BadImage | None:
    """The error for a file that is recognisably something else, or None."""
    name = os.path.basename(path)
    stem = name.rsplit(".", 1)[0] if "." in name else name
    convert = _QEMU_HINT.format(name=name, stem=stem)
    if head[:4] == b"QFI\xfb":
        version = struct.unpack_from(">I", head, 4)[0] if len(head) >= 8 else 0
        kind = ("a qcow (version 1) image" if version == 1
                else f"a qcow2 image of version {version} (2 and 3 are supported)")
        return _refuse(path, kind, convert)
    if head[:4] == b"QED\x00":
        return _refuse(path, "a QED image", convert)
    if head[:4] == b"KDMV":
        return _refuse(path, "a VMDK image (sparse extent)", convert)
    if head[:4] == b"COWD":
        return _refuse(path, "a VMDK image (ESX sparse extent)", convert)
    text = head[:1024].lstrip(b"\xef\xbb\xbf \t\r\n")
    if text.startswith(b"# Disk DescriptorFile"):
        return _refuse(path, "a VMDK descriptor (a text file naming the extent files)",
                       "convert the VMDK with qemu-img, e.g. "
                       f"`qemu-img convert -O vhdx {name} {stem}.vhdx`")
    if len(head) >= 68 and struct.unpack_from("<I", head, 64)[0] == 0xBEDA107F:
        return _refuse(path, "a VirtualBox VDI image", convert)
    if head[:16] in (b"WithoutFreeSpace", b"WithouFreSpacExt"):
        return _refuse(path, "a Parallels image", convert)
    if head[:6] == b"LUKS\xba\xbe":
        return _refuse(path, "a LUKS-encrypted volume",
                       "open it with cryptsetup and capture the decrypted device")
    if iso[:5] == b"CD001":
        return _refuse(path, "an ISO 9660 CD/DVD image",
                       "a disk image holds a partitioned disk, an ISO a CD's file system; to "
                       "capture its bytes as a raw disk anyway, force the source format raw")
    if iso[:5] in (b"BEA01", b"NSR02", b"NSR03"):
        return _refuse(path, "a UDF optical disc image",
                       "to capture its bytes as a raw disk anyway, force the source format raw")
    archives = (
        (b"\x1f\x8b", "a gzip-compressed file", "gunzip"),
        (b"\xfd7zXZ\x00", "an xz-compressed file", "unxz"),
        (b"\x28\xb5\x2f\xfd", "a zstd-compressed file", "unzstd"),
        (b"\x04\x22\x4d\x18", "an lz4-compressed file", "unlz4"),
        (b"PK\x03\x04", "a zip archive", "unzip"),
        (b"7z\xbc\xaf\x27\x1c", "a 7z archive", "7z x"),
    )
    for magic, what, tool in archives:
        if head.startswith(magic):
            return _refuse(path, what, f"decompress it first (`{tool} {name}`)")
    if head[:3] == b"BZh" and head[3:4].isdigit() and head[3:4] != b"0" and head[4:10] in (
        b"\x31\x41\x59\x26\x53\x59", b"\x17\x72\x45\x38\x50\x90"
    ):
        return _refuse(path, "a bzip2-compressed file", f"decompress it first (`bunzip2 {name}`)")
    if head[257:262] == b"ustar":
        return _refuse(path, "a tar archive", f"extract the disk image first (`tar xf {name}`)")
    return None


def _damaged_footer(path: str, tail: bytes, size: int) -> BadImage | None:
    """A ``conectix`` cookie in the last KiB that is not where a footer starts."""
    base = size - len(tail)
    pos = tail.find(VHD_COOKIE)
    while pos != -1:
        at = base + pos
        if at not in (size - 512, size - 511):
            after = tail[pos:]
            # a footer's features field has bit 1 set and its version is 1.0 (spec); with
            # fewer than 16 bytes left only a size off the 512-byte grid tells
            looks = (
                len(after) >= 16
                and struct.unpack_from(">I", after, 8)[0] & 0x2
                and struct.unpack_from(">I", after, 12)[0] == 0x00010000
            ) or (len(after) < 16 and size % SECTOR)
            if looks:
                if at > size - 512:
                    return BadImage(
                        f"{path}: damaged VHD footer: its 'conectix' cookie is at offset {at}, "
                        f"{size - at} bytes before the end of the file, and a footer is 512 "
                        f"bytes (a fixed VHD that was truncated?)")
                return BadImage(
                    f"{path}: damaged VHD: a footer at offset {at} is followed by "
                    f"{size - at - 512} bytes that are not part of a VHD (a fixed VHD with "
                    f"data appended?)")
        pos = tail.find(VHD_COOKIE, pos + 1)
    return None


_CONTROL = bytes(c for c in range(32) if c not in (9, 10, 12, 13)) + b"\x7f"


def _is_text(head: bytes) -> bool:
    """Text: valid UTF-8 without NUL or control characters (other than tab, line and form
    feeds), with at least one line break, and not one repeated byte (a fill pattern)."""
    if b"\n" not in head or len(set(head)) < 2:
        return False
    if head.translate(None, _CONTROL) != head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as e:
        # a multi-byte character cut by the probe's end is still text
        return e.start >= len(head) - 3 and e.reason == "unexpected end of data"
    return True


def detect(path: str, fd: int, size: int) -> str:
    """Return "vhdx", "qcow2", "vhd" (dynamic/differencing), "vhd-fixed" or "raw" from the content of
    the open file ``fd`` of ``size`` bytes (> 0), or raise :class:`BadImage` naming what the
    file is when it is not a supported disk image (see the module docstring)."""
    head = pread_any(fd, TEXT_PROBE, 0)
    fmt = container_format(fd, size, head)
    ext = os.path.splitext(path)[1].lower()
    if fmt != "raw":
        promise = PROMISES.get(ext)
        if promise is not None and fmt not in promise[1]:
            got = {"vhdx": "VHDX", "qcow2": "qcow2"}.get(fmt, "VHD")
            raise BadImage(f"{path}: the file name promises a {promise[0]} but the content is a "
                           f"{got}")
        return fmt
    iso = pread_any(fd, 5, 0x8001) if size >= 0x8006 else b""
    err = _foreign(path, head, size, iso)
    if err is not None:
        raise err
    tail = pread_any(fd, min(size, FOOTER_PROBE), size - min(size, FOOTER_PROBE))
    err = _damaged_footer(path, tail, size)
    if err is not None:
        raise err
    promise = PROMISES.get(ext)
    if promise is not None:
        where = {"VHDX": "no 'vhdxfile' signature at offset 0",
                 "qcow2": "no qcow2 magic 'QFI\\xfb' with version 2 or 3 at offset 0"}.get(
                     promise[0], "no 'conectix' footer at its end or its start")
        raise BadImage(f"{path}: the file name promises a {promise[0]} but it is not one "
                       f"({where})")
    if _is_text(head):
        raise BadImage(f"{path}: this is a text file, not a disk image")
    if size % SECTOR:
        raise BadImage(
            f"{path}: {size} byte{'s' if size != 1 else ''} is not a whole number of 512-byte sectors, so this is not a "
            f"raw disk image (a truncated download?); to capture it as raw anyway, force the "
            f"source format raw")
    return "raw"


def container_format(fd: int, size: int, head: bytes | None = None) -> str:
    """"vhdx", "qcow2", "vhd", "vhd-fixed" by signature, else "raw" (no refusal: see
    :func:`detect`)."""
    if head is None:
        head = pread_any(fd, 8, 0)
    if head[:8] == VHDX_SIGNATURE:
        return "vhdx"
    if head[:4] == QCOW_MAGIC and len(head) >= 8 and struct.unpack_from(">I", head, 4)[0] in (2, 3):
        return "qcow2"
    if head[:8] == VHD_COOKIE:
        return "vhd"
    for footer in (512, 511):  # pre-Virtual-Server-2004 footers were 511 bytes
        if size >= footer and pread_any(fd, 8, size - footer) == VHD_COOKIE:
            return "vhd-fixed"
    return "raw"
