"""az's generic update: ``--set PATH=VALUE`` on the resource JSON, and the diff that tells
which properties an update changed (so immutable ones can be refused by name)."""

from __future__ import annotations

import json
import re
from typing import Any

from ..errors import InvalidArgument

_TOKEN = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def parse_path(path: str, field: str = "--set") -> list[str | int]:
    toks: list[str | int] = []
    pos = 0
    path = path.strip()
    while pos < len(path):
        if path[pos] == ".":
            pos += 1
            continue
        m = _TOKEN.match(path, pos)
        if not m:
            raise InvalidArgument(f"{field}: '{path}' is not a property path (e.g. properties.description)")
        toks.append(m.group(1) if m.group(1) is not None else int(m.group(2)))
        pos = m.end()
    if not toks:
        raise InvalidArgument(f"{field}: empty property path")
    return toks


def parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _key(d: dict, name: str) -> str:
    if name in d:
        return name
    for k in d:
        if k.lower() == name.lower():
            return k
    return name


def apply_set(doc: dict, expr: str, field: str = "--set") -> None:
    path, sep, raw = expr.partition("=")
    if not sep:
        raise InvalidArgument(f"{field}: '{expr}' is not PATH=VALUE")
    toks = parse_path(path, field)
    value = parse_value(raw)
    cur: Any = doc
    for i, t in enumerate(toks):
        last = i == len(toks) - 1
        if isinstance(t, int):
            if not isinstance(cur, list) or t >= len(cur):
                raise InvalidArgument(f"{field}: index [{t}] out of range in '{path}'")
            if last:
                cur[t] = value
            else:
                cur = cur[t]
        else:
            if not isinstance(cur, dict):
                raise InvalidArgument(f"{field}: '{path}': '{t}' is not inside an object")
            k = _key(cur, t)
            if last:
                if value is None:
                    cur.pop(k, None)
                else:
                    cur[k] = value
            else:
                if cur.get(k) is None:
                    cur[k] = [] if isinstance(toks[i + 1], int) else {}
                cur = cur[k]


def diff(a: Any, b: Any, path: str = "") -> list[str]:
    """Paths (as in the JSON output) whose values differ between a and b."""
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for k in list(a) + [k for k in b if k not in a]:
            sub = f"{path}.{k}" if path else k
            if k not in a or k not in b:
                if a.get(k) != b.get(k):
                    out.append(sub)
            else:
                out += diff(a[k], b[k], sub)
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        out = []
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            out += diff(x, y, f"{path}[{i}]")
        return out
    return [] if a == b else [path]


def under(path: str, prefixes: tuple[str, ...]) -> bool:
    pl = path.lower()
    for p in prefixes:
        p = p.lower()
        if pl == p or pl.startswith(p + ".") or pl.startswith(p + "["):
            return True
    return False
