"""osProfile -> a cloud-init NoCloud seed: an ISO 9660 volume labelled ``cidata`` holding
``meta-data`` (a fresh ``instance-id`` and ``local-hostname`` = computerName) and
``user-data`` (``#cloud-config`` with the admin user and its SSH keys). Azure hands customData
to cloud-init as user data while the user and keys travel separately (ovf-env.xml); NoCloud
has one user-data, so with customData it becomes a MIME multipart (cloud-init's own format):
part 1 the cloud-config above, part 2 customData byte for byte.

Built with pycdlib (pure Python, Rock Ridge + Joliet names so any reader sees ``meta-data``),
written to a temporary file, fsynced and renamed into place."""

from __future__ import annotations

import io
import json
import os
import uuid
from dataclasses import dataclass, field

from ..fsutil import fsync_dir

VOLUME_LABEL = "cidata"


@dataclass
class SeedContent:
    """What goes on the seed volume."""

    hostname: str
    admin_username: str
    ssh_keys: list[str] = field(default_factory=list)
    custom_data: bytes | None = None
    instance_id: str = field(default_factory=lambda: f"iid-{uuid.uuid4()}")

    def meta_data(self) -> bytes:
        return (f"instance-id: {self.instance_id}\n"
                f"local-hostname: {self.hostname}\n").encode()

    def cloud_config(self) -> bytes:
        lines = ["#cloud-config", f"hostname: {self.hostname}", "users:",
                 f"  - name: {self.admin_username}",
                 "    sudo: ALL=(ALL) NOPASSWD:ALL",
                 "    shell: /bin/bash",
                 "    lock_passwd: true"]
        if self.ssh_keys:
            lines.append("    ssh_authorized_keys:")
            lines += [f"      - {json.dumps(k)}" for k in self.ssh_keys]
        lines.append("ssh_pwauth: false")
        return ("\n".join(lines) + "\n").encode()

    def user_data(self) -> bytes:
        if self.custom_data is None:
            return self.cloud_config()
        from email.mime.application import MIMEApplication
        from email.mime.multipart import MIMEMultipart
        from email.mime.text import MIMEText

        msg = MIMEMultipart(boundary=f"=={uuid.uuid4().hex}==")
        msg.attach(MIMEText(self.cloud_config().decode(), "cloud-config"))
        part = MIMEApplication(self.custom_data, "octet-stream")
        part.add_header("Content-Disposition", "attachment", filename="customData")
        msg.attach(part)
        return msg.as_bytes()

    def files(self) -> dict[str, bytes]:
        return {"meta-data": self.meta_data(), "user-data": self.user_data()}


def _iso_name(name: str) -> str:
    return "/" + name.upper().replace("-", "_")[:8] + ".;1"


def write_seed(path: str, content: SeedContent) -> str:
    """Write the seed ISO to ``path`` (crash-safe: temp file, fsync, rename). Returns path."""
    import pycdlib

    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, joliet=3, rock_ridge="1.09", vol_ident=VOLUME_LABEL)
    for name, data in content.files().items():
        iso.add_fp(io.BytesIO(data), len(data), _iso_name(name), rr_name=name,
                   joliet_path="/" + name)
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as fh:
            iso.write_fp(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        iso.close()
        if os.path.exists(tmp):
            os.unlink(tmp)
    fsync_dir(os.path.dirname(os.path.abspath(path)))
    return path


def read_seed(path: str) -> tuple[str, dict[str, bytes]]:
    """The volume label and the files (by Rock Ridge name) of a seed ISO."""
    import pycdlib

    iso = pycdlib.PyCdlib()
    iso.open(path)
    try:
        label = iso.pvd.volume_identifier.decode().strip()
        files: dict[str, bytes] = {}
        for child in iso.list_children(rr_path="/"):
            if child.is_dot() or child.is_dotdot():
                continue
            name = child.rock_ridge.name().decode()
            buf = io.BytesIO()
            iso.get_file_from_iso_fp(buf, rr_path="/" + name)
            files[name] = buf.getvalue()
        return label, files
    finally:
        iso.close()
