"""Output rendering shared by every command: ``-o json|jsonc|yaml|yamlc|table|tsv|none`` and
``--query`` (JMESPath), with az's rules (knack's ``output.py``):

- ``yaml``: ``yaml.safe_dump`` of the result, keys sorted, block style, as az;
- ``table``: one row per item, columns from az's table transformers for the resource types
  (gallery, image definition, image version, disk: Name, ResourceGroup, Location and the
  resource's key fields); for anything else, or under ``--query``, the item's scalar fields
  (``properties`` lifted, as az's flattened output has them), never ``id``/``type``/``etag``
  and never a null; an empty list prints nothing;
- ``tsv``: one line per item, the values of an object in key order (a ``--query`` object
  keeps its own order), a nested list as its length, a nested object as an empty field,
  ``None``/``True``/``False`` as Python spells them (and a bare boolean in lower case), as az.

The JSON formats keep imagestore's key order (the REST API's).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click
import jmespath
import jmespath.exceptions

from ..errors import InvalidArgument

FORMATS = ("json", "jsonc", "yaml", "yamlc", "table", "tsv", "none")

#: az's table never shows these (knack ``_TableOutput.SKIP_KEYS``)
SKIP_KEYS = ("id", "type", "etag")


def apply_query(data: Any, query: str | None) -> Any:
    """``data`` filtered by the JMESPath ``query`` (unchanged without one)."""
    if not query:
        return data
    return compile_query(query).search(data)


def compile_query(query: str):  # noqa: ANN201 - jmespath's ParsedResult
    """The compiled query; a malformed one is InvalidArgument naming --query."""
    try:
        return jmespath.compile(query)
    except jmespath.exceptions.JMESPathError as e:
        reason = str(e).splitlines()[0]
        raise InvalidArgument(f"--query: invalid JMESPath expression '{query}' ({reason})") from None


# -- table ------------------------------------------------------------------------------------


def resource_group(rid: Any) -> str | None:
    """The resource group named in an ARM id, or None."""
    if not isinstance(rid, str):
        return None
    parts = rid.strip("/").split("/")
    for i, p in enumerate(parts[:-1]):
        if p.lower() == "resourcegroups":
            return parts[i + 1]
    return None


def _get(d: Any, *path: str) -> Any:
    for k in path:
        if not isinstance(d, dict):
            return None
        d = d.get(k)
    return d


def _base_row(item: dict) -> dict[str, Any]:
    return {"Name": item.get("name"), "ResourceGroup": resource_group(item.get("id")),
            "Location": item.get("location")}


def _gallery_row(item: dict) -> dict[str, Any]:
    return {**_base_row(item), "ProvisioningState": _get(item, "properties", "provisioningState")}


def _image_row(item: dict) -> dict[str, Any]:
    p = item.get("properties") or {}
    ident = p.get("identifier") or {}
    return {**_base_row(item), "OsType": p.get("osType"), "OsState": p.get("osState"),
            "Publisher": ident.get("publisher"), "Offer": ident.get("offer"),
            "Sku": ident.get("sku"), "HyperVGeneration": p.get("hyperVGeneration")}


def _version_row(item: dict) -> dict[str, Any]:
    p = item.get("properties") or {}
    pp = p.get("publishingProfile") or {}
    row = {**_base_row(item), "ProvisioningState": p.get("provisioningState"),
           "ExcludeFromLatest": pp.get("excludeFromLatest"),
           "TargetRegions": " ".join(str(t.get("name")) for t in pp.get("targetRegions") or []
                                     if isinstance(t, dict)) or None}
    state = _get(p, "replicationStatus", "aggregatedState")
    if state is not None:  # only with --expand ReplicationStatus
        row["ReplicationState"] = state
    return row


def _disk_row(item: dict) -> dict[str, Any]:
    # az's transform_disk_show_table_output
    p = item.get("properties") or {}
    zones = item.get("zones")
    return {**_base_row(item), "Zones": " ".join(zones) if zones else " ",
            "Sku": _get(item, "sku", "name"), "OsType": p.get("osType"),
            "SizeGb": p.get("diskSizeGB"), "ProvisioningState": p.get("provisioningState")}


#: az-style table transformers by ARM resource type (lower case)
TABLE_ROWS: dict[str, Callable[[dict], dict[str, Any]]] = {
    "microsoft.compute/galleries": _gallery_row,
    "microsoft.compute/galleries/images": _image_row,
    "microsoft.compute/galleries/images/versions": _version_row,
    "microsoft.compute/disks": _disk_row,
}


def _cap(k: str) -> str:
    return k[0].upper() + k[1:] if k else k


def _auto_row(item: Any) -> dict[str, Any]:
    """knack's ``_auto_table_item``: the scalar, non-null fields (``properties`` lifted)."""
    if isinstance(item, list):
        return {f"Column{i + 1}": v for i, v in enumerate(item)}
    if not isinstance(item, dict):
        return {"Result": item}
    out: dict[str, Any] = {}
    for k, v in item.items():
        if k == "properties" and isinstance(v, dict):
            for pk, pv in v.items():
                if pk not in SKIP_KEYS and pv is not None and not isinstance(pv, (dict, list)):
                    out.setdefault(_cap(pk), pv)
        elif k not in SKIP_KEYS and v is not None and not isinstance(v, (dict, list)):
            out[_cap(k)] = v
    return out


def _table_row(item: Any, query_active: bool) -> dict[str, Any]:
    if not query_active and isinstance(item, dict) and isinstance(item.get("type"), str):
        rows = TABLE_ROWS.get(item["type"].lower())
        if rows is not None:
            return rows(item)
    return _auto_row(item)


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, (dict, list)):
        return json.dumps(v, separators=(",", ":"))
    return str(v)


def render_table(data: Any, query_active: bool = False) -> str:
    """az's ``-o table`` (tabulate's "simple" layout: left-aligned, two-space gaps)."""
    items = data if isinstance(data, list) else [data]
    rows = [_table_row(r, query_active) for r in items]
    cols: list[str] = []
    for r in rows:
        for k in r:
            if k not in cols:
                cols.append(k)
    if not cols:
        return ""
    # a column no row has a value for (say Zones of local disks) is kept: az's columns are fixed
    cells = [[_cell(r.get(c)) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    head = "  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True))
    sep = "  ".join("-" * w for w in widths)
    body = ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    return "\n".join([head.rstrip(), sep, *body])


# -- tsv --------------------------------------------------------------------------------------


def _tsv_value(v: Any) -> str:
    if isinstance(v, list):
        return str(len(v))
    if isinstance(v, dict):
        return ""
    return v if isinstance(v, str) else str(v)


def render_tsv(data: Any, query_active: bool = False) -> str:
    """az's ``-o tsv`` (knack ``_TsvOutput``)."""
    lines = []
    for row in (data if isinstance(data, list) else [data]):
        if isinstance(row, dict):
            values = list(row.values()) if query_active else [v for _, v in sorted(row.items())]
            lines.append("\t".join(_tsv_value(v) for v in values))
        elif isinstance(row, list):
            lines.append("\t".join(_tsv_value(v) for v in row))
        elif isinstance(row, bool):
            lines.append(str(row).lower())
        else:
            lines.append(_tsv_value(row))
    return "\n".join(lines)


# -- yaml -------------------------------------------------------------------------------------


def render_yaml(data: Any) -> str:
    """az's ``-o yaml``: ``yaml.safe_dump``, block style, keys sorted."""
    import yaml

    return yaml.safe_dump(data, default_flow_style=False, allow_unicode=True).rstrip("\n")


def render(data: Any, fmt: str, *, query_active: bool = False) -> str | None:
    """The text for ``data`` in format ``fmt`` (None: print nothing)."""
    fmt = fmt.lower()
    if fmt == "none" or data is None:
        return None
    if fmt in ("json", "jsonc"):
        return json.dumps(data, indent=2, sort_keys=False)
    if fmt in ("yaml", "yamlc"):
        return render_yaml(data)
    if fmt == "tsv":
        return render_tsv(data, query_active)
    if isinstance(data, list) and not data:
        return None
    return render_table(data, query_active)


# -- emitting ---------------------------------------------------------------------------------

_COLLECT = "imagestore.collect"


def emit(ctx: click.Context, data: Any) -> None:
    """Print a command's result in the chosen format. While :func:`collecting`, results are
    gathered instead (``--ids`` with several ids prints them as one list, as az)."""
    root = ctx.find_root()
    if _COLLECT in root.meta:
        root.meta[_COLLECT].append(data)
        return
    settings = root.meta.get("imagestore.output", {})
    fmt = settings.get("output") or "json"
    query = settings.get("query")
    data = apply_query(data, query)
    text = render(data, fmt, query_active=bool(query))
    if text is not None:
        click.echo(text)


class collecting:  # noqa: N801 - used as a context manager, like contextlib's helpers
    """``with collecting(ctx) as results:`` gather what :func:`emit` is given."""

    def __init__(self, ctx: click.Context) -> None:
        self.root = ctx.find_root()
        self.results: list[Any] = []

    def __enter__(self) -> list[Any]:
        self.root.meta[_COLLECT] = self.results
        return self.results

    def __exit__(self, *exc: object) -> None:
        self.root.meta.pop(_COLLECT, None)
