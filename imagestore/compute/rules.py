"""Azure's rules for creating a VM or scale set from a gallery image, with Azure's messages.

Each check raises before anything is written, so a refused create leaves the store as it was.
Messages quote ARM where the text is documented (see docs/architecture.md, "Compute"):

* osProfile: required for a Generalized definition, forbidden for a Specialized one;
* security type: a ``SecurityType=TrustedLaunch`` definition makes only Trusted Launch VMs; a
  Trusted Launch VM needs a V2 definition whose SecurityType is TrustedLaunch or
  TrustedLaunchSupported; secure boot / vTPM settings only with Trusted Launch;
* the version must be replicated to the VM's region (``GalleryImageNotFound``);
* Linux computer names and SSH keys as Azure validates them.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from ..errors import InvalidArgument, NotFound

OS_PROFILE_MISSING = "Required parameter 'osProfile' is missing (null)."
OS_PROFILE_NOT_ALLOWED = "Parameter 'osProfile' is not allowed."
TL_ONLY = ("The provided gallery image only supports creation of VMs and VM Scale Sets with "
           "'TrustedLaunch' security type.")
TL_NOT_SUPPORTED = "Use of TrustedLaunch setting is not supported for the provided image."
UEFI_NEEDS_TL = ("Parameter 'securityProfile.uefiSettings' is not allowed when "
                 "'securityProfile.securityType' is not 'TrustedLaunch'.")
LINUX_AUTH = ("Authentication using either SSH or by user name and password must be enabled "
              "in Linux profile.")
HOSTNAME_BAD = ("Linux host name cannot exceed 64 characters in length or contain the following "
                "characters: ` ~ ! @ # $ % ^ & * ( ) = + _ [ ] {{ }} \\ | ; : ' \" , < > / ?.")
SECURITY_TYPES = ("Standard", "TrustedLaunch")

#: VM sizes known locally -> (vCPUs, memory MiB); Azure's default size first
SIZES: dict[str, tuple[int, int]] = {
    "Standard_DS1_v2": (1, 3584),
    "Standard_B1s": (1, 1024),
    "Standard_B1ms": (1, 2048),
    "Standard_B2s": (2, 4096),
    "Standard_B2ms": (2, 8192),
    "Standard_D2s_v3": (2, 8192),
    "Standard_D2s_v5": (2, 8192),
    "Standard_D4s_v3": (4, 16384),
    "Standard_F2s_v2": (2, 4096),
}
DEFAULT_SIZE = "Standard_DS1_v2"

_HOST_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]{0,63}$")
_USER_RE = re.compile(r"^[a-z_][a-z0-9_.-]{0,63}$", re.IGNORECASE)
#: names Azure refuses as admin user of a Linux VM
RESERVED_USERS = {"root", "admin", "administrator", "adm", "bin", "daemon", "guest", "sys",
                  "test", "user", "nobody", "sshd", "lxd", "docker"}


def gallery_image_not_found(image_id: str, region: str) -> NotFound:
    return NotFound(
        f"The gallery image {image_id} is not available in {region} region. Please contact "
        f"image owner to replicate to this region, or change your requested region.",
        target="properties.storageProfile.imageReference.id", code="GalleryImageNotFound")


def _invalid(msg: str, target: str) -> InvalidArgument:
    return InvalidArgument(msg, target=target, code="InvalidParameter")


@dataclass(frozen=True)
class Security:
    """A VM's security profile, after the rules."""

    trusted_launch: bool
    secure_boot: bool
    vtpm: bool

    def arm(self) -> dict | None:
        if not self.trusted_launch:
            return None
        return {"securityType": "TrustedLaunch",
                "uefiSettings": {"secureBootEnabled": self.secure_boot,
                                 "vTpmEnabled": self.vtpm}}


def definition_security_type(defn: dict) -> str | None:
    for f in defn.get("features") or []:
        if str(f.get("name", "")).lower() == "securitytype":
            return str(f.get("value"))
    return None


def security(defn: dict, security_type: str | None, secure_boot: bool | None,
             vtpm: bool | None) -> Security:
    """Check the requested security type against the definition (Azure's rules)."""
    target = "properties.securityProfile.securityType"
    if security_type is not None:
        match = [t for t in SECURITY_TYPES if t.lower() == security_type.lower()]
        if not match:
            raise _invalid(f"The value '{security_type}' of parameter "
                           f"'securityProfile.securityType' is not allowed. Allowed values are "
                           f"'{', '.join(SECURITY_TYPES)}'.", target)
        security_type = match[0]
    gen = defn.get("hyperVGeneration") or "V1"
    img_type = definition_security_type(defn) or ""
    tl = security_type == "TrustedLaunch"
    if img_type.lower() == "trustedlaunch" and not tl:
        raise _invalid(TL_ONLY, target)
    if tl and (gen != "V2" or not img_type.lower().startswith("trustedlaunch")):
        raise _invalid(TL_NOT_SUPPORTED, target)
    if not tl and (secure_boot is not None or vtpm is not None):
        raise _invalid(UEFI_NEEDS_TL, "properties.securityProfile.uefiSettings")
    if not tl:
        return Security(False, False, False)
    # az's defaults for Trusted Launch: secure boot and vTPM on
    return Security(True, True if secure_boot is None else secure_boot,
                    True if vtpm is None else vtpm)


@dataclass(frozen=True)
class OsProfile:
    """The osProfile of a VM from a generalized image."""

    computer_name: str
    admin_username: str
    ssh_keys: tuple[str, ...]
    custom_data: bytes | None

    def arm(self) -> dict:
        keys = [{"path": f"/home/{self.admin_username}/.ssh/authorized_keys", "keyData": k}
                for k in self.ssh_keys]
        return {
            "computerName": self.computer_name,
            "adminUsername": self.admin_username,
            "linuxConfiguration": {
                "disablePasswordAuthentication": True,
                "ssh": {"publicKeys": keys},
                "provisionVMAgent": True,
            },
            "secrets": [],
            "allowExtensionOperations": True,
        }


def ssh_key(value: str) -> str:
    """An SSH public key given inline or as a file holding one."""
    target = "properties.osProfile.linuxConfiguration.ssh.publicKeys"
    text = value.strip()
    if not re.match(r"^(ssh-|ecdsa-|sk-)", text):
        path = os.path.expanduser(value)
        if os.path.isfile(path):
            try:
                with open(path, encoding="utf-8") as fh:
                    text = fh.read().strip()
            except (OSError, UnicodeDecodeError) as e:
                raise _invalid(f"{target}: cannot read SSH public key file {path}: {e}",
                               target) from None
        elif os.sep in value or value.endswith(".pub"):
            raise NotFound(f"{target}: SSH public key file {path}: no such file or directory",
                           target=target)
    if not re.match(r"^(ssh-(rsa|ed25519|dss)|ecdsa-sha2-nistp\d+|sk-\S+)\s+[A-Za-z0-9+/=]+(\s.*)?$",
                    text) or "\n" in text:
        raise _invalid(f"{target}: '{value[:60]}' is not an SSH public key (expected "
                       f"'ssh-rsa|ssh-ed25519|ecdsa-… BASE64 [comment]')", target)
    return text


def os_profile(defn: dict, *, vm_name: str, specialized: bool, admin_username: str | None,
               ssh_keys: tuple[str, ...] | list[str], computer_name: str | None,
               custom_data: str | None, custom_data_bytes: bytes | None = None,
               ) -> OsProfile | None:
    """The osProfile the definition's OS state asks for (None for a specialized image).
    ``custom_data`` is a file; ``custom_data_bytes`` the bytes themselves (REST API)."""
    state = defn.get("osState") or "Generalized"
    given = bool(admin_username or ssh_keys or computer_name or custom_data
                 or custom_data_bytes is not None)
    if state == "Specialized" or specialized:
        if given:
            raise _invalid(OS_PROFILE_NOT_ALLOWED, "properties.osProfile")
        if state == "Generalized":
            raise _invalid(OS_PROFILE_MISSING, "properties.osProfile")
        return None
    if not admin_username:
        raise _invalid(OS_PROFILE_MISSING, "properties.osProfile")
    if not _USER_RE.match(admin_username) or admin_username.lower() in RESERVED_USERS:
        raise _invalid(f"The Admin Username specified is not allowed: '{admin_username}'.",
                       "properties.osProfile.adminUsername")
    keys = tuple(ssh_key(k) for k in ssh_keys)
    if not keys:
        raise _invalid(LINUX_AUTH, "properties.osProfile.linuxConfiguration")
    host = computer_name or vm_name
    if not _HOST_RE.match(host) or host.isdigit():
        raise _invalid(HOSTNAME_BAD.replace("{{", "{").replace("}}", "}"),
                       "properties.osProfile.computerName")
    data = custom_data_bytes
    if data is not None and len(data) > 65536:
        raise _invalid("Custom data in OSProfile must be in Base64 encoding and with a "
                       "maximum length of 87380 characters.", "properties.osProfile.customData")
    if custom_data is not None:
        path = os.path.expanduser(custom_data)
        try:
            with open(path, "rb") as fh:
                data = fh.read(65537)
        except FileNotFoundError:
            raise NotFound(f"properties.osProfile.customData: {path}: no such file",
                           target="properties.osProfile.customData") from None
        except OSError as e:
            raise _invalid(f"properties.osProfile.customData: {path}: {e.strerror}",
                           "properties.osProfile.customData") from None
        if len(data) > 65536:
            raise _invalid("Custom data in OSProfile must be in Base64 encoding and with a "
                           "maximum length of 87380 characters.", "properties.osProfile.customData")
    return OsProfile(host, admin_username, keys, data)


def size(name: str | None) -> tuple[str, int, int]:
    """(size name, vCPUs, memory MiB)."""
    name = name or DEFAULT_SIZE
    for k, (cpu, mem) in SIZES.items():
        if k.lower() == name.lower():
            return k, cpu, mem
    raise _invalid(f"The value {name} provided for the VM size is not valid. The valid sizes "
                   f"here are: {', '.join(SIZES)}.", "properties.hardwareProfile.vmSize")


def vm_name(value: str, field: str = "vmName") -> str:
    if not value or len(value) > 64 or not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", value) \
            or value.endswith((".", "-")):
        raise _invalid(f"{field}: '{value}' is not a valid virtual machine name (1-64 letters, "
                       f"digits, '_', '.', '-'; not ending with '.' or '-')", field)
    return value
