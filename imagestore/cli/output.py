"""Output rendering shared by every command: -o json|table|tsv|none and --query (JMESPath)."""

from __future__ import annotations

import json
from typing import Any

import click
import jmespath
import jmespath.exceptions

from ..errors import InvalidArgument

FORMATS = ("json", "jsonc", "table", "tsv", "none", "yaml")


def apply_query(data: Any, query: str | None) -> Any:
    if not query:
        return data
    return compile_query(query).search(data)


def compile_query(query: str):  # noqa: ANN201 - jmespath's ParsedResult
    try:
        return jmespath.compile(query)
    except jmespath.exceptions.JMESPathError as e:
        reason = str(e).splitlines()[0]
        raise InvalidArgument(f"--query: invalid JMESPath expression '{query}' ({reason})") from None


def _scalar(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "True" if v else "False"
    if isinstance(v, (dict, list)):
        return json.dumps(v, separators=(",", ":"))
    return str(v)


def _rows(data: Any) -> list[dict]:
    if isinstance(data, list):
        return [d if isinstance(d, dict) else {"Result": d} for d in data]
    if isinstance(data, dict):
        return [data]
    return [{"Result": data}]


def _flat(row: dict) -> dict:
    """Table columns: scalar top-level fields, plus scalar fields of ``properties``."""
    out: dict[str, Any] = {}
    for k, v in row.items():
        if k == "properties" and isinstance(v, dict):
            for pk, pv in v.items():
                if not isinstance(pv, (dict, list)):
                    out[pk[0].upper() + pk[1:]] = pv
        elif not isinstance(v, (dict, list)):
            out[k[0].upper() + k[1:]] = v
    return out


def render(data: Any, fmt: str) -> str | None:
    if fmt == "none" or data is None:
        return None
    if fmt in ("json", "jsonc", "yaml"):
        return json.dumps(data, indent=2, sort_keys=False)
    if fmt == "tsv":
        lines = []
        for row in (data if isinstance(data, list) else [data]):
            if isinstance(row, dict):
                lines.append("\t".join(_scalar(v) for v in row.values() if not isinstance(v, (dict, list))))
            else:
                lines.append(_scalar(row))
        return "\n".join(lines)
    rows = [_flat(r) for r in _rows(data)]
    cols: list[str] = []
    for r in rows:
        for k in r:
            if k not in cols:
                cols.append(k)
    if not cols:
        return ""
    cells = [[_scalar(r.get(c)) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    head = "  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True))
    sep = "  ".join("-" * w for w in widths)
    body = ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    return "\n".join([head.rstrip(), sep, *body])


def emit(ctx: click.Context, data: Any) -> None:
    settings = ctx.find_root().meta.get("imagestore.output", {})
    fmt = settings.get("output") or "json"
    data = apply_query(data, settings.get("query"))
    text = render(data, fmt)
    if text is not None:
        click.echo(text)
