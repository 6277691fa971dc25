"""Validation rules of the gallery model. Each failure is one line naming the field.

Enums are matched case-insensitively and returned in their canonical spelling.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime
from urllib.parse import urlsplit

from .. import clock
from ..errors import InvalidArgument

INT32_MAX = 2**31 - 1

OS_TYPES = ("Linux", "Windows")
OS_STATES = ("Generalized", "Specialized")
HYPER_V_GENERATIONS = ("V1", "V2")
ARCHITECTURES = ("x64", "Arm64")
STORAGE_ACCOUNT_TYPES = ("Standard_LRS", "Standard_ZRS", "Premium_LRS")
REPLICATION_MODES = ("Full", "Shallow")
DISK_TYPES = (
    "Standard_LRS", "StandardSSD_LRS", "StandardSSD_ZRS", "Premium_LRS", "Premium_ZRS",
    "PremiumV2_LRS", "UltraSSD_LRS",
)
SECURITY_TYPES = (
    "ConfidentialVMSupported",
    "ConfidentialVM",
    "TrustedLaunchSupported",
    "TrustedLaunch",
    "TrustedLaunchAndConfidentialVmSupported",
)
BOOL_FEATURES = ("IsHibernateSupported", "IsAcceleratedNetworkSupported")
DISK_CONTROLLER_TYPES = ("SCSI", "NVMe")
FEATURE_NAMES = (*BOOL_FEATURES, "DiskControllerTypes", "SecurityType")
MAX_LUN = 63
MAX_REPLICAS = 100

_GALLERY_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_.]*[A-Za-z0-9])?$")
_IMAGE_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_.\-]*[A-Za-z0-9])?$")
_DISK_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_.\-]*[A-Za-z0-9_])?$")
_RG_RE = re.compile(r"^[-\w._()]+$")
_IDENT_RE = re.compile(r"^[A-Za-z0-9\-_.]+$")
_VERSION_RE = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")
_REGION_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_\-]*[A-Za-z0-9])?$")


def target_of(field: str) -> str | None:
    """The resource-JSON field a field name stands for (its part before any ``: `` detail),
    or None for a name that is not a JSON path."""
    head = field.split(": ", 1)[0]
    return None if not head or head.startswith("-") else head


def invalid(field: str, message: str) -> InvalidArgument:
    """InvalidArgument about ``field``, with its target."""
    return InvalidArgument(message, target=target_of(field))


def enum(field: str, value: str | None, allowed: tuple[str, ...]) -> str | None:
    """``value`` in its canonical spelling among ``allowed`` (case-insensitive), or None."""
    if value is None:
        return None
    for a in allowed:
        if str(value).lower() == a.lower():
            return a
    raise invalid(field, f"{field}: '{value}' is not one of {', '.join(allowed)}")


def resource_group(value: str) -> str:
    """A valid resource group name."""
    if not value or len(value) > 90 or not _RG_RE.match(value) or value.endswith("."):
        raise invalid(
            "resourceGroupName",
            f"resourceGroupName: '{value}' is not a valid resource group name (1-90 letters, "
            f"digits, '-', '_', '.', '(', ')'; not ending in '.')"
        )
    return value


def gallery_name(value: str, field: str = "galleryName") -> str:
    """A valid gallery name."""
    if not value or len(value) > 80 or not _GALLERY_RE.match(value):
        raise invalid(field,
            f"{field}: '{value}' is not a valid gallery name (1-80 letters, digits, '_' and '.', "
            f"starting and ending with a letter or digit)"
        )
    return value


def image_name(value: str, field: str = "galleryImageName") -> str:
    """A valid image definition name."""
    if not value or len(value) > 80 or not _IMAGE_RE.match(value):
        raise invalid(field,
            f"{field}: '{value}' is not a valid image definition name (1-80 letters, digits, "
            f"'_', '-' and '.', starting and ending with a letter or digit)"
        )
    return value


def disk_name(value: str, field: str = "diskName") -> str:
    """A valid disk name."""
    if not value or len(value) > 80 or not _DISK_RE.match(value):
        raise invalid(field,
            f"{field}: '{value}' is not a valid disk name (1-80 letters, digits, '_', '-' and "
            f"'.', starting with a letter or digit, ending with a letter, digit or '_')"
        )
    return value


def region_name(value: str, field: str = "location") -> str:
    """A valid region name."""
    if not value or len(value) > 64 or not _REGION_RE.match(value):
        raise invalid(field, f"{field}: '{value}' is not a valid region name")
    return value


def version_name(value: str, field: str = "galleryImageVersionName") -> tuple[int, int, int]:
    """``Major.Minor.Patch`` -> three int32 parts."""
    m = _VERSION_RE.match(value or "")
    if not m:
        raise invalid(field,
            f"{field}: '{value}' is not a version name (MajorVersion.MinorVersion.Patch, "
            f"three integers, e.g. 1.0.0)"
        )
    parts = tuple(int(x) for x in m.groups())
    if any(p > INT32_MAX for p in parts):
        raise invalid(field, f"{field}: '{value}': each part must be at most {INT32_MAX} (int32)")
    return parts  # type: ignore[return-value]


def identifier_part(field: str, value: str | None, max_len: int) -> str:
    """A publisher, offer or sku: letters, digits, ``-_.``, at most ``max_len``."""
    if value is None or value == "":
        raise invalid(field, f"{field}: must not be empty")
    if not _IDENT_RE.match(value):
        raise invalid(field,
            f"{field}: '{value}' may contain only letters, digits, '-', '_' and '.'"
        )
    if value.endswith("."):
        raise invalid(field, f"{field}: '{value}' must not end with '.'")
    if len(value) > max_len:
        raise invalid(field, f"{field}: '{value}' is longer than {max_len} characters")
    return value


def now_utc() -> datetime:
    """The current time, UTC (the gallery's clock, movable with ``IMAGESTORE_NOW``: see
    :mod:`imagestore.clock`)."""
    return clock.now()


def iso(dt: datetime) -> str:
    """ISO-8601 in UTC."""
    return dt.astimezone(UTC).isoformat()


def parse_datetime(field: str, value: str) -> datetime:
    """An ISO-8601 date or date-time (UTC when no zone is given)."""
    text = str(value).strip()
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            d = date.fromisoformat(text)
            dt = datetime(d.year, d.month, d.day, tzinfo=UTC)
        else:
            dt = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise invalid(field,
            f"{field}: '{value}' is not an ISO-8601 date or date-time (e.g. 2030-12-31 or "
            f"2030-12-31T00:00:00Z)"
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def end_of_life(field: str, value: str | None) -> str | None:
    """Canonical ISO-8601 UTC; must lie in the future."""
    if value is None or value == "":
        return None
    dt = parse_datetime(field, value)
    if dt <= now_utc():
        raise invalid(field, f"{field}: {iso(dt)} is not in the future")
    return iso(dt)


def tags(values: list[str] | tuple[str, ...] | None, field: str = "tags") -> dict[str, str] | None:
    """``KEY=VALUE`` tokens -> a tags object (None when not given)."""
    if values is None:
        return None
    out: dict[str, str] = {}
    for item in values:
        for tok in str(item).split():
            k, _, v = tok.partition("=")
            if not k:
                raise invalid(field, f"{field}: '{tok}' has no tag name (use KEY=VALUE)")
            if len(k) > 512 or len(v) > 256:
                raise invalid(field, f"{field}: '{k}' is too long (name ≤ 512, value ≤ 256 characters)")
            out[k] = v
    return out


def tags_value(field: str, value) -> dict[str, str]:
    """A tags object from the JSON (values become strings)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise invalid(field, f"{field}: must be an object of string values")
    out = {}
    for k, v in value.items():
        if isinstance(v, (dict, list)):
            raise invalid(field, f"{field}.{k}: must be a string")
        out[k] = v if isinstance(v, str) else json.dumps(v)  # --set tags.n=1 -> "1"
    return out


def features(values: list[str] | tuple[str, ...] | None, hyper_v_generation: str | None,
             field: str = "properties.features") -> list[dict] | None:
    """``Name=Value`` tokens -> canonical [{name, value}]; names and values checked."""
    if not values:
        return None
    items: list[tuple[str, str]] = []
    for item in values:
        for tok in str(item).split():
            name, sep, val = tok.partition("=")
            if not sep:
                raise invalid(field, f"{field}: '{tok}' is not NAME=VALUE")
            items.append((name, val))
    return features_list([{"name": n, "value": v} for n, v in items], hyper_v_generation, field)


def features_list(items, hyper_v_generation: str | None, field: str = "properties.features") -> list[dict] | None:
    """``[{name, value}]`` checked and in canonical spelling."""
    if items is None:
        return None
    if not isinstance(items, list):
        raise invalid(field, f"{field}: must be a list of {{name, value}}")
    out: list[dict] = []
    seen: set[str] = set()
    for it in items:
        if not isinstance(it, dict):
            raise invalid(field, f"{field}: each feature must be an object with name and value")
        raw_name, val = str(it.get("name") or ""), it.get("value")
        val = "" if val is None else str(val)
        alias = "DiskControllerTypes" if raw_name.lower() == "diskcontrollertype" else raw_name
        name = None
        for n in FEATURE_NAMES:
            if n.lower() == alias.lower():
                name = n
        if name is None:
            raise invalid(field,
                f"{field}: unknown feature '{raw_name}' (use {', '.join(FEATURE_NAMES)})"
            )
        if name in seen:
            raise invalid(field, f"{field}: feature '{name}' given twice")
        seen.add(name)
        if name in BOOL_FEATURES:
            v = enum(f"{field}: {name}", val, ("True", "False"))
        elif name == "SecurityType":
            v = enum(f"{field}: SecurityType", val, SECURITY_TYPES)
            if hyper_v_generation != "V2":
                raise invalid(field,
                    f"{field}: SecurityType={v} needs properties.hyperVGeneration V2 "
                    f"(it describes a generation 2 image)"
                )
        else:
            parts = [p.strip() for p in val.split(",") if p.strip()]
            canon = [enum(f"{field}: DiskControllerTypes", p, DISK_CONTROLLER_TYPES) for p in parts]
            if set(canon) not in ({"SCSI"}, {"SCSI", "NVMe"}) or len(canon) != len(set(canon)):
                raise invalid(field,
                    f"{field}: DiskControllerTypes '{val}' is not one of 'SCSI' or 'SCSI,NVMe'"
                )
            v = "SCSI, NVMe" if "NVMe" in canon else "SCSI"
        out.append({"name": name, "value": v})
    return out


def resource_range(field: str, lo, hi) -> dict | None:
    """{min, max} with positive ints and min <= max; None when both are absent."""
    for which, v in (("min", lo), ("max", hi)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1 or v > INT32_MAX):
            raise invalid(field, f"{field}.{which}: '{v}' must be a positive integer")
    if lo is not None and hi is not None and lo > hi:
        raise invalid(field, f"{field}: min {lo} is greater than max {hi}")
    if lo is None and hi is None:
        return None
    out = {}
    if lo is not None:
        out["min"] = lo
    if hi is not None:
        out["max"] = hi
    return out


def uri(field: str, value: str | None) -> str | None:
    """An absolute ``http``/``https`` URL with a host, no whitespace, at most 2048 characters
    (None when empty). These links (privacy statement, release notes, a community gallery's
    publisher) are shown to consumers in other tenants, so nothing else is accepted:
    ``javascript:``, ``data:`` or ``file:`` links would be handed to whatever renders them."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or any(c.isspace() for c in value) or len(value) > 2048:
        raise invalid(field, f"{field}: '{value}' is not a valid URI")
    parts = urlsplit(value)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise invalid(field, f"{field}: '{value}' is not an absolute http or https URL")
    return value


def text(field: str, value, max_len: int = 4096) -> str | None:
    """A string of at most ``max_len`` characters."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise invalid(field, f"{field}: must be a string")
    if len(value) > max_len:
        raise invalid(field, f"{field}: longer than {max_len} characters")
    return value


def disk_types(field: str, values) -> list[str] | None:
    """Disk storage types (space or comma separated), each once."""
    if values is None:
        return None
    if not isinstance(values, (list, tuple)):
        raise invalid(field, f"{field}: must be a list of disk types")
    out = []
    for v in values:
        for tok in str(v).replace(",", " ").split():
            c = enum(field, tok, DISK_TYPES)
            if c in out:
                raise invalid(field, f"{field}: '{c}' given twice")
            out.append(c)
    return out or None


def replica_count(field: str, value) -> int | None:
    """An integer from 1 to MAX_REPLICAS (None when not given)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_REPLICAS:
        raise invalid(field, f"{field}: '{value}' must be an integer from 1 to {MAX_REPLICAS}")
    return value


def boolean(field: str, value) -> bool | None:
    """true/false (also yes/no, 1/0, on/off) -> bool; None stays None."""
    if value is None or isinstance(value, bool):
        return value
    s = str(value).strip().lower()
    if s in ("true", "yes", "1", "on"):
        return True
    if s in ("false", "no", "0", "off"):
        return False
    raise invalid(field, f"{field}: '{value}' is not true or false")


def parse_target_regions(values, field: str = "properties.publishingProfile.targetRegions") -> list[dict] | None:
    """``REGION[=COUNT][=SKU]`` tokens -> [{name, regionalReplicaCount?, storageAccountType?}]."""
    if values is None:
        return None
    out: list[dict] = []
    for item in values:
        if isinstance(item, dict):  # the JSON form, from the Python API
            out.append(dict(item))
            continue
        for tok in str(item).split():
            parts = tok.split("=")
            if len(parts) > 3 or not parts[0]:
                raise invalid(field, f"{field}: '{tok}' is not REGION[=COUNT][=STORAGE_ACCOUNT_TYPE]")
            tr: dict = {"name": region_name(parts[0], field)}
            for p in parts[1:]:
                if p.isdigit():
                    tr["regionalReplicaCount"] = replica_count(f"{field}: {parts[0]}", int(p))
                else:
                    tr["storageAccountType"] = enum(f"{field}: {parts[0]}", p, STORAGE_ACCOUNT_TYPES)
            out.append(tr)
    return out
